//! PROXY protocol v1 and v2 headers from raw bytes, and every malformed case.
use std::net::SocketAddr;

use ferrule_proto::proxy_protocol::{parse_proxy_header, ProxyHeader, V2_SIGNATURE};
use ferrule_proto::{ParseError, ProxyProtocolError as E};

fn parse(input: &[u8]) -> Result<Option<ProxyHeader>, ParseError> {
    parse_proxy_header(input)
}

fn err(input: &[u8]) -> E {
    match parse(input) {
        Err(ParseError::ProxyProtocol(e)) => e,
        other => panic!(
            "expected a PROXY error for {}, got {other:?}",
            input.escape_ascii()
        ),
    }
}

fn addrs(src: &str, dst: &str) -> Option<(SocketAddr, SocketAddr)> {
    let parse = |s: &str| s.parse().ok();
    parse(src).zip(parse(dst))
}

fn v2(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.extend_from_slice(&[ver_cmd, fam]);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn inet_body() -> Vec<u8> {
    let mut b = vec![192, 0, 2, 1, 127, 0, 0, 1];
    b.extend_from_slice(&56324u16.to_be_bytes());
    b.extend_from_slice(&8000u16.to_be_bytes());
    b
}

#[test]
fn v1_tcp4_is_parsed() {
    let line = b"PROXY TCP4 192.0.2.1 127.0.0.1 56324 8000\r\n";
    let mut input = line.to_vec();
    input.extend_from_slice(b"GET / HTTP/1.1\r\n");
    let h = parse(&input).unwrap().unwrap();
    assert_eq!(h.addrs, addrs("192.0.2.1:56324", "127.0.0.1:8000"));
    assert_eq!(h.len, line.len());
    for end in 0..line.len() {
        assert_eq!(parse(&line[..end]), Ok(None), "prefix {end}");
    }
}

#[test]
fn v1_tcp6_is_parsed() {
    let h = parse(b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(h.addrs, addrs("[2001:db8::1]:65535", "[::1]:0"));
}

#[test]
fn v1_unknown_gives_no_address() {
    let h = parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap();
    assert_eq!((h.addrs, h.len), (None, 15));
    let h = parse(b"PROXY UNKNOWN ffff:f...f:ffff 1.2.3.4 65535 65535\r\nX")
        .unwrap()
        .unwrap();
    assert_eq!(h.addrs, None);
}

#[test]
fn v1_longest_line_is_accepted() {
    let line = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(line.len(), 104);
    assert!(parse(line).unwrap().unwrap().addrs.is_some());
}

#[test]
fn v1_without_crlf_in_107_bytes_is_refused() {
    let mut input = b"PROXY UNKNOWN ".to_vec();
    input.resize(106, b'x');
    assert_eq!(parse(&input), Ok(None));
    input.push(b'x');
    assert_eq!(err(&input), E::V1NoCrlf);
    input.extend_from_slice(b"\r\n");
    assert_eq!(err(&input), E::V1NoCrlf);
}

#[test]
fn v1_bare_lf_or_cr_is_refused() {
    assert_eq!(err(b"PROXY UNKNOWN\n"), E::V1NoCrlf);
    assert_eq!(err(b"PROXY TCP4 1.2.3.4\r 5.6.7.8 1 2\r\n"), E::V1NoCrlf);
}

#[test]
fn v1_bad_protocol_is_refused() {
    assert_eq!(err(b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"), E::V1Protocol);
    assert_eq!(err(b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"), E::V1Protocol);
    assert_eq!(err(b"PROXY \r\n"), E::V1Protocol);
}

#[test]
fn v1_wrong_field_count_is_refused() {
    assert_eq!(err(b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), E::V1Syntax);
    assert_eq!(err(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), E::V1Syntax);
    assert_eq!(err(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), E::V1Syntax);
    assert_eq!(err(b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), E::V1Syntax);
}

#[test]
fn v1_bad_addresses_are_refused() {
    for bad in [
        &b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"[..],
        b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
        b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP6 [::1] ::1 1 2\r\n",
        b"PROXY TCP4 \xff.2.3.4 5.6.7.8 1 2\r\n",
    ] {
        assert_eq!(err(bad), E::Address, "{}", bad.escape_ascii());
    }
}

#[test]
fn v1_bad_ports_are_refused() {
    for bad in ["65536", "-1", "+1", "08", "1a", "", "123456", " 1"] {
        let line = format!("PROXY TCP4 1.2.3.4 5.6.7.8 {bad} 80\r\n");
        assert!(
            matches!(err(line.as_bytes()), E::Port | E::V1Syntax),
            "{bad}"
        );
    }
    assert_eq!(err(b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n"), E::Port);
}

#[test]
fn other_bytes_are_not_a_proxy_header() {
    assert_eq!(err(b"GET / HTTP/1.1\r\n"), E::NotProxy);
    assert_eq!(err(b"PROXX"), E::NotProxy);
    assert_eq!(err(b"proxy TCP4"), E::NotProxy);
    assert_eq!(err(b"\r\n\r\n\0\r\nQUIT\r"), E::NotProxy);
    assert_eq!(parse(b""), Ok(None));
    assert_eq!(parse(b"PRO"), Ok(None));
    assert_eq!(parse(b"\r\n\r\n"), Ok(None));
}

#[test]
fn v2_inet_is_parsed_and_tlvs_skipped() {
    let mut body = inet_body();
    body.extend_from_slice(b"\x04\x00\x03abc"); // a TLV
    let mut input = v2(0x21, 0x11, &body);
    let len = input.len();
    input.extend_from_slice(b"GET /");
    let h = parse(&input).unwrap().unwrap();
    assert_eq!(h.addrs, addrs("192.0.2.1:56324", "127.0.0.1:8000"));
    assert_eq!(h.len, len);
    for end in 0..len {
        assert_eq!(parse(&input[..end]), Ok(None), "prefix {end}");
    }
}

#[test]
fn v2_inet6_is_parsed() {
    let mut body = Vec::new();
    body.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    body.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    body.extend_from_slice(&[0x12, 0x34, 0x00, 0x50]);
    let h = parse(&v2(0x21, 0x21, &body)).unwrap().unwrap();
    assert_eq!(h.addrs, addrs("[2001:db8::1]:4660", "[::1]:80"));
}

#[test]
fn v2_local_unspec_and_unix_give_no_address() {
    assert_eq!(
        parse(&v2(0x20, 0x11, &inet_body())).unwrap().unwrap().addrs,
        None
    );
    assert_eq!(parse(&v2(0x20, 0x00, b"")).unwrap().unwrap().addrs, None);
    assert_eq!(
        parse(&v2(0x21, 0x00, b"\x01\x02")).unwrap().unwrap().len,
        18
    );
    assert_eq!(
        parse(&v2(0x21, 0x31, &[0u8; 216])).unwrap().unwrap().addrs,
        None
    );
}

#[test]
fn v2_datagram_transport_gives_its_addresses() {
    assert!(parse(&v2(0x21, 0x12, &inet_body()))
        .unwrap()
        .unwrap()
        .addrs
        .is_some());
}

#[test]
fn v2_bad_version_is_refused() {
    assert_eq!(err(&v2(0x11, 0x11, &inet_body())), E::V2Version(0x11));
    assert_eq!(err(&v2(0x31, 0x11, &inet_body())), E::V2Version(0x31));
}

#[test]
fn v2_bad_command_is_refused() {
    assert_eq!(err(&v2(0x22, 0x11, &inet_body())), E::V2Command(2));
}

#[test]
fn v2_bad_family_is_refused() {
    for fam in [0x41, 0x13, 0x10, 0x20] {
        assert_eq!(err(&v2(0x21, fam, &inet_body())), E::V2Family(fam));
    }
}

#[test]
fn v2_length_short_for_the_family_is_refused() {
    assert_eq!(err(&v2(0x21, 0x11, &inet_body()[..11])), E::V2LengthShort);
    assert_eq!(err(&v2(0x21, 0x21, &inet_body())), E::V2LengthShort);
    assert_eq!(err(&v2(0x21, 0x31, &[0; 100])), E::V2LengthShort);
    // Checked from the header alone, before the addresses arrive.
    assert_eq!(
        err(&v2(0x21, 0x11, &inet_body()[..11])[..16]),
        E::V2LengthShort
    );
}

#[test]
fn v2_length_past_the_buffer_needs_more() {
    let input = v2(0x21, 0x11, &[0; 500]);
    assert_eq!(parse(&input[..100]), Ok(None));
    assert_eq!(parse(&input).unwrap().unwrap().len, 516);
}
