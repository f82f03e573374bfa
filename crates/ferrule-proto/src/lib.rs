//! Sans-IO codecs for Ferrule.
//!
//! Nothing here touches a socket, a thread or Python: every parser takes a byte slice and the
//! [`Limits`] and answers `Ok(Some(..))`, `Ok(None)` ("need more bytes") or a typed
//! [`ParseError`] that maps to exactly one HTTP status. That keeps them testable with raw bytes
//! and fuzzable.
//!
//! - [`http1`]: HTTP/1.x request heads, chunked bodies, response heads.
//! - [`uwsgi`], [`scgi`], [`fastcgi`]: the gateway protocols nginx speaks (`uwsgi_pass`,
//!   `scgi_pass`, `fastcgi_pass`); each yields [`CgiVars`] and leaves the body to the caller.
//! - [`proxy_protocol`]: the PROXY protocol v1/v2 header in front of a connection.
//! - [`forwarded`]: trusted proxies (`--forwarded-allow-ips`) and the `Forwarded` /
//!   `X-Forwarded-*` headers they set.
//! - [`cgi`]: target splitting, percent-decoding, `HTTP_*` names, PATH_INFO for gateways.
#![forbid(unsafe_code)]

pub mod cgi;
pub mod error;
pub mod fastcgi;
pub mod forwarded;
mod gateway_error;
pub mod http1;
pub mod limits;
pub mod proxy_protocol;
pub mod scgi;
pub mod uwsgi;
pub mod vars;

pub use error::{FastCgiError, ParseError, ProxyProtocolError, ScgiError, UwsgiError};

pub use forwarded::{resolve_forwarded, ForwardedHeaders, ProxyOverrides, Scheme, TrustList};
pub use limits::{GatewayLimits, Limits};
pub use proxy_protocol::{parse_proxy_header, ProxyHeader};

pub use vars::CgiVars;

/// Below this length a plain loop finds a byte sooner than `memchr`'s vector setup (the
/// paths, hosts and ports of most requests are this short).
const SHORT: usize = 32;

/// The first `needle` in `hay`.
#[inline]
pub(crate) fn find(needle: u8, hay: &[u8]) -> Option<usize> {
    if hay.len() < SHORT {
        hay.iter().position(|&c| c == needle)
    } else {
        memchr::memchr(needle, hay)
    }
}

/// The last `needle` in `hay`.
#[inline]
pub(crate) fn rfind(needle: u8, hay: &[u8]) -> Option<usize> {
    if hay.len() < SHORT {
        hay.iter().rposition(|&c| c == needle)
    } else {
        memchr::memrchr(needle, hay)
    }
}

/// A byte-class table: ASCII letters and digits, and the bytes of `extra`. For the grammar's
/// character classes checked on every request (one load per byte, no search).
pub(crate) const fn alnum_and(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = (c as u8).is_ascii_alphanumeric();
        c += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    #[test]
    fn find_and_rfind_agree_with_memchr_on_either_side_of_the_short_length() {
        for len in 0usize..80 {
            for at in [None, Some(0), Some(len / 2), Some(len.saturating_sub(1))] {
                let mut hay = vec![b'a'; len];
                if let Some(i) = at.filter(|&i| i < len) {
                    hay[i] = b':';
                    hay[len - 1 - i] = b':';
                }
                assert_eq!(
                    super::find(b':', &hay),
                    memchr::memchr(b':', &hay),
                    "{len} {at:?}"
                );
                assert_eq!(
                    super::rfind(b':', &hay),
                    memchr::memrchr(b':', &hay),
                    "{len} {at:?}"
                );
            }
        }
    }
}
