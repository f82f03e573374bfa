//! uwsgi packet heads from raw bytes: whole, byte by byte, and every malformed case.
use bytes::BytesMut;
use ferrule_proto::limits::GatewayLimits;
use ferrule_proto::uwsgi::{looks_like_http, parse_packet, UwsgiPacket};
use ferrule_proto::{ParseError, UwsgiError};

/// Encodes a uwsgi packet head (modifier1 0) with these vars.
fn packet(vars: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut block = Vec::new();
    for (k, v) in vars {
        block.extend_from_slice(&(k.len() as u16).to_le_bytes());
        block.extend_from_slice(k);
        block.extend_from_slice(&(v.len() as u16).to_le_bytes());
        block.extend_from_slice(v);
    }
    let mut out = vec![0];
    out.extend_from_slice(&(block.len() as u16).to_le_bytes());
    out.push(0);
    out.extend_from_slice(&block);
    out
}

fn parse(input: &[u8]) -> Result<Option<UwsgiPacket>, ParseError> {
    parse_with(input, &GatewayLimits::default())
}

fn parse_with(input: &[u8], limits: &GatewayLimits) -> Result<Option<UwsgiPacket>, ParseError> {
    let mut buf = BytesMut::from(input);
    let r = parse_packet(&mut buf, limits);
    if let Ok(Some(p)) = &r {
        assert_eq!(buf.len(), input.len() - p.head_len);
    }
    r
}

fn err(input: &[u8]) -> UwsgiError {
    match parse(input) {
        Err(ParseError::Uwsgi(e)) => e,
        other => panic!("expected a uwsgi error, got {other:?}"),
    }
}

