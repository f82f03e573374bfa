//! TLS: the rustls server configuration built from `--certfile`/`--keyfile` and friends, and
//! what a finished handshake tells the app (`net::TlsInfo`). A low room: it knows rustls and
//! files, not the server or Python; what it would log it returns as warnings.
//!
//! - `keys`: private keys from PEM (PKCS#1, PKCS#8, SEC1, encrypted PKCS#8, legacy encrypted);
//! - `certs`: chains from PEM, a leaf's names and dates, the certificate chosen by SNI;
//! - `ciphers`: `--ciphers` names to suites, a suite's OpenSSL name;
//! - `assemble`: the `ServerConfig` built from all of it, with the client certificate
//!   verifier (`--client-cert`, `--ca-certs`);
//! - `info`: what a finished handshake tells the app;
//! - `store`: the configuration kept current across certificate reloads.
use std::fmt;
use std::path::{Path, PathBuf};

mod assemble;
mod certs;
mod ciphers;
mod info;
mod keys;
mod store;
#[cfg(test)]
mod tests;

pub use assemble::{build, client_verifier, parse_roots, server_config, Built};
pub use certs::{
    leaf_facts, load_certs, name_matches, parse_certs, LeafFacts, SniEntry, SniResolver,
};
pub use ciphers::{openssl_name, supported_names};
pub use info::{client_cert_info, handshake_info, pem_certificate, rfc2253, serial_hex};
pub use keys::{load_key, parse_key};
pub use store::CertStore;

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

impl TlsOptions {
    /// The files the configuration is read from, each once, in a stable order: the
    /// certificates and keys, then `--ca-certs` when client certificates are asked for (it
    /// is not read otherwise).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = Vec::new();
        let pairs = self.certs.iter().flat_map(|p| [&p.certfile, &p.keyfile]);
        let ca = self
            .ca_certs
            .as_ref()
            .filter(|_| self.client_cert != ClientCert::None);
        for path in pairs.chain(ca) {
            if !files.contains(path) {
                files.push(path.clone());
            }
        }
        files
    }
}

/// Why a TLS configuration could not be built; the message names the file or option.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or held nothing usable.
    File { path: PathBuf, why: String },
    /// An option's value is not one rustls can use.
    Option { option: &'static str, why: String },
    /// A private key that is not the one of its certificate.
    KeyMismatch { certfile: PathBuf, keyfile: PathBuf },
    /// rustls refused the combination.
    Rustls(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { path, why } => write!(f, "{}: {why}", path.display()),
            Self::Option { option, why } => write!(f, "{option}: {why}"),
            Self::KeyMismatch { certfile, keyfile } => write!(
                f,
                "the private key in {} does not match the certificate in {}",
                keyfile.display(),
                certfile.display()
            ),
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

/// The ring provider: it builds without cmake or a C assembler toolchain beyond cc, and its
/// random numbers come from `getrandom` on each call, so a forked worker shares no state
/// with the master. (rustls deprecates it only for lacking post-quantum key exchange.)
#[expect(deprecated, reason = "ring is the provider we build with (see above)")]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}
