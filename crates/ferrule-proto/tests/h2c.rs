//! `Upgrade: h2c`: which raw requests upgrade, the HEADERS frame of stream 1 (decoded back
//! with a minimal HPACK literal reader), and the preface + SETTINGS boundary.
use bytes::BytesMut;
use ferrule_proto::h2c::{settings_end, stream_one, wants_upgrade, NotAPreface, PREFACE};
use ferrule_proto::http1::{parse_request, RequestHead};
use ferrule_proto::Limits;

fn head(raw: &[u8]) -> RequestHead {
    let mut buf = BytesMut::from(raw);
    match parse_request(&mut buf, &Limits::default()) {
        Ok(Some(h)) => h,
        other => panic!("no head: {other:?}"),
    }
}

const UPGRADE: &[u8] =
    b"GET /p?q=1 HTTP/1.1\r\nHost: example:8000\r\nConnection: Upgrade, HTTP2-Settings\r\n\
Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nX-Thing: v\r\n\r\n";

#[test]
fn a_get_with_the_three_fields_upgrades() {
    assert!(wants_upgrade(&head(UPGRADE)));
}

#[test]
fn requests_that_do_not_upgrade() {
    for raw in [
        // No HTTP2-Settings in Connection.
        &b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AA\r\n\r\n"[..],
        // No HTTP2-Settings field.
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n",
        // Another protocol.
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: websocket\r\nHTTP2-Settings: AA\r\n\r\n",
        // A body.
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AA\r\n\r\nx",
        // HTTP/1.0.
        b"GET / HTTP/1.0\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AA\r\n\r\n",
    ] {
        assert!(!wants_upgrade(&head(raw)), "{}", raw.escape_ascii());
    }
}

/// Decodes a block of literal-without-indexing fields (no Huffman), as `stream_one` writes.
fn decode(mut block: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    fn string(b: &mut &[u8]) -> Vec<u8> {
        let first = b[0];
        assert_eq!(first & 0x80, 0, "no Huffman");
        let mut len = usize::from(first & 0x7f);
        let mut at = 1;
        if len == 127 {
            let mut shift = 0;
            loop {
                let byte = b[at];
                at += 1;
                len += usize::from(byte & 0x7f) << shift;
                shift += 7;
                if byte & 0x80 == 0 {
                    break;
                }
            }
        }
        let s = b[at..at + len].to_vec();
        *b = &b[at + len..];
        s
    }
    let mut out = Vec::new();
    while !block.is_empty() {
        assert_eq!(block[0], 0x00, "literal without indexing, new name");
        block = &block[1..];
        let name = string(&mut block);
        let value = string(&mut block);
        out.push((name, value));
    }
    out
}

#[test]
fn stream_one_carries_the_request_as_pseudo_fields_and_lower_case_names() {
    let frame = stream_one(&head(UPGRADE)).expect("small enough");
    let len = usize::from(frame[0]) << 16 | usize::from(frame[1]) << 8 | usize::from(frame[2]);
    assert_eq!(len, frame.len() - 9);
    assert_eq!(frame[3], 0x1, "HEADERS");
    assert_eq!(frame[4], 0x5, "END_STREAM | END_HEADERS");
    assert_eq!(&frame[5..9], &[0, 0, 0, 1], "stream 1");
    let fields = decode(&frame[9..]);
    let want: Vec<(Vec<u8>, Vec<u8>)> = [
        (&b":method"[..], &b"GET"[..]),
        (b":scheme", b"http"),
        (b":path", b"/p?q=1"),
        (b":authority", b"example:8000"),
        (b"x-thing", b"v"),
    ]
    .iter()
    .map(|(n, v)| (n.to_vec(), v.to_vec()))
    .collect();
    assert_eq!(fields, want);
}

#[test]
fn long_values_use_multi_byte_lengths() {
    let value = "v".repeat(300);
    let raw = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
         HTTP2-Settings: AA\r\nX-Long: {value}\r\n\r\n"
    );
    let frame = stream_one(&head(raw.as_bytes())).expect("small enough");
    let fields = decode(&frame[9..]);
    assert_eq!(fields.last().map(|(_, v)| v.len()), Some(300));
}

#[test]
fn a_head_too_big_for_one_frame_is_not_upgraded() {
    let mut raw = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AA\r\n".to_vec();
    for i in 0..40 {
        raw.extend_from_slice(format!("X-{i}: {}\r\n", "a".repeat(500)).as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    let mut buf = BytesMut::from(&raw[..]);
    let limits = Limits::new(0, 0, 0, 0);
    let h = parse_request(&mut buf, &limits).unwrap().unwrap();
    assert!(stream_one(&h).is_none());
}

#[test]
fn settings_end_waits_for_the_whole_frame_and_refuses_anything_else() {
    let mut buf = PREFACE.to_vec();
    assert_eq!(settings_end(&buf[..10], 16_384), Ok(None));
    assert_eq!(settings_end(&buf, 16_384), Ok(None));
    buf.extend_from_slice(&[0, 0, 6, 0x4, 0, 0, 0, 0, 0]);
    assert_eq!(settings_end(&buf, 16_384), Ok(None));
    buf.extend_from_slice(&[0, 3, 0, 0, 0, 100]);
    assert_eq!(settings_end(&buf, 16_384), Ok(Some(PREFACE.len() + 15)));
    buf.extend_from_slice(b"more");
    assert_eq!(settings_end(&buf, 16_384), Ok(Some(PREFACE.len() + 15)));
    assert_eq!(
        settings_end(b"GET / HTTP/1.1\r\n", 16_384),
        Err(NotAPreface)
    );
    // A first frame that is not SETTINGS, or one larger than allowed.
    let mut ping = PREFACE.to_vec();
    ping.extend_from_slice(&[0, 0, 8, 0x6, 0, 0, 0, 0, 0]);
    assert_eq!(settings_end(&ping, 16_384), Err(NotAPreface));
    let mut big = PREFACE.to_vec();
    big.extend_from_slice(&[0x01, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    assert_eq!(settings_end(&big, 16_384), Err(NotAPreface));
}