/// What nginx's stock uwsgi_params send for `GET /a%2Fb?x=1`.
fn nginx_vars() -> Vec<(&'static [u8], &'static [u8])> {
    vec![
        (b"QUERY_STRING", b"x=1"),
        (b"REQUEST_METHOD", b"GET"),
        (b"CONTENT_TYPE", b""),
        (b"CONTENT_LENGTH", b""),
        (b"REQUEST_URI", b"/a%2Fb?x=1"),
        (b"PATH_INFO", b"/a/b"),
        (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REQUEST_SCHEME", b"http"),
        (b"REMOTE_ADDR", b"127.0.0.1"),
        (b"REMOTE_PORT", b"51234"),
        (b"SERVER_PORT", b"8080"),
        (b"SERVER_NAME", b"localhost"),
        (b"HTTP_HOST", b"localhost:8080"),
        (b"HTTP_X_BIN", b"\xff\x00\xfe"),
    ]
}

#[test]
fn stock_nginx_packet_is_parsed_and_body_left() {
    let mut input = packet(&nginx_vars());
    let head_len = input.len();
    input.extend_from_slice(b"next bytes are the body");
    let p = parse(&input).unwrap().unwrap();
    assert_eq!((p.modifier1, p.modifier2, p.head_len), (0, 0, head_len));
    assert_eq!(p.vars.len(), nginx_vars().len());
    assert_eq!(p.vars.get(b"PATH_INFO"), Some(&b"/a/b"[..]));
    assert_eq!(p.vars.get(b"HTTP_X_BIN"), Some(&b"\xff\x00\xfe"[..]));
    assert_eq!(p.content_length, 0);
    let pairs: Vec<_> = p.vars.iter().collect();
    assert_eq!(pairs, nginx_vars());
}

#[test]
fn every_prefix_needs_more_bytes() {
    let input = packet(&nginx_vars());
    for end in 0..input.len() {
        assert_eq!(parse(&input[..end]), Ok(None), "prefix of {end} bytes");
    }
    assert!(parse(&input).unwrap().is_some());
}

#[test]
fn content_length_is_read() {
    let p = parse(&packet(&[(b"CONTENT_LENGTH", b"20000000")]))
        .unwrap()
        .unwrap();
    assert_eq!(p.content_length, 20_000_000);
}

#[test]
fn empty_vars_block_is_a_request_without_vars() {
    let p = parse(b"\x00\x00\x00\x00").unwrap().unwrap();
    assert!(p.vars.is_empty());
    assert_eq!(p.head_len, 4);
}

#[test]
fn repeated_var_keeps_the_last_value() {
    let p = parse(&packet(&[(b"SCRIPT_NAME", b"/x"), (b"SCRIPT_NAME", b"")]))
        .unwrap()
        .unwrap();
    assert_eq!(p.vars.get(b"SCRIPT_NAME"), Some(&b""[..]));
}

#[test]
fn modifier1_other_than_zero_is_refused_naming_it() {
    assert_eq!(
        err(b"\x05\x00\x00\x07"),
        UwsgiError::UnsupportedModifier {
            modifier1: 5,
            modifier2: 7
        }
    );
    // Known at the first byte.
    assert!(matches!(
        err(b"\x11"),
        UwsgiError::UnsupportedModifier { modifier1: 17, .. }
    ));
}

#[test]
fn modifier2_is_reported() {
    let mut input = packet(&[]);
    input[3] = 9;
    assert_eq!(parse(&input).unwrap().unwrap().modifier2, 9);
}

#[test]
fn key_length_past_the_block_is_refused() {
    // Block of 4: key length 10, only 2 bytes follow.
    assert_eq!(err(b"\x00\x04\x00\x00\x0a\x00AB"), UwsgiError::KeyPastBlock);
}

#[test]
fn value_length_past_the_block_is_refused() {
    assert_eq!(
        err(b"\x00\x06\x00\x00\x01\x00A\x05\x00B"),
        UwsgiError::ValuePastBlock
    );
    // A value length of 0xffff in a small block.
    assert_eq!(
        err(b"\x00\x05\x00\x00\x01\x00A\xff\xff"),
        UwsgiError::ValuePastBlock
    );
}

#[test]
fn trailing_partial_pair_is_refused() {
    // A full pair, then one byte of a key length.
    assert_eq!(
        err(b"\x00\x07\x00\x00\x01\x00A\x01\x00B\x03"),
        UwsgiError::TruncatedLength
    );
    // A key without its value length.
    assert_eq!(
        err(b"\x00\x03\x00\x00\x01\x00A"),
        UwsgiError::TruncatedLength
    );
    // A key with one byte of value length.
    assert_eq!(
        err(b"\x00\x04\x00\x00\x01\x00A\x00"),
        UwsgiError::TruncatedLength
    );
}

#[test]
fn vars_block_over_the_limit_is_refused_before_it_arrives() {
    let limits = GatewayLimits::new(100, 0);
    assert_eq!(
        parse_with(b"\x00\x65\x00\x00", &limits),
        Err(ParseError::Uwsgi(UwsgiError::VarsTooLarge))
    );
    assert_eq!(parse_with(b"\x00\x64\x00\x00", &limits), Ok(None));
    assert_eq!(ParseError::Uwsgi(UwsgiError::VarsTooLarge).status(), 431);
}

#[test]
fn more_vars_than_the_limit_are_refused() {
    let vars: Vec<(&[u8], &[u8])> = vec![(b"A", b"1"); 4];
    let limits = GatewayLimits::new(0, 3);
    assert_eq!(
        parse_with(&packet(&vars), &limits),
        Err(ParseError::Uwsgi(UwsgiError::TooManyVars))
    );
    assert!(parse_with(&packet(&vars[..3]), &limits).unwrap().is_some());
}

#[test]
fn bad_content_length_is_refused() {
    for bad in [&b"-1"[..], b"1e3", b" 5", b"0x10", b"99999999999999999999"] {
        assert_eq!(
            err(&packet(&[(b"CONTENT_LENGTH", bad)])),
            UwsgiError::ContentLength,
            "{}",
            bad.escape_ascii()
        );
    }
}

#[test]
fn largest_block_is_accepted() {
    let value = vec![b'v'; 65535 - 2 - 1 - 2];
    let input = packet(&[(b"K", &value)]);
    assert_eq!(input.len(), 4 + 65535);
    let p = parse(&input).unwrap().unwrap();
    assert_eq!(p.vars.get(b"K").map(<[u8]>::len), Some(value.len()));
}

#[test]
fn http_request_on_a_uwsgi_socket_is_detected() {
    assert!(looks_like_http(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert!(looks_like_http(b"POST /upload HTTP/1.0\r\n"));
    assert!(looks_like_http(b"OPTIONS * HTTP/1.1\r\n"));
    assert!(looks_like_http(b"GET http://example.com/ HTTP/1.1\r\n"));
    assert!(looks_like_http(b"GET /"));
    // And it is refused as a modifier first.
    assert!(matches!(
        err(b"GET / HTTP/1.1\r\n\r\n"),
        UwsgiError::UnsupportedModifier {
            modifier1: b'G',
            ..
        }
    ));
}

#[test]
fn other_bytes_do_not_look_like_http() {
    assert!(!looks_like_http(&packet(&nginx_vars())));
    assert!(!looks_like_http(b""));
    assert!(!looks_like_http(b"GET"));
    assert!(!looks_like_http(b"GET "));
    assert!(!looks_like_http(b"get / HTTP/1.1"));
    assert!(!looks_like_http(b"GET  / HTTP/1.1"));
    assert!(!looks_like_http(b"GET x HTTP/1.1"));
    assert!(!looks_like_http(b"GET http:/x"));
    assert!(!looks_like_http(b"\x16\x03\x01\x02\x00"));
}
