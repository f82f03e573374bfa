//! FastCGI on the wire: a response as STDOUT records, ABORT_REQUEST noticed between writes,
//! the end of a request.
use std::os::fd::RawFd;

use ferrule_proto::fastcgi as fcgi;
use ferrule_proto::ParseError;

/// What a FastCGI connection answers to GET_VALUES: one request at a time per connection.
pub const VALUES: fcgi::ServerValues = fcgi::ServerValues {
    max_conns: 1024,
    max_reqs: 1024,
    mpxs_conns: false,
};

/// Answers a record that is not the current request's, into `out`: a management record
/// (GET_VALUES, unknown types) and, as requests are served one at a time, a BEGIN_REQUEST for
/// another id (END_REQUEST CANT_MPX_CONN, the spec's answer to multiplexing). Other records of
/// other ids are ignored. Errors: a malformed GET_VALUES.
pub fn answer_other(rec: &fcgi::Record<'_>, out: &mut Vec<u8>) -> Result<(), ParseError> {
    if rec.is_management() {
        return fcgi::answer_management(rec, &VALUES, out);
    }
    if rec.record_type() == Some(fcgi::RecordType::BeginRequest) {
        fcgi::encode_end_request(rec.request_id, 0, fcgi::ProtocolStatus::CantMpxConn, out);
    }
    Ok(())
}

/// Whether the front server has sent ABORT_REQUEST for request `id` (checked without waiting
/// between the response's writes). The record is taken off the socket; anything else is left
/// for the connection (with no multiplexing, nothing else comes before END_REQUEST).
pub fn aborted(fd: RawFd, id: u16) -> bool {
    let mut head = [0u8; fcgi::HEADER_LEN];
    // SAFETY: recv into our own 8-byte buffer; MSG_PEEK leaves the bytes on the socket.
    let n = unsafe {
        libc::recv(
            fd,
            head.as_mut_ptr().cast(),
            head.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    let [_, kind, hi, lo, 0, 0, 0, _] = head else {
        return false;
    };
    if n != fcgi::HEADER_LEN as isize
        || kind != fcgi::RecordType::AbortRequest as u8
        || u16::from_be_bytes([hi, lo]) != id
    {
        return false;
    }
    // SAFETY: as above, now consuming the 8 bytes just peeked (an ABORT_REQUEST has no body).
    unsafe {
        libc::recv(fd, head.as_mut_ptr().cast(), head.len(), libc::MSG_DONTWAIT);
    }
    true
}

/// Frames `parts` (one byte stream) as FastCGI STDOUT records of request `id`: the headers go
/// in `headers`, and the returned slices interleave them with the parts and the padding.
pub fn records<'a>(
    id: u16,
    parts: &[&'a [u8]],
    headers: &'a mut Vec<[u8; fcgi::HEADER_LEN]>,
) -> Vec<&'a [u8]> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut lens = Vec::with_capacity(total / fcgi::MAX_CONTENT + 1);
    let mut left = total;
    while left > 0 {
        let n = left.min(fcgi::MAX_CONTENT);
        lens.push(n);
        left -= n;
    }
    headers.clear();
    headers.extend(
        lens.iter()
            .map(|&n| fcgi::stream_header(fcgi::RecordType::Stdout, id, n as u16)),
    );
    let headers: &'a [[u8; fcgi::HEADER_LEN]] = headers;
    let mut out = Vec::with_capacity(parts.len() + 3 * lens.len());
    let mut pi = 0;
    let mut off = 0;
    for (h, &n) in headers.iter().zip(&lens) {
        out.push(&h[..]);
        let mut need = n;
        while need > 0 {
            let Some(part) = parts.get(pi) else { break };
            let avail = part.len() - off;
            if avail == 0 {
                pi += 1;
                off = 0;
                continue;
            }
            let take = avail.min(need);
            out.push(&part[off..off + take]);
            off += take;
            need -= take;
        }
        out.push(&fcgi::PADDING[..fcgi::padding_for(n)]);
    }
    out
}

/// Ends a FastCGI response: an empty STDOUT record and END_REQUEST. False if it failed.
pub fn end_request(fd: RawFd, request_id: u16, timeout: std::time::Duration) -> bool {
    let mut out = Vec::with_capacity(32);
    fcgi::encode_stream_end(fcgi::RecordType::Stdout, request_id, &mut out);
    fcgi::encode_end_request(
        request_id,
        0,
        fcgi::ProtocolStatus::RequestComplete,
        &mut out,
    );
    crate::net::io::write_all(fd, &[&out], 0, timeout).is_ok()
}
