//! A request body as HTTP/1 (Content-Length or chunked) and FastCGI (STDIN records) deliver
//! it: read from the bytes already received, then from the socket as the app asks for more.
//! The WSGI bridge reads it through [`BodySource`].
use std::any::Any;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use ferrule_proto::fastcgi::{StdinDecoder, StdinEvent};
use ferrule_proto::http1::{response::CONTINUE, BodyKind, ChunkedDecoder};
use ferrule_proto::Limits;

use super::rate::{self, MinRate};
use crate::net::io as sio;
use crate::wsgi::sink::{BodyError, BodySource};

/// Bytes asked of the socket per read.
const READ_BLOCK: usize = 64 * 1024;

/// Most unread body bytes drained after a response to keep the connection; beyond, it closes.
pub const DRAIN_LIMIT: u64 = 1 << 20;

enum Framing {
    Length(u64),
    Chunked(ChunkedDecoder),
    /// FastCGI STDIN records of one request.
    FastCgi(StdinDecoder),
    Done,
}

/// The body of one request, read from `rbuf` (bytes already received) and then the socket.
pub struct BodyReader {
    fd: RawFd,
    /// The connection's read buffer; after the body it may hold the next pipelined request.
    pub rbuf: BytesMut,
    framing: Framing,
    /// `Expect: 100-continue` not yet answered.
    pub continue_pending: bool,
    timeout: Duration,
    /// `--body-min-rate` on a streamed body, when set for it.
    rate: Option<MinRate>,
    pub error: Option<BodyError>,
}

impl BodyReader {
    #[must_use]
    pub fn new(
        fd: RawFd,
        rbuf: BytesMut,
        kind: BodyKind,
        expect: bool,
        limits: &Limits,
        timeout: Duration,
    ) -> Self {
        let framing = match kind {
            BodyKind::Empty => Framing::Done,
            BodyKind::Length(n) => Framing::Length(n),
            BodyKind::Chunked => {
                Framing::Chunked(ChunkedDecoder::new(limits.max_head(), limits.request_body))
            }
        };
        let continue_pending = expect && !matches!(framing, Framing::Done);
        Self {
            fd,
            rbuf,
            framing,
            continue_pending,
            timeout,
            rate: None,
            error: None,
        }
    }

    /// The body must arrive at `rate` bytes per second or faster (`--body-min-rate`; 0: no
    /// minimum), counted over the time its reads wait for the client.
    #[must_use]
    pub fn with_min_rate(mut self, rate: u64) -> Self {
        self.rate = MinRate::start(rate);
        self
    }

    /// The body of FastCGI request `request_id`: its STDIN records, up to `max_body` (0: none).
    #[must_use]
    pub fn fastcgi(
        fd: RawFd,
        rbuf: BytesMut,
        request_id: u16,
        max_body: u64,
        timeout: Duration,
    ) -> Self {
        Self {
            fd,
            rbuf,
            framing: Framing::FastCgi(StdinDecoder::new(request_id, max_body)),
            continue_pending: false,
            timeout,
            rate: None,
            error: None,
        }
    }

    #[must_use]
    pub fn is_done(&self) -> bool {
        matches!(self.framing, Framing::Done)
    }

    /// Whether reading the rest of the body waits for no client: it is all in the read buffer
    /// (or what is there ends it early: malformed framing, FastCGI's ABORT_REQUEST), and no
    /// `100 Continue` is still to be sent. The buffer is scanned, not consumed.
    #[must_use]
    pub fn arrived(&self) -> bool {
        if self.continue_pending {
            return false;
        }
        let mut at = 0;
        match &self.framing {
            Framing::Done => true,
            Framing::Length(left) => self.rbuf.len() as u64 >= *left,
            Framing::Chunked(dec) => {
                let mut dec = dec.clone();
                loop {
                    match dec.decode(self.rbuf.get(at..).unwrap_or_default(), usize::MAX) {
                        _ if dec.is_done() => return true,
                        Ok((0, _)) => return false,
                        Ok((used, _)) => at += used,
                        Err(_) => return true,
                    }
                }
            }
            Framing::FastCgi(dec) => {
                let mut dec = dec.clone();
                loop {
                    match dec.decode(self.rbuf.get(at..).unwrap_or_default(), usize::MAX) {
                        Ok((_, Some(StdinEvent::End | StdinEvent::Abort))) | Err(_) => return true,
                        Ok((0, _)) => return false,
                        Ok((used, _)) => at += used,
                    }
                }
            }
        }
    }

