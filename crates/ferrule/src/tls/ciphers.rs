//! `--ciphers`: OpenSSL names (`ECDHE-RSA-AES128-GCM-SHA256`, `TLS_AES_128_GCM_SHA256`) and IANA
//! names (`TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`) mapped to the provider's suites, and the
//! OpenSSL name of a negotiated suite for `SSL_CIPHER` (mod_ssl reports OpenSSL's names).
use rustls::{CipherSuite, SupportedCipherSuite};

use super::{MinVersion, TlsError};

/// A suite rustls (ring) offers, with the names people write it by.
struct Names {
    suite: CipherSuite,
    /// OpenSSL's name (for TLS 1.3 suites OpenSSL uses the IANA name).
    openssl: &'static str,
    iana: &'static str,
}

const NAMES: &[Names] = &[
    Names {
        suite: CipherSuite::TLS13_AES_256_GCM_SHA384,
        openssl: "TLS_AES_256_GCM_SHA384",
        iana: "TLS_AES_256_GCM_SHA384",
    },
    Names {
        suite: CipherSuite::TLS13_AES_128_GCM_SHA256,
        openssl: "TLS_AES_128_GCM_SHA256",
        iana: "TLS_AES_128_GCM_SHA256",
    },
    Names {
        suite: CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        openssl: "TLS_CHACHA20_POLY1305_SHA256",
        iana: "TLS_CHACHA20_POLY1305_SHA256",
    },
    Names {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        openssl: "ECDHE-ECDSA-AES256-GCM-SHA384",
        iana: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    },
    Names {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        openssl: "ECDHE-ECDSA-AES128-GCM-SHA256",
        iana: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    },
    Names {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        openssl: "ECDHE-ECDSA-CHACHA20-POLY1305",
        iana: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    },
    Names {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        openssl: "ECDHE-RSA-AES256-GCM-SHA384",
        iana: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    },
    Names {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        openssl: "ECDHE-RSA-AES128-GCM-SHA256",
        iana: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    },
    Names {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        openssl: "ECDHE-RSA-CHACHA20-POLY1305",
        iana: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    },
];

/// The OpenSSL name of a suite (`ECDHE-RSA-AES128-GCM-SHA256`, `TLS_AES_256_GCM_SHA384`), as
/// mod_ssl puts it in `SSL_CIPHER`; rustls' own name for a suite not in the table.
pub fn openssl_name(suite: CipherSuite) -> &'static str {
    NAMES
        .iter()
        .find(|n| n.suite == suite)
        .map(|n| n.openssl)
        .or_else(|| suite.as_str())
        .unwrap_or("")
}

/// The names `--ciphers` accepts for the given suites, OpenSSL's first.
pub fn supported_names(available: &[SupportedCipherSuite]) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = NAMES
        .iter()
        .filter(|n| available.iter().any(|s| s.suite() == n.suite))
        .map(|n| n.openssl)
        .collect();
    names.extend(
        NAMES
            .iter()
            .filter(|n| n.iana != n.openssl && available.iter().any(|s| s.suite() == n.suite))
            .map(|n| n.iana),
    );
    names
}

fn lookup(name: &str, available: &[SupportedCipherSuite]) -> Option<SupportedCipherSuite> {
    available.iter().copied().find(|s| {
        let suite = s.suite();
        suite
            .as_str()
            .is_some_and(|own| own.eq_ignore_ascii_case(name))
            || NAMES.iter().any(|n| {
                n.suite == suite
                    && (n.openssl.eq_ignore_ascii_case(name) || n.iana.eq_ignore_ascii_case(name))
            })
    })
}

fn is_tls13(suite: SupportedCipherSuite) -> bool {
    matches!(suite, SupportedCipherSuite::Tls13(_))
}

/// The suites `--ciphers` names, in the order given (the server's preference), from those
/// the provider has. Empty `names` keeps the provider's own list and order. `warnings` gets a
/// note when the list leaves TLS 1.2 clients out.
pub fn select(
    names: &[String],
    available: &[SupportedCipherSuite],
    min_version: MinVersion,
    warnings: &mut Vec<String>,
) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    let names: Vec<&str> = names
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(available.to_vec());
    }
    let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
    for name in &names {
        let Some(suite) = lookup(name, available) else {
            return Err(TlsError::Option {
                option: "--ciphers",
                why: format!(
                    "unknown or unsupported cipher suite `{name}`; the suites are: {}",
                    supported_names(available).join(", ")
                ),
            });
        };
        if !chosen.iter().any(|c| c.suite() == suite.suite()) {
            chosen.push(suite);
        }
    }
    let has13 = chosen.iter().any(|s| is_tls13(*s));
    let has12 = chosen.iter().any(|s| !is_tls13(*s));
    match min_version {
        MinVersion::Tls13 if !has13 => {
            let tls13: Vec<&str> = NAMES
                .iter()
                .filter(|n| n.openssl.starts_with("TLS_"))
                .map(|n| n.openssl)
                .collect();
            return Err(TlsError::Option {
                option: "--ciphers",
                why: format!(
                    "only TLS 1.2 suites are named ({}) while --tls-min-version is 1.3: no \
                     handshake could succeed; add a TLS 1.3 suite ({})",
                    names.join(", "),
                    tls13.join(", ")
                ),
            });
        }
        MinVersion::Tls12 if !has12 => warnings.push(
            "--ciphers names no TLS 1.2 suite: clients without TLS 1.3 cannot connect".to_owned(),
        ),
        _ => {}
    }
    Ok(chosen)
}
