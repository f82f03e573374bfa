//! Several certificates on one bind: the one whose names cover the client's SNI server name,
//! else the first (the default, also for clients that send no SNI).
use std::fmt;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::certs::{name_matches, normalize};

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
