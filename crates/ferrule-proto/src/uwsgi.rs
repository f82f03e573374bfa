//! The uwsgi protocol's request head, as nginx's `uwsgi_pass` sends it.
//!
//! A packet starts with a 4-byte header: `modifier1` (u8, 0 for a WSGI request), `datasize`
//! (u16 little-endian, the size of the vars block) and `modifier2` (u8). The vars block follows:
//! pairs of (u16-le key length, key, u16-le value length, value), filling it exactly. The body,
//! `CONTENT_LENGTH` bytes, follows the block and is read by the caller.
//!
//! ```
//! use bytes::BytesMut;
//! use ferrule_proto::limits::GatewayLimits;
//! use ferrule_proto::uwsgi::parse_packet;
//!
//! let mut buf = BytesMut::from(&b"\x00\x0c\x00\x00\x01\x00A\x01\x00B\x02\x00CD\x00\x00body"[..]);
//! let packet = parse_packet(&mut buf, &GatewayLimits::default()).unwrap().unwrap();
//! assert_eq!(packet.vars.get(b"A"), Some(&b"B"[..]));
//! assert_eq!(packet.vars.get(b"CD"), Some(&b""[..]));
//! assert_eq!(&buf[..], b"body");
//! ```
use std::ops::Range;

use bytes::BytesMut;

use crate::error::UwsgiError;
use crate::limits::GatewayLimits;
use crate::vars::{CgiVars, Spans};
use crate::ParseError;

/// Size of the packet header before the vars block.
pub const HEADER_LEN: usize = 4;

/// A parsed uwsgi packet head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UwsgiPacket {
    /// Always 0 (a WSGI request): other values are refused.
    pub modifier1: u8,
    /// As sent; 0 for a WSGI request, which is all nginx sends by default.
    pub modifier2: u8,
    /// The vars, spans into the head's bytes.
    pub vars: CgiVars,
    /// `CONTENT_LENGTH`, 0 when absent or empty: the body bytes that follow the head.
    pub content_length: u64,
    /// Bytes the head took (header and vars block), split off the caller's buffer.
    pub head_len: usize,
}

/// Parses one uwsgi packet head from the front of `buf`.
///
/// `Ok(None)`: not complete yet (read more). `Ok(Some(packet))`: the head's bytes were split off
/// `buf`, which now starts with the body. `Err`: log it and close the connection. A
/// `modifier1` other than 0 is refused as soon as the first byte is there; when it is an upper
/// case letter, [`looks_like_http`] tells whether an HTTP client reached the uwsgi socket.
pub fn parse_packet(
    buf: &mut BytesMut,
    limits: &GatewayLimits,
) -> Result<Option<UwsgiPacket>, ParseError> {
    let err = |e| Err(ParseError::Uwsgi(e));
    let Some(&modifier1) = buf.first() else {
        return Ok(None);
    };
    if modifier1 != 0 {
        return err(UwsgiError::UnsupportedModifier {
            modifier1,
            modifier2: buf.get(3).copied().unwrap_or(0),
        });
    }
    let Some(&[_, lo, hi, modifier2]) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let size = usize::from(u16::from_le_bytes([lo, hi]));
    if size > limits.vars_size {
        return err(UwsgiError::VarsTooLarge);
    }
    let Some(head_len) = HEADER_LEN.checked_add(size) else {
        return err(UwsgiError::VarsTooLarge);
    };
    let Some(block) = buf.get(HEADER_LEN..head_len) else {
        return Ok(None);
    };
    let spans = decode_vars(block, HEADER_LEN, limits).map_err(ParseError::Uwsgi)?;
    let vars = CgiVars::new(buf.split_to(head_len).freeze(), spans);
    let content_length = vars
        .content_length()
        .ok_or(ParseError::Uwsgi(UwsgiError::ContentLength))?;
    Ok(Some(UwsgiPacket {
        modifier1,
        modifier2,
        vars,
        content_length,
        head_len,
    }))
}

/// Decodes a whole vars block into (key, value) spans, offset by `base` (where the block
/// starts in the buffer the spans will index).
fn decode_vars(block: &[u8], base: usize, limits: &GatewayLimits) -> Result<Spans, UwsgiError> {
    let mut spans = Vec::new();
    let mut pos = 0;
    while pos < block.len() {
        if spans.len() >= limits.vars {
            return Err(UwsgiError::TooManyVars);
        }
        let key = take_field(block, &mut pos, UwsgiError::KeyPastBlock)?;
        let value = take_field(block, &mut pos, UwsgiError::ValuePastBlock)?;
        spans.push((shift(key, base), shift(value, base)));
    }
    Ok(spans)
}

/// Reads a u16-le length at `pos` and the field it announces; advances `pos` past both.
fn take_field(block: &[u8], pos: &mut usize, past: UwsgiError) -> Result<Range<usize>, UwsgiError> {
    let start = pos.checked_add(2).ok_or(UwsgiError::TruncatedLength)?;
    let Some(&[lo, hi]) = block.get(*pos..start) else {
        return Err(UwsgiError::TruncatedLength);
    };
    let end = start
        .checked_add(usize::from(u16::from_le_bytes([lo, hi])))
        .ok_or(past)?;
    if end > block.len() {
        return Err(past);
    }
    *pos = end;
    Ok(start..end)
}

fn shift(r: Range<usize>, base: usize) -> Range<usize> {
    r.start.saturating_add(base)..r.end.saturating_add(base)
}

/// Whether `buf` starts like an HTTP request line (`GET / HTTP/1.1`, `OPTIONS *`,
/// `GET http://host/`): an upper-case method, one space, then `/`, `*` or a `scheme://`.
/// A uwsgi socket that receives one was reached by an HTTP client or an `proxy_pass` meant for
/// an HTTP bind: log that misconfiguration rather than a bare "bad modifier". Needs the first
/// few bytes (up to the start of the target); with fewer it answers false.
#[must_use]
pub fn looks_like_http(buf: &[u8]) -> bool {
    let method = buf.iter().take_while(|c| c.is_ascii_uppercase()).count();
    if method == 0 || method > 20 || buf.get(method) != Some(&b' ') {
        return false;
    }
    let Some(target) = buf.get(method + 1..) else {
        return false;
    };
    match target.first() {
        Some(b'/' | b'*') => true,
        Some(c) if c.is_ascii_alphabetic() => {
            let scheme = target
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || b"+-.".contains(c))
                .count();
            target.get(scheme..).is_some_and(|t| t.starts_with(b"://"))
        }
        _ => false,
    }
}
