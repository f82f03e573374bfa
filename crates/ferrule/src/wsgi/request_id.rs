//! `--request-id-header NAME` (`X-Request-ID`): each request's id, kept from the client when
//! the peer is trusted by `--forwarded-allow-ips` and the value is sane, made otherwise (128
//! random bits in hex); put in the environ (`HTTP_X_REQUEST_ID` and `ferrule.request_id`),
//! echoed in the response's headers and written to the access log.
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::{App, Request};
use crate::access::Fields;
use crate::net::ConnInfo;

/// Longest request id kept from a client; a longer one is replaced. Not configurable.
const MAX_LEN: usize = 200;

/// The configured header's names.
pub struct RequestIdHeader {
    /// As given (`X-Request-ID`), for the response.
    pub name: String,
    /// Lower case, to find it among the request's fields.
    lower: Vec<u8>,
    /// The environ key (`HTTP_X_REQUEST_ID`).
    cgi: String,
}

impl RequestIdHeader {
    #[must_use]
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            lower: name.to_ascii_lowercase().into_bytes(),
            cgi: format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_")),
        }
    }
}

/// The request's id, when `--request-id-header` is on.
#[must_use]
pub fn resolve(app: &App, conn: &ConnInfo, request: &Request) -> Option<Vec<u8>> {
    let header = app.request_id.as_ref()?;
    let peer = conn
        .peer
        .map_or(std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), |p| {
            p.ip()
        });
    let trusted = app.forwarded_allow.trusts_all() || app.forwarded_allow.contains(peer);
    let sent = match request {
        Request::Fields(head) => head.field(&header.lower),
        Request::Cgi(req) => req.field(&header.lower),
    };
    match sent {
        Some(v) if trusted && sane(v) => Some(v.to_vec()),
        _ => Some(random_hex()),
    }
}

/// Visible ASCII, not empty, at most [`MAX_LEN`] bytes.
fn sane(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= MAX_LEN && v.iter().all(|&c| c.is_ascii_graphic())
}

/// 128 random bits as 32 hex digits.
fn random_hex() -> Vec<u8> {
    let mut bits = [0u8; 16];
    // SAFETY: getrandom(2) writes at most `bits.len()` bytes into the array.
    let got = unsafe { libc::getrandom(bits.as_mut_ptr().cast(), bits.len(), 0) };
    if usize::try_from(got).ok() != Some(bits.len()) {
        // No entropy from the kernel: the time and a counter still make ids unique.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mixed = t ^ (u128::from(n) << 64) ^ u128::from(std::process::id());
        bits = mixed.to_be_bytes();
    }
    let mut out = Vec::with_capacity(32);
    for b in bits {
        out.extend_from_slice(format!("{b:02x}").as_bytes());
    }
    out
}

/// Puts the id in the environ.
pub fn put(py: Python<'_>, app: &App, env: &Bound<'_, PyDict>, id: &[u8]) -> PyResult<()> {
    let Some(header) = app.request_id.as_ref() else {
        return Ok(());
    };
    // The id is visible ASCII (kept) or hex (made).
    let value = PyString::new(py, &String::from_utf8_lossy(id));
    env.set_item(header.cgi.as_str(), &value)?;
    env.set_item("ferrule.request_id", value)?;
    Ok(())
}
