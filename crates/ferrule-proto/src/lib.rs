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
//! - [`ascii`]: decimal numbers, optional whitespace and byte classes, shared by the codecs.
//! - [`cgi`]: target splitting, percent-decoding, `HTTP_*` names, PATH_INFO for gateways.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod ascii;
pub mod cgi;
pub mod error;
pub mod fastcgi;
pub mod forwarded;
mod gateway_error;
pub mod h2c;
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
