//! FastCGI from raw bytes: records, name-value pairs, the head and STDIN decoders, encoders.
use ferrule_proto::fastcgi::{
    answer_management, answer_other, decode_params, encode_end_request, encode_get_values_result,
    encode_pair, encode_response_end, encode_stream, encode_stream_end, encode_unknown_type,
    padding_for, parse_get_values, parse_record, records, stream_header, BeginRequest, FcgiRequest,
    HeadDecoder, HeadEvent, ProtocolStatus, RecordType, Role, ServerValues, StdinDecoder,
    StdinEvent, PADDING, VALUES,
};
use ferrule_proto::limits::GatewayLimits;
use ferrule_proto::{FastCgiError, ParseError};

/// A record with explicit padding.
fn record_padded(kind: u8, id: u16, content: &[u8], padding: u8) -> Vec<u8> {
    let mut out = vec![1, kind];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(content.len() as u16).to_be_bytes());
    out.extend_from_slice(&[padding, 0]);
    out.extend_from_slice(content);
    out.extend(std::iter::repeat_n(0xAA, padding.into()));
    out
}

fn record(kind: RecordType, id: u16, content: &[u8]) -> Vec<u8> {
    record_padded(kind as u8, id, content, 0)
}

fn begin(id: u16, role: u16, flags: u8) -> Vec<u8> {
    let [hi, lo] = role.to_be_bytes();
    record(
        RecordType::BeginRequest,
        id,
        &[hi, lo, flags, 0, 0, 0, 0, 0],
    )
}

fn pairs(list: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in list {
        encode_pair(n, v, &mut out);
    }
    out
}

fn fcgi_err(r: Result<impl std::fmt::Debug, ParseError>) -> FastCgiError {
    match r {
        Err(ParseError::FastCgi(e)) => e,
        other => panic!("expected a FastCGI error, got {other:?}"),
    }
}

/// Feeds `input` to a head decoder in steps of `step` bytes; returns the request and the
/// bytes left over.
fn read_head(input: &[u8], step: usize) -> Result<(FcgiRequest, Vec<u8>), ParseError> {
    let mut dec = HeadDecoder::new(GatewayLimits::default());
    let mut buf = Vec::new();
    let mut fed = 0;
    loop {
        let (used, event) = dec.decode(&buf)?;
        match event {
            Some(HeadEvent::Request(req)) => {
                buf.drain(..used);
                buf.extend_from_slice(&input[fed..]);
                return Ok((req, buf));
            }
            Some(other) => panic!("unexpected {other:?}"),
            None if used == 0 => {
                assert!(fed < input.len(), "input ended early");
                let end = (fed + step).min(input.len());
                buf.extend_from_slice(&input[fed..end]);
                fed = end;
            }
            None => {
                buf.drain(..used);
            }
        }
    }
}

/// A head as nginx sends it: BEGIN_REQUEST (keep-conn), params split over two records with a
/// pair cut in half, an empty PARAMS.
fn nginx_head(id: u16) -> Vec<u8> {
    let params = pairs(&[
        (b"QUERY_STRING", b"x=1"),
        (b"REQUEST_METHOD", b"POST"),
        (b"CONTENT_TYPE", b"text/plain"),
        (b"CONTENT_LENGTH", b"11"),
        (b"SCRIPT_NAME", b"/index.php"),
        (b"REQUEST_URI", b"/a%2Fb?x=1"),
        (b"HTTP_X_LONG", &[b'v'; 300]),
        (b"SCRIPT_NAME", b""),
    ]);
    let (a, b) = params.split_at(37);
    let mut out = begin(id, 1, 1);
    out.extend(record_padded(RecordType::Params as u8, id, a, 3));
    out.extend(record(RecordType::Params, id, b));
    out.extend(record(RecordType::Params, id, b""));
    out
}

#[test]
fn record_is_parsed_with_its_padding() {
    let mut input = record_padded(6, 0x0102, b"hello", 3);
    input.extend_from_slice(b"next");
    let r = parse_record(&input).unwrap().unwrap();
    assert_eq!(
        (r.kind, r.request_id, r.content, r.len),
        (6, 0x0102, &b"hello"[..], 16)
    );
    assert_eq!(r.record_type(), Some(RecordType::Stdout));
    for end in 0..16 {
        assert_eq!(parse_record(&input[..end]), Ok(None), "prefix {end}");
    }
}

