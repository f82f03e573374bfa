//! Response encoding: the head ([`ResponseHead`], with the [`framing`] it announces), header
//! lines, chunk framing, and the server's own short answers ([`simple_response`]).
use super::Version;

/// How a response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body may be sent (HEAD, 1xx, 204, 304).
    NoBody,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`, ended by [`LAST_CHUNK`].
    Chunked,
    /// The body ends when the connection (or, through a gateway, the stream) does.
    Close,
}

/// What the connection header of a response says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// Nothing: the version's default (HTTP/1.1 stays open, HTTP/1.0 closes).
    Default,
    /// `Connection: keep-alive`, for an HTTP/1.0 client that asked.
    KeepAlive,
    /// `Connection: close`.
    Close,
}

/// The status line's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusLine {
    /// `HTTP/1.1 200 OK`.
    Http11,
    /// `Status: 200 OK`, the CGI-style head a FastCGI response starts with. The connection is
    /// the front server's business: such a head never has a Connection line.
    Cgi,
}

impl StatusLine {
    /// What comes before the status code.
    fn prefix(self) -> &'static [u8] {
        match self {
            Self::Http11 => b"HTTP/1.1 ",
            Self::Cgi => b"Status: ",
        }
    }
}

/// A response head to encode. `status` is the code and reason (`200 OK`), `fields` the app's
/// header lines already encoded and validated (`Name: value\r\n` each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead<'a> {
    /// `HTTP/1.1 ...` or `Status: ...`.
    pub line: StatusLine,
    /// The code and reason phrase, as `200 OK`.
    pub status: &'a [u8],
    /// Header lines, each `Name: value\r\n`, written as they are.
    pub fields: &'a [u8],
    /// Some: a `Server:` line (before Date).
    pub server: Option<&'a [u8]>,
    /// Some: a `Date:` line.
    pub date: Option<&'a [u8]>,
    /// Some: a `Content-Length:` line the app did not send.
    pub content_length: Option<u64>,
    /// The body's framing; [`Framing::Chunked`] adds `Transfer-Encoding: chunked`.
    pub framing: Framing,
    /// The Connection line, if any (never with [`StatusLine::Cgi`]).
    pub connection: Connection,
}

const SERVER: &[u8] = b"Server: ";
const DATE: &[u8] = b"Date: ";
const CONTENT_LENGTH: &[u8] = b"Content-Length: ";
const CHUNKED: &[u8] = b"Transfer-Encoding: chunked\r\n";
const KEEP_ALIVE: &[u8] = b"Connection: keep-alive\r\n";
const CLOSE: &[u8] = b"Connection: close\r\n";
/// Digits of the largest u64.
const U64_DIGITS: usize = 20;

impl ResponseHead<'_> {
    /// Bytes `encode` appends, at most (for reserving).
    #[must_use]
    pub fn max_len(&self) -> usize {
        let line = |name: &[u8], value: Option<usize>| value.map_or(0, |v| name.len() + v + 2);
        [
            self.line.prefix().len() + 2,
            self.status.len(),
            line(SERVER, self.server.map(<[u8]>::len)),
            line(DATE, self.date.map(<[u8]>::len)),
            self.fields.len(),
            line(CONTENT_LENGTH, self.content_length.map(|_| U64_DIGITS)),
            if self.framing == Framing::Chunked {
                CHUNKED.len()
            } else {
                0
            },
            self.connection_line().map_or(0, <[u8]>::len),
            2,
        ]
        .into_iter()
        .fold(0, usize::saturating_add)
    }

    /// Appends the head, blank line included: the status line, `Server`, `Date`, the fields,
    /// `Content-Length`, `Transfer-Encoding`, `Connection`, in that order, each when present.
    /// A buffer with [`ResponseHead::max_len`] bytes of room takes it without growing (the
    /// caller reserves: the server takes its buffers with room from a pool).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.line.prefix());
        out.extend_from_slice(self.status);
        out.extend_from_slice(b"\r\n");
        if let Some(server) = self.server {
            push_header(out, b"Server", server);
        }
        if let Some(date) = self.date {
            push_header(out, b"Date", date);
        }
        out.extend_from_slice(self.fields);
        if let Some(n) = self.content_length {
            push_header(
                out,
                b"Content-Length",
                itoa::Buffer::new().format(n).as_bytes(),
            );
        }
        if self.framing == Framing::Chunked {
            out.extend_from_slice(CHUNKED);
        }
        if let Some(line) = self.connection_line() {
            out.extend_from_slice(line);
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The Connection line this head gets, if any.
    fn connection_line(&self) -> Option<&'static [u8]> {
        match (self.line, self.connection) {
            (StatusLine::Cgi, _) | (_, Connection::Default) => None,
            (StatusLine::Http11, Connection::KeepAlive) => Some(KEEP_ALIVE),
            (StatusLine::Http11, Connection::Close) => Some(CLOSE),
        }
    }
}

/// The framing a response gets (RFC 9112 section 6.3): none for HEAD, 1xx, 204 and 304
/// (`no_body`), the length when known, else chunked on HTTP/1.1 and the connection's end on 1.0.
/// (A gateway response passes [`Version::Http10`]: its body ends with its stream.)
#[must_use]
pub fn framing(version: Version, no_body: bool, length: Option<u64>) -> Framing {
    match (no_body, length, version) {
        (true, _, _) => Framing::NoBody,
        (false, Some(n), _) => Framing::Length(n),
        (false, None, Version::Http11 | Version::Http2) => Framing::Chunked,
        (false, None, Version::Http10) => Framing::Close,
    }
}

/// The reason phrase the server uses for statuses it produces itself.
#[must_use]
pub fn reason(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Appends `name: value\r\n`.
pub fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends the size line of a chunk of `len` bytes: hex digits and CRLF.
pub fn push_chunk_size(out: &mut Vec<u8>, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk and an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// `100 Continue`, sent when the app first reads a body the client asked to confirm.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A complete answer the server gives on its own (400, 413, 500, ...): a short plain-text body
/// naming the status, `Connection: close` when `close` (and the line is [`StatusLine::Http11`]),
/// the body left out when `head_only`.
#[must_use]
pub fn simple_response(
    line: StatusLine,
    code: u16,
    close: bool,
    date: &[u8],
    server: Option<&[u8]>,
    head_only: bool,
) -> Vec<u8> {
    let reason = reason(code).as_bytes();
    let mut status = Vec::with_capacity(4 + reason.len());
    status.extend_from_slice(itoa::Buffer::new().format(code).as_bytes());
    status.push(b' ');
    status.extend_from_slice(reason);
    // Connection comes before the body's fields here (unlike in an app's head), as it always
    // has in these answers.
    let fields: &[u8] = if close && line == StatusLine::Http11 {
        b"Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\n"
    } else {
        b"Content-Type: text/plain; charset=utf-8\r\n"
    };
    let body_len = reason.len() + 1;
    let head = ResponseHead {
        line,
        status: &status,
        fields,
        server,
        date: Some(date),
        content_length: Some(body_len as u64),
        framing: if head_only {
            Framing::NoBody
        } else {
            Framing::Length(body_len as u64)
        },
        connection: Connection::Default,
    };
    let mut out = Vec::with_capacity(head.max_len() + body_len);
    head.encode(&mut out);
    if !head_only {
        out.extend_from_slice(reason);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_lowercase_hex() {
        for (n, want) in [
            (0, "0\r\n"),
            (15, "f\r\n"),
            (65536, "10000\r\n"),
            (usize::MAX, "ffffffffffffffff\r\n"),
        ] {
            let mut out = Vec::new();
            push_chunk_size(&mut out, n);
            assert_eq!(out, want.as_bytes());
        }
    }
}