    /// Appends up to `max` (> 0) body bytes to `out`. `Ok(Some(0))`: the body has ended.
    /// `Ok(None)`: nothing is buffered and `block` is false (call again with the GIL released).
    pub fn read(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
        block: bool,
    ) -> Result<Option<usize>, BodyError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        loop {
            match &mut self.framing {
                Framing::Done => return Ok(Some(0)),
                Framing::Length(left) => {
                    if !self.rbuf.is_empty() {
                        let n = (*left).min(self.rbuf.len() as u64).min(max as u64) as usize;
                        out.extend_from_slice(&self.rbuf[..n]);
                        self.rbuf.advance(n);
                        *left -= n as u64;
                        if *left == 0 {
                            self.framing = Framing::Done;
                        }
                        return Ok(Some(n));
                    }
                }
                Framing::FastCgi(dec) => {
                    if !self.rbuf.is_empty() {
                        let mut reply = Vec::new();
                        let (used, n, end) = match dec.decode(&self.rbuf, max) {
                            Ok((used, Some(StdinEvent::Data(r)))) => {
                                out.extend_from_slice(&self.rbuf[r.clone()]);
                                (used, r.len(), false)
                            }
                            Ok((used, Some(StdinEvent::End))) => (used, 0, true),
                            Ok((_, Some(StdinEvent::Abort))) => {
                                let e = BodyError::Io(io::ErrorKind::ConnectionAborted);
                                return Err(*self.error.insert(e));
                            }
                            Ok((
                                used,
                                Some(StdinEvent::Management(rec) | StdinEvent::OtherRequest(rec)),
                            )) => {
                                if ferrule_proto::fastcgi::answer_other(&rec, &mut reply).is_err() {
                                    reply.clear();
                                }
                                (used, 0, false)
                            }
                            Ok((used, None)) => (used, 0, false),
                            Err(e) => return Err(*self.error.insert(BodyError::Parse(e))),
                        };
                        self.rbuf.advance(used);
                        if !reply.is_empty() {
                            sio::write_all(self.fd, &[&reply], 0, self.timeout)
                                .map_err(|e| BodyError::Io(e.kind()))?;
                        }
                        if end {
                            self.framing = Framing::Done;
                            return Ok(Some(0));
                        }
                        if n > 0 {
                            return Ok(Some(n));
                        }
                        if used > 0 {
                            continue;
                        }
                    }
                }
                Framing::Chunked(dec) => {
                    if !self.rbuf.is_empty() {
                        let (used, data) = match dec.decode(&self.rbuf, max) {
                            Ok(r) => r,
                            Err(e) => return Err(*self.error.insert(BodyError::Parse(e))),
                        };
                        let n = data.map_or(0, |d| {
                            out.extend_from_slice(&self.rbuf[d.clone()]);
                            d.len()
                        });
                        let done = dec.is_done();
                        self.rbuf.advance(used);
                        if done {
                            self.framing = Framing::Done;
                        }
                        if n > 0 {
                            return Ok(Some(n));
                        }
                        continue;
                    }
                }
            }
            if !block {
                return Ok(None);
            }
            if let Err(e) = self.fill() {
                return Err(*self.error.insert(e));
            }
        }
    }

    /// Reads more from the socket, first answering `100 Continue` if the client waits for it.
    fn fill(&mut self) -> Result<(), BodyError> {
        if self.continue_pending {
            self.continue_pending = false;
            sio::write_all(self.fd, &[CONTINUE], 0, self.timeout)
                .map_err(|e| BodyError::Io(e.kind()))?;
        }
        let (fd, rbuf) = (self.fd, &mut self.rbuf);
        match rate::paced(self.timeout, &mut self.rate, |t| {
            sio::read_some(fd, rbuf, READ_BLOCK, t)
        }) {
            Ok(0) => Err(BodyError::Io(io::ErrorKind::UnexpectedEof)),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// How many bytes a `read(size)` returns, when the body's length is known and nothing
    /// failed: `size` (None: all) capped at what is left.
    #[must_use]
    pub fn exact_len(&self, size: Option<usize>) -> Option<usize> {
        if self.error.is_some() {
            return None;
        }
        match self.framing {
            Framing::Done => Some(0),
            Framing::Length(left) => {
                let left = usize::try_from(left).unwrap_or(usize::MAX);
                Some(size.map_or(left, |s| s.min(left)))
            }
            Framing::Chunked(_) | Framing::FastCgi(_) => None,
        }
    }

    /// Body bytes already received and not yet read.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.rbuf.len()
    }

    /// Fills `dst`, at most [`exact_len`](Self::exact_len) bytes, from the bytes received, then
    /// straight from the socket (waiting for the client: call with the GIL released unless
    /// [`buffered`](Self::buffered) covers it).
    pub fn read_exact_into(&mut self, dst: &mut [u8]) -> Result<(), BodyError> {
        let result = self.fill_exact(dst);
        result.map_err(|e| *self.error.insert(e))
    }

    fn fill_exact(&mut self, dst: &mut [u8]) -> Result<(), BodyError> {
        let left = match self.framing {
            Framing::Length(left) if dst.len() as u64 <= left => left,
            Framing::Done if dst.is_empty() => return Ok(()),
            _ => return Err(BodyError::Io(io::ErrorKind::InvalidInput)),
        };
        let from_buf = dst.len().min(self.rbuf.len());
        let (head, rest) = dst.split_at_mut(from_buf);
        head.copy_from_slice(&self.rbuf[..from_buf]);
        self.rbuf.advance(from_buf);
        let mut done = 0;
        while done < rest.len() {
            if self.continue_pending {
                self.continue_pending = false;
                sio::write_all(self.fd, &[CONTINUE], 0, self.timeout)
                    .map_err(|e| BodyError::Io(e.kind()))?;
            }
            let (fd, dst) = (self.fd, &mut rest[done..]);
            match rate::paced(self.timeout, &mut self.rate, |t| sio::read_into(fd, dst, t)) {
                Ok(0) => return Err(BodyError::Io(io::ErrorKind::UnexpectedEof)),
                Ok(n) => done += n,
                Err(e) => return Err(e),
            }
        }
        let left = left - dst.len() as u64;
        self.framing = if left == 0 {
            Framing::Done
        } else {
            Framing::Length(left)
        };
        Ok(())
    }

    /// Whether the rest of the body will be left unread after the response (see
    /// [`BodyReader::drain`]): the client still waits for `100 Continue`, or more than `limit`
    /// bytes are still to come.
    #[must_use]
    pub fn left_unread(&self, limit: u64) -> bool {
        self.continue_pending || matches!(self.framing, Framing::Length(left) if left > limit)
    }

    /// Reads and discards what is left of the body, up to `limit` bytes. True if the body ended
    /// (the connection can serve another request).
    pub fn drain(&mut self, limit: u64) -> bool {
        if self.continue_pending {
            // The client waits for our word before sending the body: it was never sent.
            return false;
        }
        let mut sink = Vec::new();
        let mut total = 0u64;
        while !self.is_done() {
            sink.clear();
            match self.read(&mut sink, READ_BLOCK, true) {
                Ok(Some(n)) => total += n as u64,
                Ok(None) | Err(_) => return false,
            }
            if total > limit {
                return false;
            }
        }
        true
    }
}

