//! Request head parsing, fed raw bytes: what is accepted, what is refused and with which status.
use bytes::BytesMut;
use ferrule_proto::http1::{parse_request, BodyKind, RequestHead, Version};
use ferrule_proto::{Limits, ParseError};

fn parse_with(raw: &[u8], limits: &Limits) -> Result<Option<RequestHead>, ParseError> {
    let mut buf = BytesMut::from(raw);
    parse_request(&mut buf, limits)
}

fn parse(raw: &[u8]) -> Result<Option<RequestHead>, ParseError> {
    parse_with(raw, &Limits::default())
}

fn ok(raw: &[u8]) -> RequestHead {
    match parse(raw) {
        Ok(Some(head)) => head,
        other => panic!(
            "expected a head for {:?}, got {other:?}",
            raw.escape_ascii().to_string()
        ),
    }
}

fn err(raw: &[u8]) -> ParseError {
    match parse(raw) {
        Err(e) => e,
        other => panic!(
            "expected an error for {:?}, got {other:?}",
            raw.escape_ascii().to_string()
        ),
    }
}

fn status(raw: &[u8]) -> u16 {
    err(raw).status()
}

fn field<'a>(head: &'a RequestHead, name: &str) -> Option<&'a [u8]> {
    head.fields()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v)
}

