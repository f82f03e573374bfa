//! HTTP/1.1 `Upgrade: h2c` (RFC 7540 section 3.2; RFC 9113 deprecates it, but curl's
//! `--http2` on `http://` URLs still sends it): telling the request that asks for it, the
//! `101 Switching Protocols` answer, and the upgrading request re-encoded as the HEADERS frame
//! of stream 1, which the server's HTTP/2 codec reads as if the client had sent it after its
//! connection preface.
//!
//! The header block uses only HPACK literals without indexing (RFC 7541 section 6.2.2), so
//! it leaves the decoder's dynamic table as the client's encoder expects it: empty.
use crate::http1::{BodyKind, RequestHead, Version};

/// The answer to an upgrade the server takes.
pub const SWITCHING_PROTOCOLS: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";

/// The client's connection preface (RFC 9113 section 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Length of an HTTP/2 frame header.
pub const FRAME_HEADER: usize = 9;

/// Largest header block sent as the one HEADERS frame (the smallest SETTINGS_MAX_FRAME_SIZE a
/// server may use); a larger request is not upgraded (it is served over HTTP/1.1).
pub const MAX_BLOCK: usize = 16_384;

const FRAME_HEADERS: u8 = 0x1;
const FRAME_SETTINGS: u8 = 0x4;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;

/// Whether `head` asks to upgrade to h2c and may be: HTTP/1.1 without a body, `Upgrade: h2c`,
/// `Connection` naming `Upgrade` and `HTTP2-Settings`, one `HTTP2-Settings` field.
#[must_use]
pub fn wants_upgrade(head: &RequestHead) -> bool {
    if head.version != Version::Http11 || head.body != BodyKind::Empty {
        return false;
    }
    let (mut upgrade, mut conn_upgrade, mut conn_settings, mut settings) = (false, false, false, 0);
    for (name, value) in head.fields() {
        if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade |= tokens(value).any(|t| t.eq_ignore_ascii_case(b"h2c"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            for t in tokens(value) {
                conn_upgrade |= t.eq_ignore_ascii_case(b"upgrade");
                conn_settings |= t.eq_ignore_ascii_case(b"http2-settings");
            }
        } else if name.eq_ignore_ascii_case(b"http2-settings") {
            settings += 1;
        }
    }
    upgrade && conn_upgrade && conn_settings && settings == 1
}

fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&c| c == b',')
        .map(crate::ascii::trim_ows)
        .filter(|t| !t.is_empty())
}

/// Fields that do not go into an HTTP/2 request (RFC 9113 section 8.2.2), or that the
/// pseudo-fields replace.
fn dropped(name: &[u8]) -> bool {
    const DROPPED: [&[u8]; 8] = [
        b"connection",
        b"upgrade",
        b"http2-settings",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"te",
        b"host",
    ];
    DROPPED.iter().any(|d| d.eq_ignore_ascii_case(name))
}

/// The upgrading request as the HEADERS frame of stream 1 (END_STREAM, END_HEADERS); None when
/// its block would pass [`MAX_BLOCK`].
#[must_use]
pub fn stream_one(head: &RequestHead) -> Option<Vec<u8>> {
    let mut block = Vec::with_capacity(256);
    literal(&mut block, b":method", head.method());
    literal(&mut block, b":scheme", b"http");
    literal(&mut block, b":path", head.target());
    if let Some(host) = head.host() {
        literal(&mut block, b":authority", host);
    }
    for (name, value) in head.fields() {
        if dropped(name) {
            continue;
        }
        let lower: Vec<u8> = name.to_ascii_lowercase();
        literal(&mut block, &lower, value);
    }
    if block.len() > MAX_BLOCK {
        return None;
    }
    let mut frame = Vec::with_capacity(FRAME_HEADER + block.len());
    frame_header(
        &mut frame,
        block.len(),
        FRAME_HEADERS,
        FLAG_END_STREAM | FLAG_END_HEADERS,
        1,
    );
    frame.extend_from_slice(&block);
    Some(frame)
}

/// The bytes after a `101 Switching Protocols` were not the HTTP/2 connection preface and a
/// SETTINGS frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAPreface;

impl std::fmt::Display for NotAPreface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the client did not send the HTTP/2 preface and SETTINGS after the upgrade")
    }
}

impl std::error::Error for NotAPreface {}

/// Where the client's first frame after its preface ends in `buf`, once it is all there:
/// `Ok(None)` while more bytes are needed, an error when the bytes are not a preface and a
/// SETTINGS frame (the server then closes the connection). `max_frame`: the largest frame
/// payload accepted.
///
/// # Errors
/// The bytes are not the HTTP/2 connection preface followed by a SETTINGS frame.
pub fn settings_end(buf: &[u8], max_frame: usize) -> Result<Option<usize>, NotAPreface> {
    let n = buf.len().min(PREFACE.len());
    if buf.get(..n) != PREFACE.get(..n) {
        return Err(NotAPreface);
    }
    let Some(header) = buf.get(PREFACE.len()..PREFACE.len() + FRAME_HEADER) else {
        return Ok(None);
    };
    let len = header.get(..3).map_or(0, |b| {
        b.iter().fold(0usize, |n, &x| n << 8 | usize::from(x))
    });
    if header.get(3) != Some(&FRAME_SETTINGS) || len > max_frame {
        return Err(NotAPreface);
    }
    let end = PREFACE.len() + FRAME_HEADER + len;
    Ok((buf.len() >= end).then_some(end))
}

fn frame_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    let len = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    out.extend_from_slice(len.get(1..).unwrap_or_default());
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
}

/// A literal header field without indexing, new name (RFC 7541 section 6.2.2), no Huffman.
fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    string(out, name);
    string(out, value);
}

/// A string literal: its length as a 7-bit-prefix integer (RFC 7541 section 5.1), then bytes.
fn string(out: &mut Vec<u8>, s: &[u8]) {
    let mut n = s.len();
    if n < 127 {
        out.push(u8::try_from(n).unwrap_or(127));
    } else {
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push(u8::try_from(n % 128).unwrap_or(0) | 0x80);
            n /= 128;
        }
        out.push(u8::try_from(n).unwrap_or(0));
    }
    out.extend_from_slice(s);
}