impl BodySource for BodyReader {
    fn read(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
        block: bool,
    ) -> Result<Option<usize>, BodyError> {
        Self::read(self, out, max, block)
    }

    fn exact_len(&self, size: Option<usize>) -> Option<usize> {
        Self::exact_len(self, size)
    }

    fn buffered(&self) -> usize {
        Self::buffered(self)
    }

    fn read_exact_into(&mut self, dst: &mut [u8]) -> Result<(), BodyError> {
        Self::read_exact_into(self, dst)
    }

    fn is_done(&self) -> bool {
        Self::is_done(self)
    }

    fn error(&self) -> Option<BodyError> {
        self.error
    }

    fn head_going_out(&mut self) -> bool {
        let close = self.left_unread(DRAIN_LIMIT);
        self.continue_pending = false;
        close
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrule_proto::fastcgi::{encode_record, encode_stream, encode_stream_end, RecordType};

    fn http1(kind: BodyKind, bytes: &[u8], expect: bool) -> BodyReader {
        let limits = Limits::default();
        let rbuf = BytesMut::from(bytes);
        BodyReader::new(-1, rbuf, kind, expect, &limits, Duration::from_secs(1))
    }

    fn fastcgi(bytes: &[u8]) -> BodyReader {
        BodyReader::fastcgi(-1, BytesMut::from(bytes), 1, 0, Duration::from_secs(1))
    }

    #[test]
    fn a_length_body_has_arrived_when_the_buffer_holds_it() {
        assert!(http1(BodyKind::Empty, b"", false).arrived());
        assert!(!http1(BodyKind::Length(5), b"hell", false).arrived());
        assert!(http1(BodyKind::Length(5), b"hello", false).arrived());
        assert!(http1(BodyKind::Length(5), b"helloGET / HTTP/1.1", false).arrived());
        // The client waits for 100 Continue before it sends the body.
        assert!(!http1(BodyKind::Length(5), b"hello", true).arrived());
    }

    #[test]
    fn a_chunked_body_has_arrived_with_its_last_chunk() {
        assert!(!http1(BodyKind::Chunked, b"5\r\nhello\r\n", false).arrived());
        assert!(!http1(BodyKind::Chunked, b"5\r\nhel", false).arrived());
        let mut whole = http1(BodyKind::Chunked, b"5\r\nhello\r\n0\r\n\r\n", false);
        assert!(whole.arrived());
        // Scanning consumed nothing: the reader still reads the body.
        let mut out = Vec::new();
        assert_eq!(whole.read(&mut out, 64, false), Ok(Some(5)));
        assert_eq!(out, b"hello");
        // Malformed framing fails at once, without waiting for the client.
        assert!(http1(BodyKind::Chunked, b"zz\r\n", false).arrived());
    }

    #[test]
    fn a_fastcgi_body_has_arrived_with_its_empty_stdin_record_or_an_abort() {
        let mut rec = Vec::new();
        encode_stream(RecordType::Stdin, 1, b"hello", &mut rec);
        assert!(!fastcgi(&rec).arrived());
        // A management record on the way does not end the body.
        let mut with_values = rec.clone();
        encode_record(RecordType::GetValues as u8, 0, b"", &mut with_values);
        assert!(!fastcgi(&with_values).arrived());
        let mut whole = with_values.clone();
        encode_stream_end(RecordType::Stdin, 1, &mut whole);
        assert!(fastcgi(&whole).arrived());
        let mut aborted = rec.clone();
        encode_record(RecordType::AbortRequest as u8, 1, b"", &mut aborted);
        assert!(fastcgi(&aborted).arrived());
        assert!(!fastcgi(rec.get(..10).unwrap_or_default()).arrived());
    }
}
