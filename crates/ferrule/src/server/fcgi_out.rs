//! FastCGI on the socket (the encoding is `ferrule_proto::fastcgi`): ABORT_REQUEST noticed
//! between a response's writes, and the end of a request.
use std::os::fd::RawFd;

use ferrule_proto::fastcgi as fcgi;

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

/// Ends a FastCGI response: an empty STDOUT record and END_REQUEST. False if it failed.
pub fn end_request(fd: RawFd, request_id: u16, timeout: std::time::Duration) -> bool {
    let mut out = Vec::with_capacity(32);
    fcgi::encode_response_end(request_id, &mut out);
    crate::net::io::write_all(fd, &[&out], 0, timeout).is_ok()
}
