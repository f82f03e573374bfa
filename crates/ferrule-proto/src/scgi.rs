//! The SCGI request head (<https://python.ca/scgi/protocol.txt>), as nginx's `scgi_pass` sends
//! it: one netstring `<len>:<headers>,` whose content is NUL-terminated name and value strings.
//!
//! Held to the spec: the length is decimal digits without sign, space or leading zero (djb's
//! netstrings), bounded by [`GatewayLimits::vars_size`]; `CONTENT_LENGTH` is the first header,
//! sent once, a plain decimal number; an `SCGI` header with value `1` is present. Other names
//! may repeat, the last one winning (see [`CgiVars`]). The body, `CONTENT_LENGTH` bytes, follows
//! the comma and is read by the caller.
//!
//! ```
//! use bytes::BytesMut;
//! use ferrule_proto::limits::GatewayLimits;
//! use ferrule_proto::scgi::parse_head;
//!
//! let mut buf = BytesMut::from(&b"24:CONTENT_LENGTH\x002\x00SCGI\x001\x00,hi"[..]);
//! let head = parse_head(&mut buf, &GatewayLimits::default()).unwrap().unwrap();
//! assert_eq!(head.content_length, 2);
//! assert_eq!(&buf[..], b"hi");
//! ```
use std::ops::Range;

use bytes::BytesMut;

use crate::ascii::parse_decimal;
use crate::error::ScgiError;
use crate::limits::GatewayLimits;
use crate::vars::{CgiVars, Spans};
use crate::ParseError;

/// A parsed SCGI request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScgiHead {
    /// The headers (CGI variables), spans into the head's bytes; `CONTENT_LENGTH` first.
    pub vars: CgiVars,
    /// `CONTENT_LENGTH`: the body bytes that follow the head.
    pub content_length: u64,
    /// Bytes the netstring took, split off the caller's buffer.
    pub head_len: usize,
}

/// Parses one SCGI netstring head from the front of `buf`.
///
/// `Ok(None)`: not complete yet (read more). `Ok(Some(head))`: the netstring was split off
/// `buf`, which now starts with the body. `Err`: log it and close the connection.
pub fn parse_head(
    buf: &mut BytesMut,
    limits: &GatewayLimits,
) -> Result<Option<ScgiHead>, ParseError> {
    let err = |e| ParseError::Scgi(e);
    let Some((content, head_len)) = netstring(buf, limits.vars_size).map_err(err)? else {
        return Ok(None);
    };
    let block = buf.get(content.clone()).unwrap_or_default();
    let spans = decode_headers(block, content.start, limits).map_err(err)?;
    let vars = CgiVars::new(buf.split_to(head_len).freeze(), spans);
    let content_length = vars
        .iter()
        .next()
        .and_then(|(_, v)| parse_decimal(v))
        .ok_or(err(ScgiError::ContentLength))?;
    if vars.get(b"SCGI") != Some(b"1") {
        return Err(err(ScgiError::ScgiVersion));
    }
    Ok(Some(ScgiHead {
        vars,
        content_length,
        head_len,
    }))
}

/// Finds a complete netstring at the front of `buf`: the content's span and the total length
/// (through the comma). `Ok(None)` while incomplete.
fn netstring(buf: &[u8], max: usize) -> Result<Option<(Range<usize>, usize)>, ScgiError> {
    let mut len: usize = 0;
    let mut digits = 0;
    for &c in buf {
        match c {
            b'0'..=b'9' => {
                if digits == 1 && len == 0 {
                    return Err(ScgiError::LengthDigits);
                }
                len = len
                    .checked_mul(10)
                    .and_then(|l| l.checked_add(usize::from(c - b'0')))
                    .filter(|&l| l <= max)
                    .ok_or(ScgiError::HeadTooLarge)?;
                digits += 1;
            }
            b':' if digits > 0 => {
                let start: usize = digits + 1;
                let end = start.checked_add(len).ok_or(ScgiError::HeadTooLarge)?;
                return match buf.get(end) {
                    None => Ok(None),
                    Some(b',') => Ok(Some((start..end, end + 1))),
                    Some(_) => Err(ScgiError::MissingComma),
                };
            }
            _ => return Err(ScgiError::LengthDigits),
        }
    }
    Ok(None)
}

/// Splits the netstring content into (name, value) spans offset by `base`, checking the
/// `CONTENT_LENGTH` rules.
fn decode_headers(block: &[u8], base: usize, limits: &GatewayLimits) -> Result<Spans, ScgiError> {
    if block.last().is_some_and(|&c| c != 0) {
        return Err(ScgiError::OddStrings);
    }
    let mut spans = Vec::new();
    let mut strings = memchr::memchr_iter(0, block);
    let mut start = 0;
    let mut next = || -> Option<Range<usize>> {
        let end = strings.next()?;
        let r = start + base..end + base;
        start = end + 1;
        Some(r)
    };
    while let Some(name) = next() {
        let value = next().ok_or(ScgiError::OddStrings)?;
        let is_cl = block.get(name.start - base..name.end - base) == Some(b"CONTENT_LENGTH");
        match (spans.is_empty(), is_cl) {
            (true, false) => return Err(ScgiError::ContentLengthNotFirst),
            (false, true) => return Err(ScgiError::DuplicateContentLength),
            _ => {}
        }
        if spans.len() >= limits.vars {
            return Err(ScgiError::TooManyVars);
        }
        spans.push((name, value));
    }
    if spans.is_empty() {
        return Err(ScgiError::ContentLengthNotFirst);
    }
    Ok(spans)
}
