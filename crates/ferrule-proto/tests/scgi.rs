//! SCGI netstring heads from raw bytes: whole, every prefix, and every malformed case.
use bytes::BytesMut;
use ferrule_proto::limits::GatewayLimits;
use ferrule_proto::scgi::{parse_head, ScgiHead};
use ferrule_proto::{ParseError, ScgiError};

/// Encodes a netstring of NUL-terminated name/value strings.
fn netstring(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut content = Vec::new();
    for (n, v) in pairs {
        content.extend_from_slice(n);
        content.push(0);
        content.extend_from_slice(v);
        content.push(0);
    }
    raw(&content)
}

fn raw(content: &[u8]) -> Vec<u8> {
    let mut out = format!("{}:", content.len()).into_bytes();
    out.extend_from_slice(content);
    out.push(b',');
    out
}

fn parse(input: &[u8]) -> Result<Option<ScgiHead>, ParseError> {
    parse_with(input, &GatewayLimits::default())
}

fn parse_with(input: &[u8], limits: &GatewayLimits) -> Result<Option<ScgiHead>, ParseError> {
    let mut buf = BytesMut::from(input);
    let r = parse_head(&mut buf, limits);
    if let Ok(Some(h)) = &r {
        assert_eq!(buf.len(), input.len() - h.head_len);
    }
    r
}

fn err(input: &[u8]) -> ScgiError {
    match parse(input) {
        Err(ParseError::Scgi(e)) => e,
        other => panic!("expected an SCGI error, got {other:?}"),
    }
}

fn nginx_pairs() -> Vec<(&'static [u8], &'static [u8])> {
    vec![
        (b"CONTENT_LENGTH", b"5"),
        (b"SCGI", b"1"),
        (b"REQUEST_METHOD", b"POST"),
        (b"REQUEST_URI", b"/a%2Fb?x=%C3%A9"),
        (b"QUERY_STRING", b"x=%C3%A9"),
        (b"CONTENT_TYPE", b"text/plain"),
        (b"DOCUMENT_URI", b"/a/b"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REMOTE_ADDR", b"127.0.0.1"),
        (b"HTTP_HOST", b"localhost"),
    ]
}

#[test]
fn spec_example_is_parsed() {
    // The example from the SCGI spec, body included.
    let input = b"70:CONTENT_LENGTH\x0027\x00SCGI\x001\x00REQUEST_METHOD\x00POST\x00REQUEST_URI\x00/deepthought\x00,What is the answer to life?";
    let h = parse(input).unwrap().unwrap();
    assert_eq!(h.content_length, 27);
    assert_eq!(h.head_len, 74);
    assert_eq!(h.vars.get(b"REQUEST_URI"), Some(&b"/deepthought"[..]));
}

#[test]
fn nginx_head_is_parsed_and_body_left() {
    let mut input = netstring(&nginx_pairs());
    input.extend_from_slice(b"hello");
    let h = parse(&input).unwrap().unwrap();
    assert_eq!(h.content_length, 5);
    assert_eq!(h.vars.iter().collect::<Vec<_>>(), nginx_pairs());
}

#[test]
fn every_prefix_needs_more_bytes() {
    let input = netstring(&nginx_pairs());
    for end in 0..input.len() {
        assert_eq!(parse(&input[..end]), Ok(None), "prefix of {end} bytes");
    }
}

#[test]
fn empty_values_and_repeated_names_are_kept() {
    let h = parse(&netstring(&[
        (b"CONTENT_LENGTH", b"0"),
        (b"SCGI", b"1"),
        (b"X", b""),
        (b"X", b"2"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(h.vars.get(b"X"), Some(&b"2"[..]));
    assert_eq!(h.vars.len(), 4);
}

#[test]
fn bad_length_digits_are_refused() {
    for bad in [
        &b":,"[..],
        b"+5:abcde,",
        b"-1:",
        b" 5:",
        b"5 :",
        b"0x5:",
        b"5;",
        b"a",
    ] {
        assert_eq!(err(bad), ScgiError::LengthDigits, "{}", bad.escape_ascii());
    }
}

#[test]
fn leading_zeros_are_refused() {
    let mut input = b"0".to_vec();
    input.extend_from_slice(&netstring(&nginx_pairs()));
    assert_eq!(err(&input), ScgiError::LengthDigits);
    assert_eq!(err(b"00:,"), ScgiError::LengthDigits);
}

#[test]
fn empty_netstring_has_no_content_length() {
    assert_eq!(err(b"0:,"), ScgiError::ContentLengthNotFirst);
}

#[test]
fn length_over_the_limit_is_refused_before_the_content() {
    let limits = GatewayLimits::new(1000, 0);
    assert_eq!(
        parse_with(b"1001", &limits),
        Err(ParseError::Scgi(ScgiError::HeadTooLarge))
    );
    assert_eq!(parse_with(b"1000:", &limits), Ok(None));
    assert_eq!(err(b"99999999999999999999999999:"), ScgiError::HeadTooLarge);
}

#[test]
fn missing_comma_is_refused() {
    let mut input = netstring(&nginx_pairs());
    *input.last_mut().unwrap() = b';';
    assert_eq!(err(&input), ScgiError::MissingComma);
}

#[test]
fn odd_number_of_strings_is_refused() {
    assert_eq!(
        err(&raw(b"CONTENT_LENGTH\x000\x00SCGI\x00")),
        ScgiError::OddStrings
    );
    // Content not ending in NUL.
    assert_eq!(
        err(&raw(b"CONTENT_LENGTH\x000\x00SCGI\x001")),
        ScgiError::OddStrings
    );
}

#[test]
fn content_length_must_come_first() {
    assert_eq!(
        err(&netstring(&[(b"SCGI", b"1"), (b"CONTENT_LENGTH", b"0")])),
        ScgiError::ContentLengthNotFirst
    );
    assert_eq!(
        err(&netstring(&[(b"SCGI", b"1")])),
        ScgiError::ContentLengthNotFirst
    );
}

#[test]
fn duplicate_content_length_is_refused() {
    assert_eq!(
        err(&netstring(&[
            (b"CONTENT_LENGTH", b"0"),
            (b"SCGI", b"1"),
            (b"CONTENT_LENGTH", b"10"),
        ])),
        ScgiError::DuplicateContentLength
    );
}

#[test]
fn bad_content_length_is_refused() {
    for bad in [&b""[..], b"-1", b"1.0", b" 1", b"99999999999999999999"] {
        assert_eq!(
            err(&netstring(&[(b"CONTENT_LENGTH", bad), (b"SCGI", b"1")])),
            ScgiError::ContentLength,
            "{}",
            bad.escape_ascii()
        );
    }
}

#[test]
fn scgi_must_be_one() {
    assert_eq!(
        err(&netstring(&[(b"CONTENT_LENGTH", b"0")])),
        ScgiError::ScgiVersion
    );
    assert_eq!(
        err(&netstring(&[(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"2")])),
        ScgiError::ScgiVersion
    );
}

#[test]
fn more_headers_than_the_limit_are_refused() {
    let mut pairs: Vec<(&[u8], &[u8])> = vec![(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1")];
    pairs.extend(std::iter::repeat_n((&b"X"[..], &b"y"[..]), 3));
    let limits = GatewayLimits::new(0, 4);
    assert_eq!(
        parse_with(&netstring(&pairs), &limits),
        Err(ParseError::Scgi(ScgiError::TooManyVars))
    );
    assert!(parse_with(&netstring(&pairs[..4]), &limits)
        .unwrap()
        .is_some());
}