#[test]
fn record_version_other_than_one_is_refused() {
    let mut input = record(RecordType::Stdin, 1, b"");
    input[0] = 2;
    assert_eq!(fcgi_err(parse_record(&input)), FastCgiError::Version(2));
}

#[test]
fn largest_record_is_parsed() {
    let content = vec![7u8; 65535];
    let input = record_padded(5, 1, &content, 255);
    let r = parse_record(&input).unwrap().unwrap();
    assert_eq!((r.content.len(), r.len), (65535, 8 + 65535 + 255));
}

#[test]
fn params_with_short_and_long_lengths_are_decoded() {
    let long = vec![b'x'; 200];
    let block = pairs(&[(b"A", b"1"), (&long, b""), (b"B", &long)]);
    assert_eq!(block[..3], [1, 1, b'A']);
    let spans = decode_params(&block, &GatewayLimits::default()).unwrap();
    let got: Vec<(&[u8], &[u8])> = spans
        .iter()
        .map(|(n, v)| (&block[n.clone()], &block[v.clone()]))
        .collect();
    assert_eq!(
        got,
        vec![
            (&b"A"[..], &b"1"[..]),
            (&long[..], &b""[..]),
            (&b"B"[..], &long[..])
        ]
    );
    // A 4-byte length for a short name is fine too.
    let block = b"\x80\x00\x00\x01\x01AB";
    assert_eq!(
        decode_params(block, &GatewayLimits::default())
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn params_lengths_past_the_block_are_refused() {
    let limits = GatewayLimits::default();
    assert_eq!(
        fcgi_err(decode_params(b"\x05\x01AB", &limits)),
        FastCgiError::NamePastBlock
    );
    assert_eq!(
        fcgi_err(decode_params(b"\x01\x05AB", &limits)),
        FastCgiError::ValuePastBlock
    );
    // A 4-byte length near 2^31.
    assert_eq!(
        fcgi_err(decode_params(b"\x01\xff\xff\xff\xffA", &limits)),
        FastCgiError::ValuePastBlock
    );
    assert_eq!(
        fcgi_err(decode_params(b"\xff\xff\xff\xff\x00", &limits)),
        FastCgiError::NamePastBlock
    );
}

#[test]
fn params_truncated_lengths_are_refused() {
    let limits = GatewayLimits::default();
    for bad in [
        &b"\x01"[..],
        b"\x80\x00",
        b"\x01\x80\x00\x00",
        b"\x01\x01AB\x03",
    ] {
        assert_eq!(
            fcgi_err(decode_params(bad, &limits)),
            FastCgiError::TruncatedLength,
            "{}",
            bad.escape_ascii()
        );
    }
}

#[test]
fn params_over_the_limits_are_refused() {
    let block = pairs(&[(b"A", b"1"), (b"B", b"2"), (b"C", b"3")]);
    assert_eq!(
        fcgi_err(decode_params(&block, &GatewayLimits::new(0, 2))),
        FastCgiError::TooManyParams
    );
    assert_eq!(
        fcgi_err(decode_params(&block, &GatewayLimits::new(8, 0))),
        FastCgiError::ParamsTooLarge
    );
}

#[test]
fn begin_request_body_is_parsed() {
    let b = BeginRequest::parse(&[0, 1, 1, 0, 0, 0, 0, 0]).unwrap();
    assert_eq!((b.role, b.keep_conn()), (Role::Responder, true));
    let b = BeginRequest::parse(&[0, 3, 0, 0, 0, 0, 0, 0]).unwrap();
    assert_eq!((b.role, b.keep_conn()), (Role::Filter, false));
    assert_eq!(
        BeginRequest::parse(&[1, 0, 0, 0, 0, 0, 0, 0]).unwrap().role,
        Role::Other(256)
    );
    for bad in [&[0u8, 1, 0][..], &[0; 9]] {
        assert_eq!(
            fcgi_err(BeginRequest::parse(bad)),
            FastCgiError::BeginRequestBody
        );
    }
}

#[test]
fn nginx_head_is_read_whole_and_byte_by_byte() {
    let mut input = nginx_head(1);
    input.extend(record(RecordType::Stdin, 1, b"hello world"));
    for step in [input.len(), 1, 7] {
        let (req, rest) = read_head(&input, step).unwrap();
        assert_eq!(
            (req.request_id, req.role, req.keep_conn),
            (1, Role::Responder, true)
        );
        assert_eq!(req.content_length, 11);
        // nginx's stock SCRIPT_NAME, then the override: the last one wins.
        assert_eq!(req.vars.get(b"SCRIPT_NAME"), Some(&b""[..]));
        assert_eq!(req.vars.get(b"HTTP_X_LONG").map(<[u8]>::len), Some(300));
        assert_eq!(rest, record(RecordType::Stdin, 1, b"hello world"));
    }
}

#[test]
fn head_without_keep_conn_and_with_another_role() {
    let mut input = begin(9, 2, 0);
    input.extend(record(RecordType::Params, 9, b""));
    let (req, _) = read_head(&input, input.len()).unwrap();
    assert_eq!(
        (req.role, req.keep_conn, req.vars.len()),
        (Role::Authorizer, false, 0)
    );
}

#[test]
fn head_records_out_of_order_are_refused() {
    let mut dec = HeadDecoder::new(GatewayLimits::default());
    assert_eq!(dec.decode(&begin(1, 1, 0)).unwrap().0, 16);
    assert!(dec.in_request());
    let stdin = record(RecordType::Stdin, 1, b"x");
    assert_eq!(
        fcgi_err(dec.decode(&stdin)),
        FastCgiError::UnexpectedRecord(5)
    );
    let mut dec = HeadDecoder::new(GatewayLimits::default());
    dec.decode(&begin(1, 1, 0)).unwrap();
    assert_eq!(
        fcgi_err(dec.decode(&begin(1, 1, 0))),
        FastCgiError::UnexpectedRecord(1)
    );
}

#[test]
fn application_records_with_request_id_zero_are_refused() {
    let mut dec = HeadDecoder::new(GatewayLimits::default());
    assert_eq!(
        fcgi_err(dec.decode(&begin(0, 1, 0))),
        FastCgiError::NullRequestId
    );
}

#[test]
fn bad_begin_request_body_is_refused_by_the_decoder() {
    let mut dec = HeadDecoder::new(GatewayLimits::default());
    let input = record(RecordType::BeginRequest, 1, &[0, 1, 0]);
    assert_eq!(fcgi_err(dec.decode(&input)), FastCgiError::BeginRequestBody);
}

#[test]
fn params_stream_over_the_limit_is_refused_as_it_grows() {
    let mut dec = HeadDecoder::new(GatewayLimits::new(100, 0));
    dec.decode(&begin(1, 1, 0)).unwrap();
    let chunk = record(RecordType::Params, 1, &[b'a'; 60]);
    assert_eq!(dec.decode(&chunk).unwrap(), (68, None));
    assert_eq!(fcgi_err(dec.decode(&chunk)), FastCgiError::ParamsTooLarge);
}

#[test]
fn params_ending_inside_a_pair_are_refused() {
    let mut input = begin(1, 1, 0);
    input.extend(record(RecordType::Params, 1, b"\x04\x01AB"));
    input.extend(record(RecordType::Params, 1, b""));
    assert_eq!(
        fcgi_err(read_head(&input, input.len())),
        FastCgiError::NamePastBlock
    );
}

#[test]
fn bad_content_length_param_is_refused() {
    let mut input = begin(1, 1, 0);
    input.extend(record(
        RecordType::Params,
        1,
        &pairs(&[(b"CONTENT_LENGTH", b"-1")]),
    ));
    input.extend(record(RecordType::Params, 1, b""));
    assert_eq!(
        fcgi_err(read_head(&input, input.len())),
        FastCgiError::ContentLength
    );
}

#[test]
fn head_decoder_reports_management_other_requests_and_aborts() {
    let mut dec = HeadDecoder::new(GatewayLimits::default());
    let gv = record(
        RecordType::GetValues,
        0,
        &pairs(&[(b"FCGI_MPXS_CONNS", b"")]),
    );
    let (used, ev) = dec.decode(&gv).unwrap();
    assert_eq!(used, gv.len());
    assert!(matches!(ev, Some(HeadEvent::Management(r)) if r.kind == 9));
    // Idle: a stray STDIN for an unknown id.
    let stray = record(RecordType::Stdin, 4, b"");
    assert!(
        matches!(dec.decode(&stray).unwrap().1, Some(HeadEvent::OtherRequest(r)) if r.request_id == 4)
    );
    dec.decode(&begin(1, 1, 1)).unwrap();
    // A second request while the first is being read: multiplexing.
    let second = begin(2, 1, 0);
    let (_, ev) = dec.decode(&second).unwrap();
    assert!(matches!(ev, Some(HeadEvent::OtherRequest(r)) if r.request_id == 2 && r.kind == 1));
    let abort = record(RecordType::AbortRequest, 1, b"");
    assert_eq!(
        dec.decode(&abort).unwrap(),
        (8, Some(HeadEvent::Aborted { request_id: 1 }))
    );
    assert!(!dec.in_request());
}

/// Feeds `input` to a STDIN decoder in steps; returns the body, the events other than data,
/// and the bytes left over.
fn read_stdin(
    input: &[u8],
    step: usize,
    max_body: u64,
) -> Result<(Vec<u8>, Vec<String>, usize), ParseError> {
    let mut dec = StdinDecoder::new(1, max_body);
    let mut body = Vec::new();
    let mut events = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    while !dec.is_done() {
        let (used, ev) = dec.decode(&buf, 5)?;
        match ev {
            Some(StdinEvent::Data(r)) => body.extend_from_slice(&buf[r]),
            Some(StdinEvent::End) => events.push("end".to_owned()),
            Some(StdinEvent::Abort) => {
                events.push("abort".to_owned());
                break;
            }
            Some(StdinEvent::Management(r)) => events.push(format!("mgmt {}", r.kind)),
            Some(StdinEvent::OtherRequest(r)) => events.push(format!("other {}", r.request_id)),
            None if used == 0 => {
                assert!(fed < input.len(), "input ended early");
                let end = (fed + step).min(input.len());
                buf.extend_from_slice(&input[fed..end]);
                fed = end;
            }
            None => {}
        }
        buf.drain(..used);
    }
    Ok((body, events, input.len() - fed + buf.len()))
}

#[test]
fn stdin_is_decoded_whole_and_byte_by_byte() {
    let mut input = record_padded(5, 1, b"hello ", 2);
    input.extend(record(RecordType::GetValues, 0, b""));
    input.extend(begin(2, 1, 0));
    input.extend(record_padded(5, 1, b"world", 3));
    input.extend(record(RecordType::Stdin, 1, b""));
    input.extend_from_slice(b"NEXT");
    for step in [input.len(), 1, 3, 9] {
        let (body, events, left) = read_stdin(&input, step, 0).unwrap();
        assert_eq!(body, b"hello world", "step {step}");
        assert_eq!(events, ["mgmt 9", "other 2", "end"]);
        assert_eq!(left, 4);
    }
}

#[test]
fn stdin_abort_is_reported() {
    let mut input = record(RecordType::Stdin, 1, b"part");
    input.extend(record(RecordType::AbortRequest, 1, b""));
    let (body, events, _) = read_stdin(&input, 1, 0).unwrap();
    assert_eq!((body, events), (b"part".to_vec(), vec!["abort".to_owned()]));
}

#[test]
fn stdin_over_the_body_limit_is_refused() {
    let mut input = record(RecordType::Stdin, 1, b"12345");
    input.extend(record(RecordType::Stdin, 1, b"678"));
    assert_eq!(read_stdin(&input, 64, 7), Err(ParseError::BodyTooLarge));
    assert!(read_stdin(
        &[input.clone(), record(RecordType::Stdin, 1, b"")].concat(),
        64,
        8
    )
    .is_ok());
}

#[test]
fn stdin_records_out_of_place_are_refused() {
    let input = record(RecordType::Params, 1, b"");
    assert_eq!(
        fcgi_err(read_stdin(&input, 64, 0)),
        FastCgiError::UnexpectedRecord(4)
    );
    let mut dec = StdinDecoder::new(1, 0);
    let end = record(RecordType::Stdin, 1, b"");
    assert_eq!(dec.decode(&end, 64).unwrap(), (8, Some(StdinEvent::End)));
    // After the end: STDIN again is an error, an abort is still seen.
    assert_eq!(
        fcgi_err(dec.decode(&record(RecordType::Stdin, 1, b"x"), 64)),
        FastCgiError::UnexpectedRecord(5)
    );
    let abort = record(RecordType::AbortRequest, 1, b"");
    assert_eq!(
        dec.decode(&abort, 64).unwrap(),
        (8, Some(StdinEvent::Abort))
    );
}

#[test]
fn stdout_is_split_into_padded_records() {
    let data: Vec<u8> = (0..150_000u32).map(|i| i as u8).collect();
    let mut out = Vec::new();
    encode_stream(RecordType::Stdout, 3, &data, &mut out);
    encode_stream_end(RecordType::Stdout, 3, &mut out);
    let mut pos = 0;
    let mut got = Vec::new();
    let mut sizes = Vec::new();
    while pos < out.len() {
        let r = parse_record(&out[pos..]).unwrap().unwrap();
        assert_eq!((r.kind, r.request_id), (6, 3));
        assert_eq!(r.len % 8, 0, "padded to a multiple of 8");
        sizes.push(r.content.len());
        got.extend_from_slice(r.content);
        pos += r.len;
    }
    assert_eq!(sizes, [65535, 65535, 150_000 - 2 * 65535, 0]);
    assert_eq!(got, data);
    let mut empty = Vec::new();
    encode_stream(RecordType::Stderr, 3, b"", &mut empty);
    assert!(empty.is_empty());
}

#[test]
fn stream_header_matches_the_encoder() {
    let mut out = Vec::new();
    encode_stream(RecordType::Stderr, 258, b"oops!", &mut out);
    let h = stream_header(RecordType::Stderr, 258, 5);
    assert_eq!(h, [1, 7, 1, 2, 0, 5, 3, 0]);
    assert_eq!(out, [&h[..], b"oops!", &PADDING[..padding_for(5)]].concat());
    assert_eq!((padding_for(0), padding_for(8), padding_for(9)), (0, 0, 7));
}

#[test]
fn end_request_is_encoded() {
    let mut out = Vec::new();
    encode_end_request(1, 0, ProtocolStatus::RequestComplete, &mut out);
    encode_end_request(2, 0x0102_0304, ProtocolStatus::CantMpxConn, &mut out);
    encode_end_request(3, 0, ProtocolStatus::Overloaded, &mut out);
    encode_end_request(4, 0, ProtocolStatus::UnknownRole, &mut out);
    assert_eq!(
        &out[..16],
        b"\x01\x03\x00\x01\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    );
    assert_eq!(
        &out[16..32],
        b"\x01\x03\x00\x02\x00\x08\x00\x00\x01\x02\x03\x04\x01\x00\x00\x00"
    );
    assert_eq!((out[44], out[60]), (2, 3));
}

#[test]
fn get_values_are_answered() {
    let query = pairs(&[
        (b"FCGI_MAX_CONNS", b""),
        (b"OTHER", b""),
        (b"FCGI_MPXS_CONNS", b""),
    ]);
    assert_eq!(parse_get_values(&query).unwrap().len(), 3);
    let values = ServerValues {
        max_conns: 1000,
        max_reqs: 50,
        mpxs_conns: false,
    };
    let mut out = Vec::new();
    let raw = record(RecordType::GetValues, 0, &query);
    let rec = parse_record(&raw).unwrap().unwrap();
    answer_management(&rec, &values, &mut out).unwrap();
    let r = parse_record(&out).unwrap().unwrap();
    assert_eq!((r.kind, r.request_id), (10, 0));
    assert_eq!(
        r.content,
        pairs(&[(b"FCGI_MAX_CONNS", b"1000"), (b"FCGI_MPXS_CONNS", b"0")])
    );
    let mut direct = Vec::new();
    encode_get_values_result(&[b"FCGI_MAX_REQS"], &values, &mut direct);
    assert_eq!(
        parse_record(&direct).unwrap().unwrap().content,
        pairs(&[(b"FCGI_MAX_REQS", b"50")])
    );
    let raw = record(RecordType::GetValues, 0, b"\x09");
    let bad = parse_record(&raw).unwrap().unwrap();
    assert_eq!(
        fcgi_err(answer_management(&bad, &values, &mut out)),
        FastCgiError::TruncatedLength
    );
}

#[test]
fn unknown_management_type_is_answered() {
    let mut out = Vec::new();
    let raw = record_padded(42, 0, b"", 0);
    let rec = parse_record(&raw).unwrap().unwrap();
    assert_eq!(rec.record_type(), None);
    answer_management(
        &rec,
        &ServerValues {
            max_conns: 1,
            max_reqs: 1,
            mpxs_conns: false,
        },
        &mut out,
    )
    .unwrap();
    let mut direct = Vec::new();
    encode_unknown_type(42, &mut direct);
    assert_eq!(out, direct);
    assert_eq!(
        out,
        b"\x01\x0b\x00\x00\x00\x08\x00\x00\x2a\x00\x00\x00\x00\x00\x00\x00"
    );
}

/// The records `records` frames `parts` into, checked as they go: each header says STDOUT,
/// request `id`, its content length and the padding to a multiple of 8, and the padding
/// slice is that many zeros. Returns the content lengths and the concatenated content.
fn check_stdout_records(id: u16, parts: &[&[u8]]) -> (Vec<usize>, Vec<u8>) {
    let mut headers = Vec::new();
    let slices = records(id, parts, &mut headers);
    let wire = slices.concat();
    let mut lens = Vec::new();
    let mut content = Vec::new();
    let mut pos = 0;
    while pos < wire.len() {
        let h = &wire[pos..pos + 8];
        let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
        let padding = usize::from(h[6]);
        assert_eq!(
            &h[..4],
            [1, 6, (id >> 8) as u8, id as u8],
            "version, STDOUT, id"
        );
        assert_eq!(h[7], 0, "reserved byte");
        assert_eq!((len + padding) % 8, 0, "padded to a multiple of 8");
        assert!(padding < 8);
        let r = parse_record(&wire[pos..])
            .expect("version 1")
            .expect("a whole record");
        assert_eq!((r.kind, r.request_id), (RecordType::Stdout as u8, id));
        assert!(wire[pos + 8 + len..pos + r.len].iter().all(|&b| b == 0));
        lens.push(len);
        content.extend_from_slice(r.content);
        pos += r.len;
    }
    assert_eq!(pos, wire.len());
    (lens, content)
}

#[test]
fn stdout_records_of_nothing_are_nothing() {
    let mut headers = vec![[9; 8]];
    assert!(records(1, &[], &mut headers).is_empty());
    assert!(records(1, &[b"", b""], &mut headers).is_empty());
    assert!(headers.is_empty(), "headers are cleared first");
}

#[test]
fn stdout_records_of_one_small_part_are_header_content_padding() {
    let mut headers = Vec::new();
    let slices = records(258, &[b"hello"], &mut headers);
    assert_eq!(
        slices,
        [&[1, 6, 1, 2, 0, 5, 3, 0][..], b"hello", &[0, 0, 0][..]]
    );
    let mut headers = Vec::new();
    let slices = records(1, &[b"12345678"], &mut headers);
    assert_eq!(slices, [&[1, 6, 0, 1, 0, 8, 0, 0][..], b"12345678", b""]);
}

#[test]
fn stdout_records_split_parts_at_the_65535_byte_boundary() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    // One part across three records, and parts whose joins fall on either side of a record's
    // end, empty parts among them.
    let cuts: [&[usize]; 4] = [
        &[200_000],
        &[65535, 65535, 68930],
        &[65534, 2, 0, 65535, 68929],
        &[10, 100_000, 0, 99_990],
    ];
    for lens in cuts {
        let mut parts = Vec::new();
        let mut at = 0;
        for &n in lens {
            parts.push(&data[at..at + n]);
            at += n;
        }
        assert_eq!(at, data.len());
        let (got_lens, content) = check_stdout_records(7, &parts);
        assert_eq!(got_lens, [65535, 65535, 65535, 3395], "{lens:?}");
        assert_eq!(content, data, "{lens:?}");
    }
    let (got_lens, content) = check_stdout_records(7, &[&data[..65535]]);
    assert_eq!((got_lens, content.len()), (vec![65535], 65535));
    let (got_lens, _) = check_stdout_records(7, &[&data[..65536]]);
    assert_eq!(got_lens, [65535, 1]);
}

#[test]
fn stdout_records_agree_with_encode_stream() {
    let data: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
    let mut headers = Vec::new();
    let framed = records(3, &[&data[..5], &data[5..]], &mut headers).concat();
    let mut encoded = Vec::new();
    encode_stream(RecordType::Stdout, 3, &data, &mut encoded);
    assert_eq!(framed, encoded);
}

#[test]
fn response_end_is_an_empty_stdout_then_end_request_complete() {
    let mut out = b"before".to_vec();
    encode_response_end(0x0102, &mut out);
    assert_eq!(
        out,
        b"before\
          \x01\x06\x01\x02\x00\x00\x00\x00\
          \x01\x03\x01\x02\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    );
}

#[test]
fn other_get_values_is_answered_with_the_servers_values() {
    let query = pairs(&[
        (b"FCGI_MAX_CONNS", b""),
        (b"FCGI_MAX_REQS", b""),
        (b"FCGI_MPXS_CONNS", b""),
    ]);
    let raw = record(RecordType::GetValues, 0, &query);
    let mut out = Vec::new();
    answer_other(&parse_record(&raw).unwrap().unwrap(), &mut out).unwrap();
    let r = parse_record(&out).unwrap().unwrap();
    assert_eq!((r.kind, r.request_id, r.len), (10, 0, out.len()));
    assert_eq!(
        r.content,
        pairs(&[
            (b"FCGI_MAX_CONNS", b"1024"),
            (b"FCGI_MAX_REQS", b"1024"),
            (b"FCGI_MPXS_CONNS", b"0"),
        ])
    );
    assert_eq!(VALUES.max_conns, 1024);
}

#[test]
fn other_malformed_get_values_is_an_error() {
    let raw = record(RecordType::GetValues, 0, b"\x09");
    let mut out = Vec::new();
    assert_eq!(
        fcgi_err(answer_other(
            &parse_record(&raw).unwrap().unwrap(),
            &mut out
        )),
        FastCgiError::TruncatedLength
    );
}

#[test]
fn other_begin_request_is_refused_with_cant_mpx_conn() {
    let raw = begin(9, 1, 0);
    let mut out = Vec::new();
    answer_other(&parse_record(&raw).unwrap().unwrap(), &mut out).unwrap();
    assert_eq!(
        out,
        b"\x01\x03\x00\x09\x00\x08\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00"
    );
}

#[test]
fn other_requests_records_besides_begin_request_are_ignored() {
    let mut out = Vec::new();
    for raw in [
        record(RecordType::Params, 9, b""),
        record(RecordType::Stdin, 9, b"x"),
        record(RecordType::AbortRequest, 9, b""),
    ] {
        answer_other(&parse_record(&raw).unwrap().unwrap(), &mut out).unwrap();
    }
    assert!(out.is_empty());
}

#[test]
fn other_unknown_management_type_is_answered_unknown_type() {
    let raw = record_padded(42, 0, b"", 0);
    let mut out = Vec::new();
    answer_other(&parse_record(&raw).unwrap().unwrap(), &mut out).unwrap();
    let mut direct = Vec::new();
    encode_unknown_type(42, &mut direct);
    assert_eq!(out, direct);
}
