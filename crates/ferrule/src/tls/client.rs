//! Client certificates (`--client-cert optional|required` with `--ca-certs`): the verifier
//! that checks them against the given roots.
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use super::certs::parse_certs;
use super::{file_error, ClientCert, TlsError};

/// The roots in a `--ca-certs` PEM file.
pub fn parse_roots(path: &Path, pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(parse_certs(path, pem)?);
    if added == 0 {
        return Err(file_error(
            path,
            format!("none of the {ignored} certificates can be a trust anchor"),
        ));
    }
    Ok(roots)
}

/// The verifier for `mode`: `None` for `ClientCert::None` (then `--ca-certs` is not used);
/// `ca_pem` is the `--ca-certs` file and its contents.
pub fn verifier(
    mode: ClientCert,
    ca_pem: Option<(&Path, &[u8])>,
    provider: Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, TlsError> {
    if mode == ClientCert::None {
        return Ok(None);
    }
    let Some((path, pem)) = ca_pem else {
        return Err(TlsError::Option {
            option: "--client-cert",
            why: "verifying client certificates needs the CA that issues them: pass --ca-certs"
                .to_owned(),
        });
    };
    let roots = parse_roots(path, pem)?;
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = if mode == ClientCert::Optional {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    builder
        .build()
        .map(Some)
        .map_err(|e| TlsError::Rustls(format!("{}: {e}", path.display())))
}
