//! TLS: the rustls server configuration built from `--certfile`/`--keyfile` and friends, and
//! what a finished handshake tells the app (`net::TlsInfo`). A low room: it knows rustls and
//! files, not the server or Python.
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::ServerConfig;
use rustls::ServerConnection;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::net::TlsInfo;

/// One certificate chain and its key (`--certfile`, `--keyfile`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    pub certfile: PathBuf,
    pub keyfile: PathBuf,
}

/// `--client-cert` (gunicorn's `--cert-reqs 0|1|2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientCert {
    #[default]
    None,
    Optional,
    Required,
}

/// `--tls-min-version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinVersion {
    #[default]
    Tls12,
    Tls13,
}

/// Everything the TLS configuration is built from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// The first pair is the default certificate; the others are chosen by SNI.
    pub certs: Vec<CertPair>,
    pub key_password: Option<String>,
    pub ca_certs: Option<PathBuf>,
    pub client_cert: ClientCert,
    pub min_version: MinVersion,
    /// `--ciphers`, as given (empty: rustls' defaults).
    pub ciphers: Vec<String>,
    /// ALPN protocols offered, most preferred first (`h2`, `http/1.1`).
    pub alpn: Vec<Vec<u8>>,
}

/// Why a TLS configuration could not be built; the message names the file or option.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or held nothing usable.
    File { path: PathBuf, why: String },
    /// An option's value is not one rustls can use.
    Option { option: &'static str, why: String },
    /// rustls refused the combination (a key that does not match its certificate, say).
    Rustls(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { path, why } => write!(f, "{}: {why}", path.display()),
            Self::Option { option, why } => write!(f, "{option}: {why}"),
            Self::Rustls(why) => write!(f, "TLS configuration: {why}"),
        }
    }
}

impl std::error::Error for TlsError {}

fn file_error(path: &Path, why: impl fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        why: why.to_string(),
    }
}

/// The certificate chain in a PEM file, leaf first.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no CERTIFICATE block in the file"));
    }
    Ok(certs)
}

/// The private key in a PEM file: PKCS#1 (`RSA PRIVATE KEY`), PKCS#8 (`PRIVATE KEY`) or SEC1
/// (`EC PRIVATE KEY`).
pub fn load_key(path: &Path, _password: Option<&str>) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error(path, e))
}

/// The ring provider: it builds without cmake or a C assembler toolchain beyond cc, and its
/// random numbers come from `getrandom` on each call, so a forked worker shares no state
/// with the master. (rustls deprecates it only for lacking post-quantum key exchange.)
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the server configuration.
pub fn server_config(opts: &TlsOptions) -> Result<Arc<ServerConfig>, TlsError> {
    let Some(first) = opts.certs.first() else {
        return Err(TlsError::Option {
            option: "--certfile",
            why: "a TLS bind needs a certificate (--certfile and --keyfile)".to_owned(),
        });
    };
    let versions: &[&rustls::SupportedProtocolVersion] = match opts.min_version {
        MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        MinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let chain = load_certs(&first.certfile)?;
    let key = load_key(&first.keyfile, opts.key_password.as_deref())?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            TlsError::Rustls(format!(
                "{} with {}: {e}",
                first.certfile.display(),
                first.keyfile.display()
            ))
        })?;
    config.alpn_protocols.clone_from(&opts.alpn);
    Ok(Arc::new(config))
}

/// What the app is told of a finished handshake.
pub fn handshake_info(conn: &ServerConnection) -> TlsInfo {
    let protocol = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "",
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .and_then(|s| s.suite().as_str())
        .unwrap_or("");
    TlsInfo {
        protocol,
        cipher,
        client: None,
    }
}
