//! The server's side of a FastCGI request: the response as STDOUT records ([`records`], for a
//! gathered write without copying), its end ([`encode_response_end`]), and the answers to
//! records that are not the current request's ([`answer_other`], with [`VALUES`]).
use super::params::{answer_management, ServerValues};
use super::record::{encode_end_request, encode_stream_end, padding_for, stream_header, Record};
use super::{ProtocolStatus, RecordType, HEADER_LEN, MAX_CONTENT, PADDING};
use crate::ParseError;

/// What a FastCGI connection answers to GET_VALUES: one request at a time per connection.
pub const VALUES: ServerValues = ServerValues {
    max_conns: 1024,
    max_reqs: 1024,
    mpxs_conns: false,
};

/// Frames `parts` (one byte stream) as STDOUT records of `request_id`, each at most 65535
/// content bytes and padded to a multiple of 8. The record headers are written to `headers`
/// (cleared first); the returned slices interleave them with the parts (split where a record
/// ends) and the padding, ready for `writev`. Empty `parts` give no record (the empty one that
/// ends the stream is [`encode_response_end`]'s).
pub fn records<'a>(
    request_id: u16,
    parts: &[&'a [u8]],
    headers: &'a mut Vec<[u8; HEADER_LEN]>,
) -> Vec<&'a [u8]> {
    headers.clear();
    // Bytes in the record being filled: at most MAX_CONTENT, so the casts below are exact.
    let mut fill = 0;
    for part in parts {
        let mut left = part.len();
        while left > 0 {
            let take = left.min(MAX_CONTENT - fill);
            fill += take;
            left -= take;
            if fill == MAX_CONTENT {
                headers.push(stream_header(RecordType::Stdout, request_id, fill as u16));
                fill = 0;
            }
        }
    }
    if fill > 0 {
        headers.push(stream_header(RecordType::Stdout, request_id, fill as u16));
    }
    let headers: &'a [[u8; HEADER_LEN]] = headers;
    let mut out = Vec::with_capacity(parts.len().saturating_add(3 * headers.len()));
    let mut rest = parts.iter().copied();
    let mut current: &'a [u8] = &[];
    for header in headers {
        let [_, _, _, _, len_hi, len_lo, _, _] = *header;
        let len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        out.push(header.as_slice());
        let mut need = len;
        while need > 0 {
            if current.is_empty() {
                match rest.next() {
                    Some(part) => current = part,
                    None => break,
                }
                continue;
            }
            let (take, left) = current.split_at(need.min(current.len()));
            out.push(take);
            current = left;
            need -= take.len();
        }
        out.push(PADDING.get(..padding_for(len)).unwrap_or_default());
    }
    out
}

/// Appends the end of request `request_id`'s response: the empty STDOUT record that ends the
/// stream, then END_REQUEST with application status 0 and `RequestComplete`.
pub fn encode_response_end(request_id: u16, out: &mut Vec<u8>) {
    encode_stream_end(RecordType::Stdout, request_id, out);
    encode_end_request(request_id, 0, ProtocolStatus::RequestComplete, out);
}

/// Answers a record that is not the current request's, into `out`: a management record
/// (GET_VALUES with [`VALUES`], unknown types with UNKNOWN_TYPE) and, as requests are served
/// one at a time, a BEGIN_REQUEST for another id (END_REQUEST `CantMpxConn`, the spec's answer
/// to multiplexing). Other records of other ids are ignored. Errors: a malformed GET_VALUES.
pub fn answer_other(rec: &Record<'_>, out: &mut Vec<u8>) -> Result<(), ParseError> {
    if rec.is_management() {
        return answer_management(rec, &VALUES, out);
    }
    if rec.record_type() == Some(RecordType::BeginRequest) {
        encode_end_request(rec.request_id, 0, ProtocolStatus::CantMpxConn, out);
    }
    Ok(())
}
