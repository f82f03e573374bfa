//! `wsgi.input`: the request body, streamed from the socket as the app reads it.
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use ferrule_proto::fastcgi::{StdinDecoder, StdinEvent};
use ferrule_proto::http1::{response::CONTINUE, BodyKind, ChunkedDecoder};
use ferrule_proto::{Limits, ParseError};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::net::io as sio;

/// Bytes asked of the socket per read.
const READ_BLOCK: usize = 64 * 1024;
/// Largest `read(size)` made as one `bytes` object of its final size and filled in place (one
/// copy instead of two), when the body's length is known; a larger one (or one that would
/// allocate for a length the client only claims) grows as the bytes come.
const READ_IN_PLACE: usize = 4 * READ_BLOCK;

/// Why the body could not be read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Malformed framing or over the body limit: answered with the error's status.
    Parse(ParseError),
    /// The client went away or stalled mid-body.
    Io(io::ErrorKind),
}

impl BodyError {
    fn to_py(self) -> PyErr {
        match self {
            Self::Parse(e) => PyValueError::new_err(format!("request body refused: {e}")),
            Self::Io(io::ErrorKind::TimedOut) => {
                PyOSError::new_err("client timed out sending the request body")
            }
            Self::Io(_) => {
                PyOSError::new_err("client disconnected before sending the whole request body")
            }
        }
    }
}

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
            error: None,
        }
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
            error: None,
        }
    }

    #[must_use]
    pub fn is_done(&self) -> bool {
        matches!(self.framing, Framing::Done)
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
                                if super::fcgi_out::answer_other(&rec, &mut reply).is_err() {
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
        match sio::read_some(self.fd, &mut self.rbuf, READ_BLOCK, self.timeout) {
            Ok(0) => Err(BodyError::Io(io::ErrorKind::UnexpectedEof)),
            Ok(_) => Ok(()),
            Err(e) => Err(BodyError::Io(e.kind())),
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
            match sio::read_into(self.fd, &mut rest[done..], self.timeout) {
                Ok(0) => return Err(BodyError::Io(io::ErrorKind::UnexpectedEof)),
                Ok(n) => done += n,
                Err(e) => return Err(BodyError::Io(e.kind())),
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

/// `wsgi.input`. Reads block (with the GIL released) until `size` bytes or the end of the body,
/// as a buffered file's do.
#[pyclass(module = "ferrule._native", name = "Input")]
pub struct Input {
    pub reader: Option<BodyReader>,
    /// Bytes read ahead by `readline`, served before the reader.
    pending: Vec<u8>,
}

impl Input {
    /// The response's head goes out while the body is not all read: true when the
    /// connection is to close after the response, the rest of the body being left unread
    /// (see [`BodyReader::left_unread`]), so that the head can say so. A client still waiting
    /// for `100 Continue` gets none after this final response (RFC 9110 section 10.1.1): if
    /// the app reads on, it reads what the client sends without it.
    pub fn head_going_out(&mut self, drain_limit: u64) -> bool {
        let Some(r) = self.reader.as_mut() else {
            return false;
        };
        let close = r.left_unread(drain_limit);
        r.continue_pending = false;
        close
    }

    #[must_use]
    pub fn new(reader: BodyReader) -> Self {
        Self {
            reader: Some(reader),
            pending: Vec::new(),
        }
    }

    /// An input that reads as empty (a request without a body).
    #[must_use]
    pub fn empty() -> Self {
        Self {
            reader: None,
            pending: Vec::new(),
        }
    }

    /// Appends up to `max` bytes to `out` from the pending buffer, then the body; 0 at the end.
    fn read_more(&mut self, py: Python<'_>, out: &mut Vec<u8>, max: usize) -> PyResult<usize> {
        if !self.pending.is_empty() {
            let n = max.min(self.pending.len());
            out.extend(self.pending.drain(..n));
            return Ok(n);
        }
        let Some(reader) = self.reader.as_mut() else {
            return Ok(0);
        };
        match reader.read(out, max, false) {
            Ok(Some(n)) => Ok(n),
            Ok(None) => match py.detach(|| {
                // Waiting for the client does not count against --timeout.
                let _paused = crate::watchdog::pause();
                reader.read(out, max, true)
            }) {
                Ok(n) => Ok(n.unwrap_or(0)),
                Err(e) => Err(e.to_py()),
            },
            Err(e) => Err(e.to_py()),
        }
    }

    fn read_exact(&mut self, py: Python<'_>, size: Option<usize>) -> PyResult<Vec<u8>> {
        let want = size.unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(want.min(READ_BLOCK));
        while out.len() < want {
            let max = (want - out.len()).min(4 * READ_BLOCK);
            let n = self.read_more(py, &mut out, max)?;
            if n == 0 {
                break;
            }
        }
        Ok(out)
    }

    fn read_line(&mut self, py: Python<'_>, limit: Option<usize>) -> PyResult<Vec<u8>> {
        let limit = limit.unwrap_or(usize::MAX);
        let mut scanned = 0;
        loop {
            if let Some(nl) = memchr_from(&self.pending, scanned) {
                let end = (nl + 1).min(limit);
                return Ok(self.pending.drain(..end).collect());
            }
            if self.pending.len() >= limit {
                return Ok(self.pending.drain(..limit).collect());
            }
            scanned = self.pending.len();
            let mut more = std::mem::take(&mut self.pending);
            let n = match self.reader.as_mut() {
                None => 0,
                Some(reader) => match reader.read(&mut more, READ_BLOCK, false) {
                    Ok(Some(n)) => n,
                    Ok(None) => py
                        .detach(|| {
                            let _paused = crate::watchdog::pause();
                            reader.read(&mut more, READ_BLOCK, true)
                        })
                        .map_err(BodyError::to_py)?
                        .unwrap_or(0),
                    Err(e) => return Err(e.to_py()),
                },
            };
            self.pending = more;
            if n == 0 {
                let end = self.pending.len().min(limit);
                return Ok(self.pending.drain(..end).collect());
            }
        }
    }
}

impl Input {
    /// `read(size)` as one `bytes` object of its final size, filled in place, when the body's
    /// length is known and the read is small or already received (see [`READ_IN_PLACE`]).
    fn read_in_place<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<usize>,
    ) -> Option<PyResult<Bound<'py, PyBytes>>> {
        if !self.pending.is_empty() {
            return None;
        }
        let reader = self.reader.as_mut()?;
        let n = reader.exact_len(size)?;
        let received = reader.buffered() >= n;
        if !received && n > READ_IN_PLACE {
            return None;
        }
        let Ok(len) = pyo3::ffi::Py_ssize_t::try_from(n) else {
            return None;
        };
        // SAFETY: with a null pointer, PyBytes_FromStringAndSize makes a bytes object of `len`
        // bytes left uninitialised for the caller to fill (CPython's documented way to build
        // one in place); we hold the GIL. A null result is an exception set.
        let raw = unsafe { pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), len) };
        if raw.is_null() {
            return Some(Err(PyErr::fetch(py)));
        }
        // SAFETY: `raw` is a new reference to a bytes object, owned by `bytes` from here on.
        let bytes = unsafe { Bound::from_owned_ptr(py, raw).cast_into_unchecked::<PyBytes>() };
        // SAFETY: the object's buffer holds `n` bytes and nothing else refers to the object
        // (it is returned only once filled): writing them is ours alone, and the slice ends
        // before `bytes` is returned or dropped.
        let dst = unsafe {
            std::slice::from_raw_parts_mut(pyo3::ffi::PyBytes_AsString(raw).cast::<u8>(), n)
        };
        let filled = if received {
            reader.read_exact_into(dst)
        } else {
            // Waiting for the client does not count against --timeout.
            py.detach(|| {
                let _paused = crate::watchdog::pause();
                reader.read_exact_into(dst)
            })
        };
        Some(filled.map(|()| bytes).map_err(BodyError::to_py))
    }
}

fn memchr_from(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)
        .and_then(|b| b.iter().position(|&c| c == b'\n'))
        .map(|p| p + from)
}

/// `None`, or a negative number, means "no limit", as for files.
fn size_arg(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size=None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let size = size_arg(size);
        if let Some(bytes) = self.read_in_place(py, size) {
            return bytes;
        }
        let data = self.read_exact(py, size)?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let line = self.read_line(py, size_arg(size))?;
        Ok(PyBytes::new(py, &line))
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(
        &mut self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let hint = size_arg(hint).filter(|&h| h > 0);
        let lines = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self.read_line(py, None)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            lines.append(PyBytes::new(py, &line))?;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.read_line(py, None)?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }

    fn readable(&self) -> bool {
        true
    }

    fn close(&self) {}
}
