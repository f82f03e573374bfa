//! The rustls `ServerConfig` built from `TlsOptions`: keys and chains (one `CertifiedKey` per
//! pair, checked to match), SNI, cipher suites and their order, versions, client
//! certificates (`--client-cert optional|required` with `--ca-certs`), ALPN.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

use super::certs::{leaf_facts, parse_certs, unix_now, SniEntry, SniResolver};
use super::keys::parse_key;
use super::{ciphers, file_error, provider, ClientCert, MinVersion, TlsError, TlsOptions};

/// A built configuration and what the caller should log about it (an expired certificate,
/// a cipher list that leaves TLS 1.2 clients out).
#[derive(Debug, Clone)]
pub struct Built {
    pub config: Arc<ServerConfig>,
    pub warnings: Vec<String>,
}

/// The contents of every file a configuration is built from, read once so that a build sees
/// one state of the files (and a reload can tell whether anything changed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Snapshot {
    files: Vec<(PathBuf, Vec<u8>)>,
}

impl Snapshot {
    pub(super) fn read(opts: &TlsOptions) -> Result<Self, TlsError> {
        let files = opts
            .files()
            .into_iter()
            .map(|path| match std::fs::read(&path) {
                Ok(bytes) => Ok((path, bytes)),
                Err(e) => Err(file_error(&path, e)),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { files })
    }

    fn get(&self, path: &Path) -> Result<&[u8], TlsError> {
        self.files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, bytes)| bytes.as_slice())
            .ok_or_else(|| file_error(path, "not read (a bug: TlsOptions::files misses it)"))
    }
}

/// Builds the server configuration, reading the files.
pub fn build(opts: &TlsOptions) -> Result<Built, TlsError> {
    build_from(opts, &Snapshot::read(opts)?)
}

/// Builds the server configuration; the warnings are dropped (see [`build`] to keep them).
pub fn server_config(opts: &TlsOptions) -> Result<Arc<ServerConfig>, TlsError> {
    build(opts).map(|built| built.config)
}

pub(super) fn build_from(opts: &TlsOptions, files: &Snapshot) -> Result<Built, TlsError> {
    if opts.certs.is_empty() {
        return Err(TlsError::Option {
            option: "--certfile",
            why: "a TLS bind needs a certificate (--certfile and --keyfile)".to_owned(),
        });
    }
    let mut warnings = Vec::new();
    let mut provider = provider();
    provider.cipher_suites = ciphers::select(
        &opts.ciphers,
        &provider.cipher_suites,
        opts.min_version,
        &mut warnings,
    )?;
    let provider = Arc::new(provider);
    let now = unix_now();
    let mut entries = Vec::with_capacity(opts.certs.len());
    for (index, pair) in opts.certs.iter().enumerate() {
        let chain = parse_certs(&pair.certfile, files.get(&pair.certfile)?)?;
        let key = parse_key(
            &pair.keyfile,
            files.get(&pair.keyfile)?,
            opts.key_password.as_deref(),
        )?;
        let facts = match chain.first() {
            Some(leaf) => leaf_facts(&pair.certfile, leaf)?,
            None => return Err(file_error(&pair.certfile, "no certificate")),
        };
        warnings.extend(facts.warning(&pair.certfile, now));
        if index > 0 && facts.names.is_empty() {
            warnings.push(format!(
                "{}: the certificate names no DNS name (no SubjectAltName, no CN): SNI never \
                 chooses it",
                pair.certfile.display()
            ));
        }
        let key = CertifiedKey::from_der(chain, key, &provider).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                certfile: pair.certfile.clone(),
                keyfile: pair.keyfile.clone(),
            },
            e => file_error(&pair.keyfile, format!("rustls cannot use this key: {e}")),
        })?;
        entries.push(SniEntry {
            names: facts.names,
            key: Arc::new(key),
        });
    }
    let resolver = SniResolver::new(entries).ok_or_else(|| TlsError::Option {
        option: "--certfile",
        why: "a TLS bind needs a certificate".to_owned(),
    })?;
    let ca = match &opts.ca_certs {
        Some(path) if opts.client_cert != ClientCert::None => {
            Some((path.as_path(), files.get(path)?))
        }
        _ => None,
    };
    let verifier = client_verifier(opts.client_cert, ca, Arc::clone(&provider))?;
    let versions: &[&rustls::SupportedProtocolVersion] = match opts.min_version {
        MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        MinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols.clone_from(&opts.alpn);
    config.ignore_client_order = opts.ciphers.iter().any(|c| !c.trim().is_empty());
    Ok(Built {
        config: Arc::new(config),
        warnings,
    })
}

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
pub fn client_verifier(
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
