//! Response encoding helpers: status lines, header lines, chunk framing, error answers.

/// The reason phrase the server uses for statuses it produces itself.
#[must_use]
pub fn reason(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
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
/// naming the status, `Connection: close` when `close`.
#[must_use]
pub fn simple_response(
    code: u16,
    close: bool,
    date: &[u8],
    server: Option<&[u8]>,
    head_only: bool,
) -> Vec<u8> {
    let reason = reason(code);
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(code).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(server) = server {
        push_header(&mut out, b"Server", server);
    }
    push_header(&mut out, b"Date", date);
    if close {
        push_header(&mut out, b"Connection", b"close");
    }
    push_header(&mut out, b"Content-Type", b"text/plain; charset=utf-8");
    let body_len = reason.len() + 1;
    push_header(
        &mut out,
        b"Content-Length",
        itoa::Buffer::new().format(body_len).as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(reason.as_bytes());
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

    #[test]
    fn simple_response_closes_and_names_status() {
        let r = simple_response(400, true, b"Sun, 22 Nov 2026 00:00:00 GMT", None, false);
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nBad Request\n"));
    }
}
