//! One error type for everything a client can get wrong, and its HTTP status.
use std::fmt;

pub use crate::gateway_error::{FastCgiError, ProxyProtocolError, ScgiError, UwsgiError};

/// Why a request was refused. Each variant maps to one status in [`ParseError::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The request line or a header line is not valid HTTP/1.x syntax.
    Syntax(&'static str),
    /// The request line is longer than the limit.
    RequestLineTooLong,
    /// A header line is longer than the limit, or the whole head is over
    /// [`crate::Limits::max_head`].
    HeaderTooLarge,
    /// More header fields than the limit.
    TooManyHeaders,
    /// The version is not HTTP/1.0 or HTTP/1.1.
    Version,
    /// Host is missing on HTTP/1.1, repeated, or not a valid host.
    Host,
    /// Content-Length is not one plain decimal number, or copies disagree.
    ContentLength,
    /// Transfer-Encoding is malformed, on HTTP/1.0, or sent with Content-Length.
    TransferEncoding,
    /// A transfer coding other than chunked.
    UnsupportedTransferCoding,
    /// An `Expect` other than `100-continue`.
    Expectation,
    /// The body is over `--limit-request-body`.
    BodyTooLarge,
    /// Chunked framing is malformed (size, extension, CRLF, trailer).
    Chunked(&'static str),
    /// The method cannot be served (CONNECT).
    Method,
    /// A malformed uwsgi packet head ([`crate::uwsgi`]).
    Uwsgi(UwsgiError),
    /// A malformed SCGI netstring head ([`crate::scgi`]).
    Scgi(ScgiError),
    /// A malformed FastCGI record or record sequence ([`crate::fastcgi`]).
    FastCgi(FastCgiError),
    /// A missing or malformed PROXY protocol header ([`crate::proxy_protocol`]).
    ProxyProtocol(ProxyProtocolError),
}

impl ParseError {
    /// The HTTP status a server answers with before closing the connection.
    #[must_use]
    pub fn status(self) -> u16 {
        match self {
            Self::Syntax(_)
            | Self::Host
            | Self::ContentLength
            | Self::TransferEncoding
            | Self::Chunked(_)
            | Self::ProxyProtocol(_) => 400,
            Self::RequestLineTooLong => 414,
            Self::HeaderTooLarge | Self::TooManyHeaders => 431,
            Self::Version => 505,
            Self::UnsupportedTransferCoding | Self::Method => 501,
            Self::Expectation => 417,
            Self::BodyTooLarge => 413,
            // Gateway protocols: the front server, not a browser, reads the answer (if any).
            Self::Uwsgi(e) => e.status(),
            Self::Scgi(e) => e.status(),
            Self::FastCgi(e) => e.status(),
        }
    }

    /// The status line text for [`ParseError::status`].
    #[must_use]
    pub fn reason(self) -> &'static str {
        crate::http1::response::reason(self.status())
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax(what) => write!(f, "malformed request: {what}"),
            Self::RequestLineTooLong => f.write_str("request line over --limit-request-line"),
            Self::HeaderTooLarge => f.write_str("header field over --limit-request-field_size"),
            Self::TooManyHeaders => f.write_str("more header fields than --limit-request-fields"),
            Self::Version => f.write_str("unsupported HTTP version"),
            Self::Host => f.write_str("missing, repeated or invalid Host header"),
            Self::ContentLength => f.write_str("invalid Content-Length"),
            Self::TransferEncoding => f.write_str("invalid Transfer-Encoding"),
            Self::UnsupportedTransferCoding => f.write_str("transfer coding other than chunked"),
            Self::Expectation => f.write_str("unsupported Expect"),
            Self::BodyTooLarge => f.write_str("body over --limit-request-body"),
            Self::Chunked(what) => write!(f, "malformed chunked body: {what}"),
            Self::Method => f.write_str("method not supported"),
            Self::Uwsgi(e) => write!(f, "malformed uwsgi packet: {e}"),
            Self::Scgi(e) => write!(f, "malformed SCGI request: {e}"),
            Self::FastCgi(e) => write!(f, "malformed FastCGI request: {e}"),
            Self::ProxyProtocol(e) => write!(f, "bad PROXY protocol header: {e}"),
        }
    }
}

impl std::error::Error for ParseError {}
