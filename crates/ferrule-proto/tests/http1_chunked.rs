//! The chunked body decoder, fed raw bytes whole, in pieces and byte by byte.
use ferrule_proto::http1::ChunkedDecoder;
use ferrule_proto::ParseError;

const MAX_TRAILER: usize = 1024;

/// Decodes all of `input` fed in pieces of `step` bytes (carrying over what a call did not
/// consume, as the server's read buffer does). Returns the body, or the error, and whether the
/// decoder finished.
fn decode_in_steps(
    input: &[u8],
    step: usize,
    max_body: u64,
) -> (Result<Vec<u8>, ParseError>, usize) {
    let mut dec = ChunkedDecoder::new(MAX_TRAILER, max_body);
    let mut body = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    loop {
        if !dec.is_done() && fed < input.len() {
            let end = (fed + step).min(input.len());
            buf.extend_from_slice(&input[fed..end]);
            fed = end;
        }
        if dec.is_done() {
            // What is left belongs to the next request.
            return (Ok(body), input.len() - fed + buf.len());
        }
        if buf.is_empty() {
            return (Err(ParseError::Chunked("test: input ended early")), 0);
        }
        match dec.decode(&buf, 7) {
            Ok((used, data)) => {
                if let Some(r) = data {
                    body.extend_from_slice(&buf[r]);
                }
                buf.drain(..used);
                if used == 0 && fed == input.len() {
                    return (Err(ParseError::Chunked("test: stuck")), 0);
                }
            }
            Err(e) => return (Err(e), 0),
        }
    }
}

fn decode(input: &[u8]) -> Result<Vec<u8>, ParseError> {
    let whole = decode_in_steps(input, input.len().max(1), 0);
    let bytewise = decode_in_steps(input, 1, 0);
    assert_eq!(whole, bytewise, "whole and byte-by-byte decoding differ");
    whole.0
}

fn decode_err(input: &[u8]) -> ParseError {
    match decode(input) {
        Err(e) => {
            assert_eq!(e.status(), 400, "{e:?}");
            e
        }
        Ok(body) => panic!(
            "expected an error for {}, got body {:?}",
            input.escape_ascii(),
            body.escape_ascii().to_string()
        ),
    }
}

