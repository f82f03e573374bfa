//! Request head parsing: `httparse` for the syntax, then the stricter checks RFC 9112 asks of a
//! server (Host, Content-Length, Transfer-Encoding, Expect, request target).
use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::BytesMut;

use super::{BodyKind, RequestHead, Version};
use crate::ascii;
use crate::cgi::valid_host;
use crate::{Limits, ParseError};

/// Headers parsed on the stack when the field limit allows; beyond it, on the heap.
const STACK_HEADERS: usize = 128;

/// Parses one request head from the front of `buf`.
///
/// `Ok(None)`: the head is not complete yet (read more). `Ok(Some(head))`: the head's bytes were
/// split off `buf`, which now starts with the body or the next request. `Err`: refuse the request
/// with [`ParseError::status`] and close the connection.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<RequestHead>, ParseError> {
    // Empty lines before a request line are ignored (RFC 9112 section 2.2).
    let skip = buf
        .iter()
        .take_while(|&&c| c == b'\r' || c == b'\n')
        .count();
    if skip > 0 {
        let _ = buf.split_to(skip);
    }
    if buf.is_empty() {
        return Ok(None);
    }
    let first_nl = memchr::memchr(b'\n', buf);
    // The request line's length without its CRLF (or bare LF); while incomplete, what has come.
    let line_len = match first_nl {
        Some(end) if end > 0 && buf.get(end - 1) == Some(&b'\r') => end - 1,
        Some(end) => end,
        None => buf
            .len()
            .saturating_sub(usize::from(buf.last() == Some(&b'\r'))),
    };
    if line_len > limits.request_line {
        return Err(ParseError::RequestLineTooLong);
    }
    let parsed = match parse_sized(buf, limits) {
        // `HTTP/1.2` and later minor versions are served as HTTP/1.1 (RFC 9110 section 2.5):
        // the digit is rewritten in place (only this error path pays for it).
        Err(ParseError::Version) if to_http11(buf) => parse_sized(buf, limits)?,
        other => other?,
    };
    let Some((mut head, len)) = parsed else {
        if buf.len() > limits.max_head() {
            return Err(ParseError::HeaderTooLarge);
        }
        // A field line still arriving that is already over the limit: refuse it now rather
        // than buffer up to the whole head's limit first.
        if first_nl.is_some() {
            let tail_start = memchr::memrchr(b'\n', buf).map_or(0, |p| p + 1);
            if buf.len() - tail_start > limits.field_size + 2 {
                return Err(ParseError::HeaderTooLarge);
            }
        }
        return Ok(None);
    };
    head.buf = buf.split_to(len).freeze();
    Ok(Some(head))
}

/// [`parse_with`] with a header array sized by the field limit.
fn parse_sized(buf: &[u8], limits: &Limits) -> Result<Option<(RequestHead, usize)>, ParseError> {
    // Left uninitialised: httparse writes the slots it fills (initialising 128 slots was a
    // quarter of the connection task's own time on small requests).
    if limits.request_fields < STACK_HEADERS {
        let mut headers = [const { MaybeUninit::uninit() }; STACK_HEADERS];
        parse_with(buf, limits, &mut headers[..=limits.request_fields])
    } else {
        let mut headers = Vec::new();
        headers.resize_with(limits.request_fields + 1, MaybeUninit::uninit);
        parse_with(buf, limits, &mut headers)
    }
}

/// When the request line's version is `HTTP/1.x` with a minor digit above 1, rewrites the
/// digit to `1` in `buf` and returns true: the request is served as HTTP/1.1, the highest
/// minor version of major version 1 we speak (RFC 9110 section 2.5). Other majors stay 505.
fn to_http11(buf: &mut BytesMut) -> bool {
    let end = memchr::memchr(b'\n', buf).unwrap_or(buf.len());
    let line_end = match end.checked_sub(1) {
        Some(cr) if buf.get(cr) == Some(&b'\r') => cr,
        _ => end,
    };
    let Some(line) = buf.get(..line_end) else {
        return false;
    };
    let Some(space) = memchr::memrchr(b' ', line) else {
        return false;
    };
    let version_at = space + 1;
    match line.get(version_at..) {
        Some([b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor])
            if (b'2'..=b'9').contains(minor) =>
        {
            if let Some(digit) = buf.get_mut(version_at + 7) {
                *digit = b'1';
                return true;
            }
            false
        }
        _ => false,
    }
}

fn span(base: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(base.as_ptr() as usize);
    start..start + part.len()
}

