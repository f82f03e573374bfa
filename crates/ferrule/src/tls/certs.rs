//! Certificate chains from PEM; what the server reads from a leaf (the names SNI matches
//! against, the dates an expiry warning is made of); and the choice among several
//! certificates on one bind: the one whose names cover the client's SNI server name, else the
//! first (the default, also for clients that send no SNI).
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{file_error, TlsError};

/// The certificate chain in a PEM file, leaf first.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, e))?;
    parse_certs(path, &bytes)
}

/// [`load_certs`] on bytes already read; `path` only names the file in errors.
pub fn parse_certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no CERTIFICATE block in the file"));
    }
    Ok(certs)
}

/// What the server needs from a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafFacts {
    /// The DNS names SNI matches (lower case; `*.example.com` wildcards kept): the DNS
    /// SubjectAltNames, or the subject's CN when the certificate has no DNS SAN.
    pub names: Vec<String>,
    /// `notBefore` and `notAfter`, in seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// `notAfter` as the certificate states it, for messages.
    pub not_after_text: String,
}

/// Parses the leaf; `path` names the file in errors.
pub fn leaf_facts(path: &Path, leaf: &CertificateDer<'_>) -> Result<LeafFacts, TlsError> {
    let (_, cert) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| file_error(path, format!("the first certificate does not parse: {e}")))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push(normalize(dns));
            }
        }
    }
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(normalize),
        );
    }
    let validity = cert.validity();
    Ok(LeafFacts {
        names,
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        not_after_text: validity.not_after.to_string(),
    })
}

impl LeafFacts {
    /// A warning for a certificate that is loaded but that clients will refuse: expired, or
    /// not valid yet.
    pub fn warning(&self, path: &Path, now: i64) -> Option<String> {
        if self.not_after < now {
            Some(format!(
                "{}: the certificate expired on {}; clients will refuse it",
                path.display(),
                self.not_after_text
            ))
        } else if self.not_before > now {
            Some(format!(
                "{}: the certificate is not valid yet; clients will refuse it",
                path.display()
            ))
        } else {
            None
        }
    }
}

/// Seconds since the Unix epoch, now.
pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A DNS name for comparison: lower case, without a trailing dot.
pub(super) fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether a certificate name (`www.example.com`, `*.example.com`) covers `host` (normalised):
/// a wildcard stands for exactly one whole left-most label, as RFC 6125 and browsers have it.
pub fn name_matches(pattern: &str, host: &str) -> bool {
    if let Some(suffix) = pattern.strip_prefix("*.") {
        match host.split_once('.') {
            Some((label, rest)) => !label.is_empty() && rest == suffix,
            None => false,
        }
    } else {
        pattern == host
    }
}

/// One certificate with the names it answers for.
pub struct SniEntry {
    /// Normalised DNS names (see `certs::LeafFacts::names`).
    pub names: Vec<String>,
    pub key: Arc<CertifiedKey>,
}

impl fmt::Debug for SniEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniEntry")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

/// Chooses a certificate by SNI. An exact name beats a wildcard; among equals the earlier
/// `--certfile` wins; no match (or no SNI) gives the first certificate.
#[derive(Debug)]
pub struct SniResolver {
    entries: Vec<SniEntry>,
}

impl SniResolver {
    /// `None` when `entries` is empty: a TLS bind needs at least one certificate.
    pub fn new(entries: Vec<SniEntry>) -> Option<Self> {
        if entries.is_empty() {
            None
        } else {
            Some(Self { entries })
        }
    }

    /// The index of the entry that serves `server_name`.
    pub fn choose(&self, server_name: Option<&str>) -> usize {
        let Some(host) = server_name.map(normalize) else {
            return 0;
        };
        let exact = self
            .entries
            .iter()
            .position(|e| e.names.iter().any(|n| !n.starts_with("*.") && *n == host));
        let wildcard = || {
            self.entries.iter().position(|e| {
                e.names
                    .iter()
                    .any(|n| n.starts_with("*.") && name_matches(n, &host))
            })
        };
        exact.or_else(wildcard).unwrap_or(0)
    }

    pub fn entries(&self) -> &[SniEntry] {
        &self.entries
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let index = self.choose(client_hello.server_name());
        self.entries.get(index).map(|e| Arc::clone(&e.key))
    }
}
