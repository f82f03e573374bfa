//! HTTP/1.x: request heads ([`request`]), body framing ([`chunked`]) and response encoding
//! ([`response`]).
use std::ops::Range;

use bytes::Bytes;

pub mod chunked;
pub mod request;
pub mod response;

pub use chunked::ChunkedDecoder;
pub use request::parse_request;

/// The protocol version a request was sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`: the connection closes after the response unless the client asked
    /// `Connection: keep-alive`.
    Http10,
    /// `HTTP/1.1` (and any other 1.x minor version).
    Http11,
    /// `HTTP/2`: a request that came in an HTTP/2 stream, its head built with
    /// [`RequestHead::from_parts`].
    Http2,
}

impl Version {
    /// `SERVER_PROTOCOL` as sent.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http10 => "HTTP/1.0",
            Self::Http11 => "HTTP/1.1",
            Self::Http2 => "HTTP/2",
        }
    }
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body: neither Content-Length nor Transfer-Encoding.
    Empty,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed, validated request head. Names and values are spans into `buf`.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The head's bytes, request line to blank line.
    pub buf: Bytes,
    /// The method's span ([`RequestHead::method`]).
    pub method: Range<usize>,
    /// The request target's span, as sent ([`RequestHead::target`]).
    pub target: Range<usize>,
    /// The protocol version.
    pub version: Version,
    /// (name, value) spans, in the order sent.
    pub headers: Vec<(Range<usize>, Range<usize>)>,
    /// How the body that follows the head is delimited.
    pub body: BodyKind,
    /// The client allows the connection to stay open after this request.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1.
    pub expect_continue: bool,
    /// Index in `headers` of the Host field.
    pub host: Option<usize>,
}

impl RequestHead {
    /// The method, as sent (a token; case-sensitive).
    #[must_use]
    pub fn method(&self) -> &[u8] {
        self.buf.get(self.method.clone()).unwrap_or_default()
    }

    /// The request target, as sent: origin-form, absolute-form or `*`.
    #[must_use]
    pub fn target(&self) -> &[u8] {
        self.buf.get(self.target.clone()).unwrap_or_default()
    }

    /// The header fields as (name, value) byte slices.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.headers.iter().map(|(n, v)| {
            (
                self.buf.get(n.clone()).unwrap_or_default(),
                self.buf.get(v.clone()).unwrap_or_default(),
            )
        })
    }

    /// The Host header's value, if sent.
    #[must_use]
    pub fn host(&self) -> Option<&[u8]> {
        let (_, v) = self.headers.get(self.host?)?;
        self.buf.get(v.clone())
    }

    /// Whether the method is HEAD: the response has no body.
    #[must_use]
    pub fn is_head(&self) -> bool {
        self.method() == b"HEAD"
    }

    /// A head from parts that a framed protocol (HTTP/2) delivered already parsed and checked:
    /// the method, the target (`:path`) and the fields in order, the Host field among them.
    /// The body is delimited by its protocol (`body` says what the request declared).
    #[must_use]
    pub fn from_parts<'a>(
        method: &[u8],
        target: &[u8],
        version: Version,
        fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        body: BodyKind,
    ) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(method);
        let method_span = 0..buf.len();
        buf.extend_from_slice(target);
        let target_span = method_span.end..buf.len();
        let mut headers = Vec::new();
        let mut host = None;
        for (name, value) in fields {
            let n = buf.len()..buf.len() + name.len();
            buf.extend_from_slice(name);
            let v = buf.len()..buf.len() + value.len();
            buf.extend_from_slice(value);
            if host.is_none() && name.eq_ignore_ascii_case(b"host") {
                host = Some(headers.len());
            }
            headers.push((n, v));
        }
        Self {
            buf: Bytes::from(buf),
            method: method_span,
            target: target_span,
            version,
            headers,
            body,
            keep_alive: true,
            expect_continue: false,
            host,
        }
    }
}

/// Whether `b` is a valid token (RFC 9110 section 5.6.2), as header names and methods are.
#[must_use]
#[inline]
pub fn is_token(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(|&c| is_tchar(c))
}

/// Whether `c` is a `tchar`, a byte of a token (RFC 9110 section 5.6.2).
#[must_use]
#[inline]
pub fn is_tchar(c: u8) -> bool {
    TCHAR[usize::from(c)]
}

/// `tchar` (RFC 9110 section 5.6.2) as a table: one load per byte on the hot path.
static TCHAR: [bool; 256] = crate::ascii::alnum_and(b"!#$%&'*+-.^_`|~");

/// Whether `b` may be sent as a field value: no CR, LF, NUL or other control but HTAB.
#[must_use]
#[inline]
pub fn is_field_value(b: &[u8]) -> bool {
    b.iter().all(|&c| c == b'\t' || (c >= 0x20 && c != 0x7f))
}

/// Hop-by-hop headers (RFC 9110 section 7.6.1) that a WSGI app must not set (PEP 3333).
#[must_use]
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    const HOP: [&[u8]; 8] = [
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    ];
    HOP.iter().any(|h| h.eq_ignore_ascii_case(name)) || name.eq_ignore_ascii_case(b"trailers")
}