#[test]
fn simple_body_is_decoded() {
    assert_eq!(
        decode(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n").unwrap(),
        b"hello world"
    );
}

#[test]
fn empty_body_is_decoded() {
    assert_eq!(decode(b"0\r\n\r\n").unwrap(), b"");
}

#[test]
fn sizes_are_hex_in_either_case() {
    let data = vec![b'x'; 0x1a];
    let mut input = b"1a\r\n".to_vec();
    input.extend_from_slice(&data);
    input.extend_from_slice(b"\r\n1A\r\n");
    input.extend_from_slice(&data);
    input.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(decode(&input).unwrap().len(), 0x34);
}

#[test]
fn leading_zeros_in_size_are_fine() {
    assert_eq!(decode(b"0005\r\nhello\r\n000\r\n\r\n").unwrap(), b"hello");
}

#[test]
fn extensions_are_skipped() {
    assert_eq!(
        decode(b"5;name=value\r\nhello\r\n3 ; a=\"q;x\"\r\nabc\r\n0;last\r\n\r\n").unwrap(),
        b"helloabc"
    );
}

#[test]
fn trailers_are_skipped() {
    assert_eq!(
        decode(b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: d\r\n\r\n").unwrap(),
        b"hello"
    );
}

#[test]
fn bytes_after_the_last_chunk_are_left_for_the_next_request() {
    let input = b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    let (body, left) = decode_in_steps(input, input.len(), 0);
    assert_eq!(body.unwrap(), b"abc");
    assert_eq!(left, b"GET / HTTP/1.1\r\n\r\n".len());
}

#[test]
fn data_split_byte_by_byte_is_decoded() {
    let mut input = Vec::new();
    let mut expected = Vec::new();
    for n in [1usize, 2, 15, 16, 17, 255, 300] {
        input.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        let chunk: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        input.extend_from_slice(&chunk);
        input.extend_from_slice(b"\r\n");
        expected.extend_from_slice(&chunk);
    }
    input.extend_from_slice(b"0\r\n\r\n");
    for step in [1, 2, 3, 5, 64, input.len()] {
        let (body, _) = decode_in_steps(&input, step, 0);
        assert_eq!(body.unwrap(), expected, "step {step}");
    }
}

#[test]
fn largest_size_is_accepted_and_one_more_digit_overflows() {
    let mut dec = ChunkedDecoder::new(MAX_TRAILER, 0);
    let (used, data) = dec.decode(b"ffffffffffffffff\r\nab", 10).unwrap();
    assert_eq!(used, 20);
    assert_eq!(data, Some(18..20));
    assert_eq!(
        decode_err(b"10000000000000000\r\n"),
        ParseError::Chunked("chunk size too large")
    );
    decode_err(b"fffffffffffffffff\r\n");
}

#[test]
fn size_not_hex_is_400() {
    decode_err(b"g\r\n");
    decode_err(b"\r\n");
    decode_err(b"-1\r\n");
    decode_err(b"+5\r\nhello\r\n0\r\n\r\n");
    decode_err(b"0x5\r\nhello\r\n0\r\n\r\n");
    decode_err(b" 5\r\nhello\r\n0\r\n\r\n");
    decode_err(b"5 5\r\nhello\r\n0\r\n\r\n");
}

#[test]
fn whitespace_after_size_is_tolerated() {
    assert_eq!(decode(b"5 \r\nhello\r\n0\t\r\n\r\n").unwrap(), b"hello");
}

#[test]
fn bare_lf_in_framing_is_400() {
    decode_err(b"5\nhello\r\n0\r\n\r\n");
    decode_err(b"5;ext\nhello\r\n0\r\n\r\n");
    decode_err(b"5\r\nhello\n0\r\n\r\n");
    decode_err(b"5\r\nhello\r\n0\n\r\n");
    decode_err(b"5\r\nhello\r\n0\r\n\n");
    decode_err(b"5\r\nhello\r\n0\r\nX-A: b\n\r\n");
}

#[test]
fn cr_without_lf_is_400() {
    decode_err(b"5\rhello\r\n0\r\n\r\n");
    decode_err(b"5\r\nhello\r\n0\r\n\rx");
    decode_err(b"5\r\nhello\r\n0\r\nX-A: b\rx\r\n\r\n");
}

#[test]
fn missing_crlf_after_data_is_400() {
    assert_eq!(
        decode_err(b"5\r\nhelloX\r\n0\r\n\r\n"),
        ParseError::Chunked("chunk data not followed by CRLF")
    );
    // Data longer than its size: the extra byte is not CR.
    decode_err(b"3\r\nhello\r\n0\r\n\r\n");
}

#[test]
fn control_characters_in_size_line_are_400() {
    decode_err(b"5\0\r\nhello\r\n0\r\n\r\n");
    decode_err(b"5;a\0\r\nhello\r\n0\r\n\r\n");
}

#[test]
fn overlong_extension_is_400() {
    let mut input = b"5;".to_vec();
    input.extend(std::iter::repeat_n(b'a', 5000));
    input.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    decode_err(&input);
}

#[test]
fn oversized_trailer_section_is_400() {
    let mut input = b"0\r\nX-Big: ".to_vec();
    input.extend(std::iter::repeat_n(b'a', MAX_TRAILER + 10));
    input.extend_from_slice(b"\r\n\r\n");
    decode_err(&input);
}

#[test]
fn control_character_in_trailer_is_400() {
    decode_err(b"0\r\nX-A: a\0b\r\n\r\n");
}

#[test]
fn body_over_the_limit_is_413() {
    let (body, _) = decode_in_steps(b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", 4, 10);
    assert_eq!(body.unwrap(), b"helloworld");
    let (body, _) = decode_in_steps(b"5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", 4, 10);
    assert_eq!(body, Err(ParseError::BodyTooLarge));
    assert_eq!(ParseError::BodyTooLarge.status(), 413);
    // One declared chunk over the limit is refused before its data arrives.
    let mut dec = ChunkedDecoder::new(MAX_TRAILER, 10);
    assert_eq!(dec.decode(b"b\r\n", 100), Err(ParseError::BodyTooLarge));
}

#[test]
fn huge_chunk_sizes_do_not_overflow_the_running_total() {
    let mut dec = ChunkedDecoder::new(MAX_TRAILER, u64::MAX - 1);
    assert!(dec.decode(b"ffffffffffffffff\r\n", 10).is_err());
}