fn parse_with<'b>(
    buf: &'b [u8],
    limits: &Limits,
    headers: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<(RequestHead, usize)>, ParseError> {
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(map_httparse(e, buf, limits)),
    };
    // More fields than the limit: the array holds one spare slot to tell.
    if req.headers.len() > limits.request_fields {
        return Err(ParseError::TooManyHeaders);
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(ParseError::Syntax("incomplete request line"));
    };
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let method_b = method.as_bytes();
    check_target(method_b, target.as_bytes())?;

    let mut fields = Vec::with_capacity(req.headers.len());
    let mut host = None;
    let mut length: Option<u64> = None;
    let mut te_seen = false;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;
    for (i, h) in req.headers.iter().enumerate() {
        let name = h.name.as_bytes();
        let value = h.value;
        if name.len() + 2 + value.len() > limits.field_size {
            return Err(ParseError::HeaderTooLarge);
        }
        if !super::is_field_value(value) {
            return Err(ParseError::Syntax("control character in a header value"));
        }
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                if host.is_some() || !valid_host(value) {
                    return Err(ParseError::Host);
                }
                host = Some(i);
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                for item in value.split(|&c| c == b',') {
                    let n = ascii::parse_decimal(ascii::trim_ows(item))
                        .ok_or(ParseError::ContentLength)?;
                    if length.is_some_and(|l| l != n) {
                        return Err(ParseError::ContentLength);
                    }
                    length = Some(n);
                }
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                if version == Version::Http10 {
                    return Err(ParseError::TransferEncoding);
                }
                te_seen = true;
                for item in value.split(|&c| c == b',') {
                    let coding = ascii::trim_ows(item);
                    if coding.is_empty() {
                        continue;
                    }
                    if chunked {
                        // Anything after chunked, or chunked twice.
                        return Err(ParseError::TransferEncoding);
                    }
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        chunked = true;
                    } else if super::is_token(coding) {
                        return Err(ParseError::UnsupportedTransferCoding);
                    } else {
                        return Err(ParseError::TransferEncoding);
                    }
                }
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for item in value.split(|&c| c == b',') {
                    let token = ascii::trim_ows(item);
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                if !value.eq_ignore_ascii_case(b"100-continue") {
                    return Err(ParseError::Expectation);
                }
                expect_continue = version == Version::Http11;
            }
            _ => {}
        }
        fields.push((span(buf, name), span(buf, value)));
    }
    if version == Version::Http11 && host.is_none() {
        return Err(ParseError::Host);
    }
    // Absolute-form: the target's authority is the host, the Host field is ignored (RFC 9112
    // section 3.2.2); the field's value span is pointed at the authority.
    if let (Some(i), Some(authority)) = (host, absolute_authority(target.as_bytes())) {
        if let Some((_, value)) = fields.get_mut(i) {
            *value = span(buf, authority);
        }
    }
    if te_seen && !chunked {
        return Err(ParseError::TransferEncoding);
    }
    let body = match (chunked, length) {
        (true, Some(_)) => return Err(ParseError::TransferEncoding),
        (true, None) => BodyKind::Chunked,
        (false, Some(0) | None) => BodyKind::Empty,
        (false, Some(n)) => BodyKind::Length(n),
    };
    if let BodyKind::Length(n) = body {
        if limits.body_too_large(n) {
            return Err(ParseError::BodyTooLarge);
        }
    }
    let keep_alive = match version {
        Version::Http11 | Version::Http2 => !close,
        Version::Http10 => keep_alive_token && !close,
    };
    let head = RequestHead {
        buf: bytes::Bytes::new(),
        method: span(buf, method_b),
        target: span(buf, target.as_bytes()),
        version,
        headers: fields,
        body,
        keep_alive,
        expect_continue,
        host,
    };
    Ok(Some((head, len)))
}

fn map_httparse(e: httparse::Error, buf: &[u8], limits: &Limits) -> ParseError {
    match e {
        httparse::Error::TooManyHeaders => ParseError::TooManyHeaders,
        httparse::Error::Version => {
            if is_other_version(buf) {
                ParseError::Version
            } else {
                ParseError::Syntax("invalid request line")
            }
        }
        httparse::Error::HeaderName => {
            ParseError::Syntax("invalid header name (whitespace, obs-fold or non-token)")
        }
        httparse::Error::HeaderValue => ParseError::Syntax("invalid header value"),
        httparse::Error::NewLine => ParseError::Syntax("invalid line ending"),
        httparse::Error::Token => ParseError::Syntax("invalid method"),
        _ if buf.len() > limits.max_head() => ParseError::HeaderTooLarge,
        httparse::Error::Status => ParseError::Syntax("invalid request line"),
    }
}

/// Whether the request line is `method SP target SP HTTP/x[.y]` with a well-formed version we
/// do not speak ("HTTP/2.0", "HTTP/1.2", "HTTP/3"): that is a 505, any other junk a 400.
fn is_other_version(buf: &[u8]) -> bool {
    let line = buf.split(|&c| c == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&c| c == b' ');
    let (Some(_method), Some(_target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Some(number) = version.strip_prefix(b"HTTP/") else {
        return false;
    };
    match number {
        // A version cut short by the read ("HTTP/2.") counts as the version it begins.
        [major] | [major, b'.'] => major.is_ascii_digit(),
        [major, b'.', minor] => major.is_ascii_digit() && minor.is_ascii_digit(),
        _ => false,
    }
}

/// The authority of an absolute-form target (`http://host:port/p`), checked already by
/// [`check_target`]; None for other forms.
fn absolute_authority(target: &[u8]) -> Option<&[u8]> {
    if target.first() == Some(&b'/') {
        return None;
    }
    crate::cgi::split_target(target).authority
}

/// The request target forms of RFC 9112 section 3.2 that an origin server serves.
fn check_target(method: &[u8], target: &[u8]) -> Result<(), ParseError> {
    if method == b"CONNECT" {
        return Err(ParseError::Method);
    }
    match target.first() {
        Some(b'/') => Ok(()),
        Some(b'*') if target.len() == 1 && method == b"OPTIONS" => Ok(()),
        _ => {
            let after = |scheme: &[u8]| {
                let (head, rest) = target.split_at_checked(scheme.len())?;
                head.eq_ignore_ascii_case(scheme).then_some(rest)
            };
            let (scheme_ok, rest) = match after(b"http://").or_else(|| after(b"https://")) {
                Some(rest) => (true, rest),
                None => (false, target),
            };
            let authority = rest
                .split(|&c| c == b'/' || c == b'?')
                .next()
                .unwrap_or_default();
            if scheme_ok && valid_host(authority) && !authority.is_empty() {
                Ok(())
            } else {
                Err(ParseError::Syntax("invalid request target"))
            }
        }
    }
}