#[test]
fn get_with_host_is_parsed() {
    let head = ok(b"GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
    assert_eq!(head.method(), b"GET");
    assert_eq!(head.target(), b"/path?q=1");
    assert_eq!(head.version, Version::Http11);
    assert_eq!(head.host(), Some(&b"example.com"[..]));
    assert_eq!(field(&head, "accept"), Some(&b"*/*"[..]));
    assert_eq!(head.body, BodyKind::Empty);
    assert!(head.keep_alive);
    assert!(!head.expect_continue);
}

#[test]
fn post_with_content_length_leaves_the_body_in_the_buffer() {
    let mut buf = BytesMut::from(
        &b"POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"[..],
    );
    let head = parse_request(&mut buf, &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(head.method(), b"POST");
    assert_eq!(head.body, BodyKind::Length(5));
    assert_eq!(&buf[..], b"hello");
}

#[test]
fn content_length_zero_is_an_empty_body() {
    let head = ok(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(head.body, BodyKind::Empty);
}

#[test]
fn chunked_post_is_parsed() {
    let head = ok(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(head.body, BodyKind::Chunked);
    let head = ok(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n");
    assert_eq!(head.body, BodyKind::Chunked);
}

#[test]
fn pipelined_heads_are_split_one_at_a_time() {
    let mut buf = BytesMut::from(
        &b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\nGET /c HTTP/1.1\r\nHo"[..],
    );
    let limits = Limits::default();
    let a = parse_request(&mut buf, &limits).unwrap().unwrap();
    assert_eq!(a.target(), b"/a");
    let b = parse_request(&mut buf, &limits).unwrap().unwrap();
    assert_eq!(b.target(), b"/b");
    assert!(parse_request(&mut buf, &limits).unwrap().is_none());
    assert_eq!(&buf[..], b"GET /c HTTP/1.1\r\nHo");
    buf.extend_from_slice(b"st: h\r\n\r\n");
    let c = parse_request(&mut buf, &limits).unwrap().unwrap();
    assert_eq!(c.target(), b"/c");
    assert!(buf.is_empty());
}

#[test]
fn partial_input_needs_more_bytes() {
    let full = b"GET /x HTTP/1.1\r\nHost: h\r\nX-A: b\r\n\r\n";
    for end in 0..full.len() {
        assert_eq!(
            parse(&full[..end]).map(|h| h.is_some()),
            Ok(false),
            "prefix of {end} bytes"
        );
    }
    assert!(parse(full).unwrap().is_some());
}

#[test]
fn empty_lines_before_the_request_line_are_skipped() {
    let head = ok(b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(head.target(), b"/");
}

#[test]
fn http10_closes_unless_keep_alive_is_asked() {
    let head = ok(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(head.version, Version::Http10);
    assert!(!head.keep_alive);
    let head = ok(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert!(head.keep_alive);
}

#[test]
fn connection_close_on_http11_ends_keep_alive() {
    let head = ok(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n");
    assert!(!head.keep_alive);
}

// --- limits ---

#[test]
fn request_line_over_the_limit_is_414() {
    let limits = Limits::new(20, 0, 0, 0);
    // Exactly at the limit (20 bytes without CRLF) is fine.
    let line = b"GET /123456 HTTP/1.1";
    assert_eq!(line.len(), 20);
    let mut raw = line.to_vec();
    raw.extend_from_slice(b"\r\nHost: h\r\n\r\n");
    assert!(parse_with(&raw, &limits).unwrap().is_some());
    let raw = b"GET /1234567 HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_eq!(
        parse_with(raw, &limits).unwrap_err(),
        ParseError::RequestLineTooLong
    );
    assert_eq!(ParseError::RequestLineTooLong.status(), 414);
    // Also before the line is complete.
    let raw = b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    assert_eq!(
        parse_with(raw, &limits).unwrap_err(),
        ParseError::RequestLineTooLong
    );
}

#[test]
fn request_line_ending_in_bare_lf_is_held_to_the_same_limit() {
    let limits = Limits::new(20, 0, 0, 0);
    let raw = b"GET /1234567 HTTP/1.1\nHost: h\n\n";
    assert_eq!(
        parse_with(raw, &limits).unwrap_err(),
        ParseError::RequestLineTooLong
    );
}

#[test]
fn too_many_headers_is_431() {
    let limits = Limits::new(0, 3, 0, 0);
    let raw = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
    assert!(parse_with(raw, &limits).unwrap().is_some());
    let raw = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(parse_with(raw, &limits).unwrap_err().status(), 431);
    let raw = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n";
    assert_eq!(parse_with(raw, &limits).unwrap_err().status(), 431);
}

#[test]
fn too_many_headers_is_431_with_a_large_limit() {
    // Above the stack array's size the headers live on the heap.
    let limits = Limits::new(0, 200, 0, 0);
    let mut raw = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
    for i in 0..199 {
        raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    let mut fits = raw.clone();
    fits.extend_from_slice(b"\r\n");
    assert!(parse_with(&fits, &limits).unwrap().is_some());
    raw.extend_from_slice(b"X-last: v\r\n\r\n");
    assert_eq!(parse_with(&raw, &limits).unwrap_err().status(), 431);
}

#[test]
fn oversized_field_is_431() {
    let limits = Limits::new(0, 0, 20, 0);
    // "X-Long: " + value: name + ": " + value must fit in 20.
    let raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-Long: 123456789012\r\n\r\n";
    assert!(parse_with(raw, &limits).unwrap().is_some());
    let raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-Long: 1234567890123\r\n\r\n";
    assert_eq!(parse_with(raw, &limits).unwrap_err().status(), 431);
}

#[test]
fn oversized_field_is_431_before_the_head_ends() {
    let limits = Limits::new(0, 0, 20, 0);
    let raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-Long: 123456789012345678901234567890";
    assert_eq!(parse_with(raw, &limits).unwrap_err().status(), 431);
}

#[test]
fn endless_head_is_refused() {
    let limits = Limits::new(100, 2, 50, 0);
    let mut raw = b"GET / HTTP/1.1\r\n".to_vec();
    for _ in 0..20 {
        raw.extend_from_slice(b"A: b\r\n");
    }
    assert_eq!(parse_with(&raw, &limits).unwrap_err().status(), 431);
}

// --- Host ---

#[test]
fn missing_host_on_http11_is_400() {
    assert_eq!(err(b"GET / HTTP/1.1\r\n\r\n"), ParseError::Host);
    assert_eq!(ParseError::Host.status(), 400);
}

#[test]
fn missing_host_on_http10_is_fine() {
    assert!(ok(b"GET / HTTP/1.0\r\n\r\n").host().is_none());
}

#[test]
fn duplicate_host_is_400() {
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
        ParseError::Host
    );
    assert_eq!(
        err(b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"),
        ParseError::Host
    );
}

#[test]
fn invalid_host_is_400() {
    for host in [
        &b"a b"[..],
        b"a/b",
        b"user@host",
        b"host:port",
        b"host:123456",
        b"[::1",
        b"a\"b",
    ] {
        let mut raw = b"GET / HTTP/1.1\r\nHost: ".to_vec();
        raw.extend_from_slice(host);
        raw.extend_from_slice(b"\r\n\r\n");
        assert_eq!(status(&raw), 400, "{}", host.escape_ascii());
    }
}

#[test]
fn valid_hosts_are_accepted() {
    for host in [
        &b"example.com"[..],
        b"example.com:8080",
        b"127.0.0.1:80",
        b"[::1]:8000",
        b"[::1]",
    ] {
        let mut raw = b"GET / HTTP/1.1\r\nHost: ".to_vec();
        raw.extend_from_slice(host);
        raw.extend_from_slice(b"\r\n\r\n");
        assert_eq!(ok(&raw).host(), Some(host));
    }
}

#[test]
fn empty_host_is_accepted() {
    // RFC 9112 section 3.2: an empty Host is sent when the target has no authority.
    assert_eq!(
        ok(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").host(),
        Some(&b""[..])
    );
}

// --- field syntax ---

#[test]
fn whitespace_before_colon_is_400() {
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost : h\r\n\r\n"), 400);
    assert_eq!(
        status(b"GET / HTTP/1.1\r\nHost: h\r\nX-A\t: b\r\n\r\n"),
        400
    );
}

#[test]
fn obs_fold_is_400() {
    assert_eq!(
        status(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: b\r\n c\r\n\r\n"),
        400
    );
    assert_eq!(
        status(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: b\r\n\tc\r\n\r\n"),
        400
    );
}

#[test]
fn whitespace_before_the_first_field_is_400() {
    assert_eq!(status(b"GET / HTTP/1.1\r\n Host: h\r\n\r\n"), 400);
}

#[test]
fn nul_in_value_is_400() {
    assert_eq!(
        status(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n"),
        400
    );
}

#[test]
fn cr_in_value_is_400() {
    assert_eq!(
        status(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n"),
        400
    );
    assert_eq!(
        status(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: ab\r\r\n\r\n"),
        400
    );
}

#[test]
fn other_controls_in_value_are_400() {
    assert_eq!(
        status(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01b\r\n\r\n"),
        400
    );
    assert_eq!(
        status(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7fb\r\n\r\n"),
        400
    );
}

#[test]
fn tab_and_obs_text_in_value_are_kept() {
    let head = ok(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\tb\xe9\r\n\r\n");
    assert_eq!(field(&head, "x-a"), Some(&b"a\tb\xe9"[..]));
}

#[test]
fn value_whitespace_is_trimmed() {
    let head = ok(b"GET / HTTP/1.1\r\nHost: h\r\nX-A:  \t a b \t \r\nX-B:\r\n\r\n");
    assert_eq!(field(&head, "x-a"), Some(&b"a b"[..]));
    assert_eq!(field(&head, "x-b"), Some(&b""[..]));
}

#[test]
fn non_token_header_name_is_400() {
    for name in [
        &b"X(A)"[..],
        b"X/A",
        b"X@A",
        b"X\"A",
        b"X\xe9A",
        b"",
        b"X{A}",
    ] {
        let mut raw = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        raw.extend_from_slice(name);
        raw.extend_from_slice(b": v\r\n\r\n");
        assert_eq!(status(&raw), 400, "{}", name.escape_ascii());
    }
}

#[test]
fn field_line_without_colon_is_400() {
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n"), 400);
}

#[test]
fn bare_lf_line_endings_are_accepted() {
    // RFC 9112 section 2.2: a recipient MAY recognize a single LF as a line terminator.
    let head = ok(b"GET / HTTP/1.1\nHost: h\nX-A: b\n\n");
    assert_eq!(field(&head, "x-a"), Some(&b"b"[..]));
}

#[test]
fn bare_cr_line_ending_is_400() {
    assert_eq!(status(b"GET / HTTP/1.1\rHost: h\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: h\rX-A: b\r\n\r\n"), 400);
}

// --- Content-Length ---

#[test]
fn content_length_not_a_plain_decimal_is_400() {
    for cl in [
        &b"abc"[..],
        b"0x10",
        b"1e3",
        b"+5",
        b"-5",
        b"5 5",
        b"",
        b"5,",
        b"1_000",
    ] {
        let mut raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ".to_vec();
        raw.extend_from_slice(cl);
        raw.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            err(&raw),
            ParseError::ContentLength,
            "{}",
            cl.escape_ascii()
        );
    }
}

#[test]
fn overflowing_content_length_is_400() {
    assert_eq!(
        err(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\n"),
        ParseError::ContentLength
    );
    assert_eq!(
        err(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
        ParseError::ContentLength
    );
}

#[test]
fn large_content_length_within_u64_is_accepted() {
    let head = ok(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9999999999\r\n\r\n");
    assert_eq!(head.body, BodyKind::Length(9_999_999_999));
}

#[test]
fn differing_content_lengths_are_400() {
    assert_eq!(
        err(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
        ParseError::ContentLength
    );
    assert_eq!(
        err(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n"),
        ParseError::ContentLength
    );
}

#[test]
fn identical_content_lengths_merge() {
    let head = ok(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(head.body, BodyKind::Length(5));
    let head = ok(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n");
    assert_eq!(head.body, BodyKind::Length(5));
}

#[test]
fn content_length_over_the_body_limit_is_413() {
    let limits = Limits::new(0, 0, 0, 10);
    let raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n";
    assert!(parse_with(raw, &limits).unwrap().is_some());
    let raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n";
    assert_eq!(parse_with(raw, &limits).unwrap_err().status(), 413);
}

// --- Transfer-Encoding ---

#[test]
fn transfer_encoding_on_http10_is_400() {
    assert_eq!(
        err(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ParseError::TransferEncoding
    );
}

#[test]
fn transfer_encoding_with_content_length_is_400() {
    assert_eq!(
        err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
        ParseError::TransferEncoding
    );
    assert_eq!(
        err(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ParseError::TransferEncoding
    );
}

#[test]
fn chunked_not_last_is_400() {
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
        400
    );
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"),
        400
    );
}

#[test]
fn chunked_twice_is_400() {
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
        400
    );
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
        400
    );
}

#[test]
fn other_transfer_coding_is_501() {
    assert_eq!(
        err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        ParseError::UnsupportedTransferCoding
    );
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip,chunked\r\n\r\n"),
        501
    );
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"),
        501
    );
}

#[test]
fn malformed_transfer_encoding_is_400() {
    for te in [&b""[..], b"chun ked", b"\"chunked\"", b"chunked;q=1"] {
        let mut raw = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ".to_vec();
        raw.extend_from_slice(te);
        raw.extend_from_slice(b"\r\n\r\n");
        assert_eq!(status(&raw), 400, "{}", te.escape_ascii());
    }
}

// --- Expect ---

#[test]
fn expect_100_continue_is_noted_on_http11() {
    let head =
        ok(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n");
    assert!(head.expect_continue);
}

#[test]
fn expect_100_continue_is_ignored_on_http10() {
    let head = ok(b"POST / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    assert!(!head.expect_continue);
}

#[test]
fn other_expectation_is_417() {
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n"),
        417
    );
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue, foo\r\n\r\n"),
        417
    );
}

// --- request line ---

#[test]
fn unsupported_versions_are_505() {
    for v in [&b"HTTP/2.0"[..], b"HTTP/3", b"HTTP/0.9", b"HTTP/2.1"] {
        let mut raw = b"GET / ".to_vec();
        raw.extend_from_slice(v);
        raw.extend_from_slice(b"\r\nHost: h\r\n\r\n");
        assert_eq!(err(&raw), ParseError::Version, "{}", v.escape_ascii());
        assert_eq!(ParseError::Version.status(), 505);
    }
}

#[test]
fn higher_minor_versions_of_http1_are_served_as_http11() {
    for v in [&b"HTTP/1.2"[..], b"HTTP/1.9"] {
        let mut raw = b"GET /p ".to_vec();
        raw.extend_from_slice(v);
        raw.extend_from_slice(b"\r\nHost: h\r\n\r\nrest");
        let mut buf = BytesMut::from(&raw[..]);
        let head = parse_request(&mut buf, &Limits::default())
            .expect("served")
            .expect("complete");
        assert_eq!(head.version, Version::Http11, "{}", v.escape_ascii());
        assert!(head.keep_alive);
        assert_eq!(head.target(), b"/p");
        assert_eq!(head.host(), Some(&b"h"[..]));
        assert_eq!(&buf[..], b"rest");
    }
    // Bare LF, and the line still arriving.
    assert_eq!(ok(b"GET / HTTP/1.2\nHost: h\n\n").version, Version::Http11);
    assert!(parse(b"GET / HTTP/1.2").unwrap().is_none());
    // Not one digit: still junk.
    assert_eq!(status(b"GET / HTTP/1.22\r\nHost: h\r\n\r\n"), 400);
}

#[test]
fn garbage_version_is_400() {
    assert_eq!(status(b"GET / FOO/1.1\r\nHost: h\r\n\r\n"), 400);
    assert_eq!(status(b"GET / http/1.1\r\nHost: h\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.10\r\nHost: h\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/11\r\nHost: h\r\n\r\n"), 400);
    // A space inside the target makes "b" the version: junk, not an unknown version.
    assert_eq!(status(b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
}

#[test]
fn unsupported_version_is_505_before_the_line_ends() {
    assert_eq!(parse(b"GET / HTTP/2").unwrap_err(), ParseError::Version);
}

#[test]
fn http09_request_line_is_400() {
    assert_eq!(status(b"GET /\r\n\r\n"), 400);
}

#[test]
fn malformed_request_lines_are_400() {
    for raw in [
        &b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n"[..],
        b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
        b"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n",
        b" GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /\0 HTTP/1.1\r\nHost: h\r\n\r\n",
    ] {
        assert_eq!(status(raw), 400, "{}", raw.escape_ascii());
    }
}

#[test]
fn connect_is_501() {
    assert_eq!(
        err(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
        ParseError::Method
    );
    assert_eq!(ParseError::Method.status(), 501);
}

#[test]
fn absolute_form_target_is_accepted() {
    let head = ok(b"GET http://example.com:8080/a?b HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(head.target(), b"http://example.com:8080/a?b");
    let head = ok(b"GET https://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(head.target(), b"https://example.com");
}

#[test]
fn absolute_form_authority_replaces_the_host_field() {
    let head = ok(b"GET http://abs.example:8081/p HTTP/1.1\r\nHost: other:9\r\nX: y\r\n\r\n");
    assert_eq!(head.host(), Some(&b"abs.example:8081"[..]));
    assert_eq!(field(&head, "host"), Some(&b"abs.example:8081"[..]));
    assert_eq!(field(&head, "x"), Some(&b"y"[..]));
    let head = ok(b"GET https://[::1]?q HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(head.host(), Some(&b"[::1]"[..]));
    // Origin-form keeps the Host field; HTTP/1.0 without one has none to replace.
    assert_eq!(
        ok(b"GET /p HTTP/1.1\r\nHost: h\r\n\r\n").host(),
        Some(&b"h"[..])
    );
    assert_eq!(ok(b"GET http://a/p HTTP/1.0\r\n\r\n").host(), None);
}

#[test]
fn malformed_absolute_form_is_400() {
    for target in [
        &b"http://"[..],
        b"http:///a",
        b"ftp://x/",
        b"http://a b/",
        b"example.com/",
    ] {
        let mut raw = b"GET ".to_vec();
        raw.extend_from_slice(target);
        raw.extend_from_slice(b" HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(status(&raw), 400, "{}", target.escape_ascii());
    }
}

#[test]
fn asterisk_form_only_for_options() {
    let head = ok(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(head.target(), b"*");
    assert_eq!(status(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    assert_eq!(status(b"OPTIONS *a HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
}

#[test]
fn extension_methods_are_accepted() {
    let head = ok(b"PURGE /x HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(head.method(), b"PURGE");
}

#[test]
fn tchar_table_is_rfc_9110_tchar() {
    // tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" /
    //         "|" / "~" / DIGIT / ALPHA
    for c in 0..=255u8 {
        let rfc = c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
        assert_eq!(ferrule_proto::http1::is_tchar(c), rfc, "byte {c:#04x}");
    }
    assert!(ferrule_proto::http1::is_token(b"X-Request-Id"));
    assert!(!ferrule_proto::http1::is_token(b""));
    assert!(!ferrule_proto::http1::is_token(b"Bad Name"));
    assert!(!ferrule_proto::http1::is_token(b"caf\xc3\xa9"));
}

#[test]
fn host_names_take_exactly_rfc_3986_reg_name_bytes() {
    // reg-name = *( unreserved / pct-encoded / sub-delims ); unreserved = ALPHA / DIGIT /
    // "-" / "." / "_" / "~"; sub-delims = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" /
    // "," / ";" / "="; pct-encoded starts with "%". (":" separates the port.)
    for c in 0..=255u8 {
        if c == b':' {
            continue;
        }
        let expected = c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&c);
        assert_eq!(
            ferrule_proto::cgi::valid_host(&[b'a', c, b'b']),
            expected,
            "byte {c:#04x}"
        );
    }
}
