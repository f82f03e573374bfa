//! `start_response`, the `write()` callable, and the encoding of the app's response.
use std::borrow::Cow;
use std::io::{self, IoSlice};
use std::os::fd::{FromRawFd, RawFd};

use std::time::Duration;

use ferrule_proto::http1::request::parse_decimal;
use ferrule_proto::http1::{is_field_value, is_token, response as enc, Version};
use pyo3::exceptions::{PyAssertionError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use super::flush::{Flusher, Pending};
use super::input::Input;
use super::known_headers::{KnownHeaders, NameKind};
use crate::log::{error, warning};
use crate::net::{date, io as sio};

/// How the body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Headers not sent yet.
    Unset,
    /// No body may be sent (HEAD, 1xx, 204, 304): body bytes are discarded.
    NoBody,
    /// Content-Length with this many bytes left.
    Length(u64),
    Chunked,
    /// HTTP/1.0 without a length: the body ends when the connection closes.
    Close,
}

/// What the connection tells the response.
pub struct Output {
    pub fd: RawFd,
    pub version: Version,
    pub keep_alive: bool,
    pub head_request: bool,
    pub server_header: bool,
    pub timeout: Duration,
    /// The inline worker: blocks from the app's iterable may be coalesced (see `flush`), and
    /// no write waits for the socket: what it does not take stays pending (`blocked`) and the
    /// connection's task waits for the client (see `wsgi::Served::Stalled`).
    pub coalesce: bool,
    /// FastCGI: the request id whose STDOUT records carry the response (a CGI-style head,
    /// `Status: 200 OK`, then the body until the stream ends).
    pub fastcgi: Option<u16>,
    /// The response's last write, when small, is left to the connection's task (see
    /// [`StartResponse::deferred`]): the inline worker.
    pub defer_last: bool,
}

/// Most bytes of a response's last write that the inline worker leaves to the connection's
/// task; a larger one is written at once.
const DEFER_MAX: usize = 16 * 1024;

/// The `start_response` callable handed to the app; also the response's state.
#[pyclass(module = "ferrule._native", name = "StartResponse")]
pub struct StartResponse {
    /// `200 OK`, validated, once `started`.
    status: Vec<u8>,
    /// start_response was called (and accepted).
    started: bool,
    pub code: u16,
    /// Encoded `Name: value\r\n` lines the app set.
    headers: Vec<u8>,
    content_length: Option<u64>,
    app_date: bool,
    app_server: bool,
    pub out: Output,
    framing: Framing,
    /// Body bytes sent (without framing).
    pub body_sent: u64,
    overflow_logged: bool,
    /// The socket failed: nothing more can be sent.
    pub broken: bool,
    /// FastCGI: the front server sent ABORT_REQUEST; the app's output stops.
    pub aborted: bool,
    /// The end of a file response, left for the connection's task (inline worker).
    pub tail: Option<sio::FileTail>,
    /// The request is over: `write()` refuses.
    finished: bool,
    /// Framed bytes not yet written (coalescing; see `flush`).
    pending: Pending,
    /// `pending` is with the flusher thread while the app produces its next block.
    pub pending_out: bool,
    /// The socket did not take all of `pending` (inline worker): nothing more is asked of the
    /// app until the client reads.
    pub blocked: bool,
    /// The response's last bytes, complete, for the connection's task to write once the
    /// event loop has run the other requests already waiting. Clients then get their
    /// responses in bursts, as from an event loop that reads before it writes (bjoern):
    /// each wake-up of a client serves several responses, and no response waits for more
    /// than the requests that were ready with it.
    pub deferred: Option<Vec<u8>>,
    /// Header tuples and names of earlier responses (kept when the response is recycled).
    known: KnownHeaders,
    /// The request's `wsgi.input` while its body is not all read (None for a request
    /// without one): asked, when the head goes out, whether the connection closes after the
    /// response (see [`Input::head_going_out`]).
    pub body: Option<Py<Input>>,
    /// The bound `write` method start_response returns, made once and kept while the
    /// object is recycled (a bound method built and freed per request cost ~450
    /// instructions). It refers back to this object: the cycle is broken by
    /// [`StartResponse::release_write`] when the object is let go, and visible to Python's
    /// collector (`__traverse__`) on any other path.
    write_fn: Option<Py<PyAny>>,
}

fn invalid(msg: String) -> PyErr {
    PyValueError::new_err(msg)
}

/// A str as latin-1 bytes (PEP 3333's "bytes as str"), or None if it holds a wider character.
/// ASCII (the usual case) is borrowed from the str, not copied.
fn latin1<'a>(s: &'a Bound<'_, PyString>) -> PyResult<Option<Cow<'a, [u8]>>> {
    let s = s.to_cow()?;
    if s.is_ascii() {
        return Ok(Some(match s {
            Cow::Borrowed(b) => Cow::Borrowed(b.as_bytes()),
            Cow::Owned(o) => Cow::Owned(o.into_bytes()),
        }));
    }
    Ok(s.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .map(Cow::Owned))
}

impl StartResponse {
    #[must_use]
    pub fn new(out: Output) -> Self {
        Self {
            status: Vec::new(),
            started: false,
            code: 0,
            headers: Vec::with_capacity(128),
            content_length: None,
            app_date: false,
            app_server: false,
            out,
            framing: Framing::Unset,
            body_sent: 0,
            overflow_logged: false,
            broken: false,
            aborted: false,
            tail: None,
            finished: false,
            pending: Pending::default(),
            pending_out: false,
            blocked: false,
            deferred: None,
            known: KnownHeaders::default(),
            body: None,
            write_fn: None,
        }
    }

    /// The references to this object that [`StartResponse::write_fn`] accounts for: 1 while
    /// the kept `write` is held by nobody else, else 0.
    #[must_use]
    pub fn own_refs(&self) -> isize {
        self.write_fn.as_ref().map_or(0, |w| {
            // SAFETY: reads the reference count of a live object this one holds a
            // reference to; the caller holds the GIL (it borrowed this object).
            isize::from(unsafe { pyo3::ffi::Py_REFCNT(w.as_ptr()) } == 1)
        })
    }

    /// Drops the kept `write`, breaking its cycle with this object, when the object is let
    /// go rather than recycled.
    pub fn release_write(&mut self) {
        self.write_fn = None;
    }

    /// Whether nothing of its response is still held or lent out, so that it may serve
    /// another request (see [`StartResponse::reset`]).
    #[must_use]
    pub fn recyclable(&self) -> bool {
        !self.pending_out
            && !self.blocked
            && self.pending.is_empty()
            && self.tail.is_none()
            && self.deferred.is_none()
    }

    /// The state of a new response for `out`, keeping this one's buffers and known headers.
    /// Every field is named, so that a new one cannot be left out.
    pub fn reset(&mut self, out: Output) {
        let Self {
            status,
            started,
            code,
            headers,
            content_length,
            app_date,
            app_server,
            out: this_out,
            framing,
            body_sent,
            overflow_logged,
            broken,
            aborted,
            tail,
            finished,
            pending,
            pending_out,
            blocked,
            deferred,
            known: _,
            body,
            write_fn: _,
        } = self;
        status.clear();
        *started = false;
        *code = 0;
        headers.clear();
        *content_length = None;
        *app_date = false;
        *app_server = false;
        *this_out = out;
        *framing = Framing::Unset;
        *body_sent = 0;
        *overflow_logged = false;
        *broken = false;
        *aborted = false;
        *tail = None;
        *finished = false;
        pending.clear();
        *pending_out = false;
        *blocked = false;
        *deferred = None;
        *body = None;
    }

    /// Nothing more of the body can be sent: the Content-Length is complete, the response
    /// has no body, or the app's iterable ended.
    fn complete(&self) -> bool {
        self.finished || matches!(self.framing, Framing::Length(0) | Framing::NoBody)
    }

    /// Whether `more` bytes, the response's last, may join what is deferred.
    fn may_defer(&self, more: usize) -> bool {
        self.out.defer_last
            && !self.broken
            && !self.blocked
            && self.complete()
            && self.deferred.as_ref().map_or(0, Vec::len) + more <= DEFER_MAX
    }

    /// Leaves `parts` (the response's last bytes) to the connection's task, after what is
    /// already deferred, if the worker defers and they are small. False: write them now.
    fn defer(&mut self, parts: &[&[u8]]) -> bool {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        self.defer_with(total, |out| {
            for p in parts {
                out.extend_from_slice(p);
            }
        })
    }

    /// [`StartResponse::defer`] of `total` bytes that `fill` appends.
    fn defer_with(&mut self, total: usize, fill: impl FnOnce(&mut Vec<u8>)) -> bool {
        if !self.may_defer(total) {
            return false;
        }
        fill(
            self.deferred
                .get_or_insert_with(|| Vec::with_capacity(total)),
        );
        true
    }

    #[must_use]
    pub fn started(&self) -> bool {
        self.started
    }

    #[must_use]
    pub fn headers_sent(&self) -> bool {
        self.framing != Framing::Unset
    }

    fn set_status(&mut self, status: &Bound<'_, PyAny>) -> PyResult<()> {
        let s = status.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "status must be a str such as '200 OK', not {}",
                type_name(status)
            ))
        })?;
        let bytes = latin1(s)?.ok_or_else(|| invalid(format!("status {s} is not latin-1")))?;
        // PEP 3333: "a status code and a reason phrase, separated by a single space".
        let ok = bytes.len() >= 4
            && bytes[..3].iter().all(u8::is_ascii_digit)
            && bytes[0] != b'0'
            && bytes[3] == b' '
            && is_field_value(&bytes);
        if !ok {
            return Err(invalid(format!(
                "status {:?} is not a three-digit code and a reason phrase such as '200 OK'",
                String::from_utf8_lossy(&bytes)
            )));
        }
        self.code = u16::from(bytes[0] - b'0') * 100
            + u16::from(bytes[1] - b'0') * 10
            + u16::from(bytes[2] - b'0');
        self.status.clear();
        self.status.extend_from_slice(&bytes);
        self.started = true;
        Ok(())
    }

    fn set_headers(&mut self, headers: &Bound<'_, PyAny>) -> PyResult<()> {
        self.headers.clear();
        self.content_length = None;
        self.app_date = false;
        self.app_server = false;
        if !headers.is_instance_of::<pyo3::types::PyList>() && !headers.is_instance_of::<PyTuple>()
        {
            return Err(PyTypeError::new_err(format!(
                "response headers must be a list of (name, value) tuples, not {}",
                type_name(headers)
            )));
        }
        let mut dropped: Vec<String> = Vec::new();
        // A list (the usual case) is read by index, without an iterator object.
        match headers.cast::<pyo3::types::PyList>() {
            Ok(list) => {
                for item in list.iter() {
                    self.add_header(&item, &mut dropped)?;
                }
            }
            Err(_) => {
                for item in headers.try_iter()? {
                    self.add_header(&item?, &mut dropped)?;
                }
            }
        }
        if !dropped.is_empty() {
            warning!(
                "app set hop-by-hop header(s) {} (PEP 3333 forbids them); dropped",
                dropped.join(", ")
            );
        }
        Ok(())
    }

    /// One `(name, value)` of the app's headers: checked, then encoded (hop-by-hop ones are
    /// named in `dropped` instead). A tuple or name seen before is taken from `known`.
    fn add_header(&mut self, item: &Bound<'_, PyAny>, dropped: &mut Vec<String>) -> PyResult<()> {
        if let Some((i, kind, length)) = self.known.pair(item) {
            if self.note(kind, length)? {
                self.headers.extend_from_slice(self.known.line(i));
            }
            return Ok(());
        }
        let pair = item
            .cast::<PyTuple>()
            .ok()
            .filter(|t| t.len() == 2)
            .ok_or_else(|| {
                PyTypeError::new_err(format!(
                    "each response header must be a (name, value) tuple, not {item}"
                ))
            })?;
        let (name, value) = (pair.get_item(0)?, pair.get_item(1)?);
        let (Ok(name_s), Ok(value_s)) = (name.cast::<PyString>(), value.cast::<PyString>()) else {
            return Err(PyTypeError::new_err(format!(
                "header name and value must be str: {item}"
            )));
        };
        // The name's bytes: from `known` (by index, taken again below), or checked now.
        let known_name = self.known.name(name_s);
        let (fresh, kind) = match known_name {
            Some((_, kind)) => (None, Some(kind)),
            None => {
                let name_b = latin1(name_s)?
                    .filter(|n| is_token(n))
                    .ok_or_else(|| invalid(format!("invalid header name {name_s}")))?;
                let kind = NameKind::of(&name_b);
                if let Some(kind) = kind {
                    self.known.remember_name(name_s, &name_b, kind);
                }
                (Some(name_b), kind)
            }
        };
        let value_b = latin1(value_s)?
            .filter(|v| is_field_value(v))
            .ok_or_else(|| invalid(format!("invalid value for header {name_s}: {value}")))?;
        let Some(kind) = kind else {
            dropped.push(name_s.to_string());
            return Ok(());
        };
        let length = if kind == NameKind::ContentLength {
            Some(
                parse_decimal(ferrule_proto::http1::request::trim_ows(&value_b)).ok_or_else(
                    || invalid(format!("Content-Length {value} is not a decimal number")),
                )?,
            )
        } else {
            None
        };
        if self.note(kind, length)? {
            let name_b = match (&fresh, known_name) {
                (Some(b), _) => &**b,
                (None, Some((i, _))) => self.known.name_bytes(i),
                (None, None) => &[],
            };
            let start = self.headers.len();
            enc::push_header(&mut self.headers, name_b, &value_b);
            if let Some(line) = self.headers.get(start..) {
                self.known.remember_pair(pair, line, kind, length);
            }
        }
        Ok(())
    }

    /// Takes note of a header of this `kind` (`length`: the Content-Length it sets). False
    /// when it adds nothing: a Content-Length equal to an earlier one.
    fn note(&mut self, kind: NameKind, length: Option<u64>) -> PyResult<bool> {
        match kind {
            NameKind::ContentLength => {
                let Some(n) = length else {
                    return Ok(true);
                };
                match self.content_length {
                    Some(prev) if prev == n => return Ok(false), // an identical duplicate merges
                    Some(prev) => {
                        return Err(invalid(format!(
                            "two differing Content-Length headers: {prev} and {n}"
                        )))
                    }
                    None => self.content_length = Some(n),
                }
            }
            NameKind::Date => self.app_date = true,
            NameKind::Server => self.app_server = true,
            NameKind::Other => {}
        }
        Ok(true)
    }

    fn no_body(&self) -> bool {
        self.out.head_request || self.code < 200 || self.code == 204 || self.code == 304
    }

    /// Encodes the head, choosing the framing. `total`: the whole body's length when known.
    fn encode_head(&mut self, total: Option<u64>) -> Vec<u8> {
        if !crate::watchdog::claim_response() {
            // The watchdog answered this request (--timeout): nothing more goes out.
            self.fail();
        }
        if let Some(input) = self.body.take() {
            // The body is not all read: if it is to be left unread, the connection closes
            // after this response, and the response says so (`Connection: close`).
            let close = Python::attach(|py| {
                input
                    .try_borrow_mut(py)
                    .is_ok_and(|mut i| i.head_going_out(super::DRAIN_LIMIT))
            });
            if close {
                self.out.keep_alive = false;
            }
        }
        let no_body = self.no_body();
        let mut add_length = None;
        self.framing = if let Some(n) = self.content_length {
            if no_body {
                Framing::NoBody
            } else {
                Framing::Length(n)
            }
        } else if let Some(n) =
            total.filter(|_| self.code >= 200 && self.code != 204 && self.code != 304)
        {
            add_length = Some(n);
            if no_body {
                Framing::NoBody
            } else {
                Framing::Length(n)
            }
        } else if no_body {
            Framing::NoBody
        } else if self.out.fastcgi.is_some() {
            // The end of the STDOUT stream ends the body.
            Framing::Close
        } else if self.out.version == Version::Http11 {
            Framing::Chunked
        } else {
            self.out.keep_alive = false;
            Framing::Close
        };
        let status: &[u8] = if self.started {
            &self.status
        } else {
            b"500 Internal Server Error"
        };
        // Room for the lines added below and, when the whole body is small and known, for the
        // body too (a deferred response is then the head's buffer, extended).
        let body_room = match total {
            Some(n) if self.out.defer_last && n <= DEFER_MAX as u64 => n as usize,
            _ => 0,
        };
        let mut head = sio::take_buf(160 + status.len() + self.headers.len() + body_room);
        head.extend_from_slice(if self.out.fastcgi.is_some() {
            b"Status: "
        } else {
            b"HTTP/1.1 "
        });
        head.extend_from_slice(status);
        head.extend_from_slice(b"\r\n");
        if self.out.server_header && !self.app_server {
            head.extend_from_slice(b"Server: ferrule\r\n");
        }
        if !self.app_date {
            date::with(|d| enc::push_header(&mut head, b"Date", d));
        }
        head.extend_from_slice(&self.headers);
        if let Some(n) = add_length {
            enc::push_header(
                &mut head,
                b"Content-Length",
                itoa::Buffer::new().format(n).as_bytes(),
            );
        }
        if self.framing == Framing::Chunked {
            head.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        if self.out.fastcgi.is_some() {
            // The connection is the front server's business, not the client's.
        } else if !self.out.keep_alive {
            head.extend_from_slice(b"Connection: close\r\n");
        } else if self.out.version == Version::Http10 {
            head.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        head.extend_from_slice(b"\r\n");
        head
    }

    /// Writes `parts`: first without waiting, holding the GIL; the rest with the GIL released,
    /// or, in the inline worker, kept pending for the connection's task (`blocked`).
    pub(crate) fn send(&mut self, py: Python<'_>, parts: &[&[u8]]) -> io::Result<()> {
        self.send_from(py, parts, None)
    }

    /// Writes `parts`, some of which may lie in the app's block `owner` (kept, not copied, if
    /// the socket does not take them at once).
    fn send_from(
        &mut self,
        py: Python<'_>,
        parts: &[&[u8]],
        owner: Option<&Bound<'_, PyBytes>>,
    ) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connection already failed",
            ));
        }
        if self.defer(parts) {
            return Ok(());
        }
        if let Some(held) = self.deferred.take() {
            // What no longer fits after the deferred bytes goes out with them, in order.
            let all: Vec<&[u8]> = std::iter::once(&held[..])
                .chain(parts.iter().copied())
                .collect();
            return self.send_from(py, &all, owner);
        }
        if self.out.coalesce && !self.pending.is_empty() {
            // Bytes the socket has not taken yet go first.
            self.keep_unsent(parts, 0, owner);
            return self.flush(py);
        }
        let mut headers = Vec::new();
        let framed;
        let parts = match self.out.fastcgi {
            Some(id) => {
                framed = super::fcgi_out::records(id, parts, &mut headers);
                &framed[..]
            }
            None => parts,
        };
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let iov: Vec<IoSlice<'_>> = parts
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| IoSlice::new(p))
            .collect();
        let res = match sio::try_writev(self.out.fd, &iov) {
            Ok(n) if n == total => Ok(()),
            Ok(n) if self.out.coalesce => {
                self.keep_unsent(parts, n, owner);
                self.blocked = true;
                Ok(())
            }
            Ok(n) => {
                let (fd, timeout) = (self.out.fd, self.out.timeout);
                py.detach(|| sio::write_all(fd, parts, n, timeout))
            }
            Err(e) => Err(e),
        };
        if res.is_err() {
            self.fail();
        } else if let Some(id) = self.out.fastcgi {
            if super::fcgi_out::aborted(self.out.fd, id) {
                self.aborted = true;
                self.broken = true;
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the front server aborted the request (FCGI_ABORT_REQUEST)",
                ));
            }
        }
        res
    }

    /// Keeps what the socket did not take of `parts` (after `skip` bytes) for later: pieces of
    /// the app's block `owner` by reference, others copied.
    fn keep_unsent(
        &mut self,
        parts: &[&[u8]],
        mut skip: usize,
        owner: Option<&Bound<'_, PyBytes>>,
    ) {
        for p in parts {
            let done = skip.min(p.len());
            skip -= done;
            let Some(rest) = p.get(done..).filter(|r| !r.is_empty()) else {
                continue;
            };
            let within = owner.and_then(|o| {
                let b = o.as_bytes();
                b.as_ptr_range()
                    .contains(&rest.as_ptr())
                    .then(|| (o, rest.as_ptr() as usize - b.as_ptr() as usize))
            });
            match within {
                Some((o, start)) => self.pending.push_block(o, start, rest.len()),
                None => self.pending.push_own(rest),
            }
        }
    }

    /// Frames a block of `len` bytes: encodes the head if it was not sent, applies the
    /// Content-Length. Returns the head (empty if sent before) and how many bytes to send.
    fn frame(&mut self, len: usize, total: Option<u64>) -> (Vec<u8>, usize) {
        let head = if self.headers_sent() {
            Vec::new()
        } else {
            self.encode_head(total)
        };
        let n = match self.framing {
            Framing::NoBody => 0,
            Framing::Length(left) => {
                let n = (len as u64).min(left) as usize;
                if n < len && !self.overflow_logged {
                    self.overflow_logged = true;
                    error!("app sent more than its Content-Length; the excess was not sent");
                }
                self.framing = Framing::Length(left - n as u64);
                n
            }
            _ => len,
        };
        self.body_sent += n as u64;
        (head, n)
    }

    /// Sends one block of body now. `total`: the whole body's length, when this is all of it.
    pub fn send_body(
        &mut self,
        py: Python<'_>,
        data: &[u8],
        total: Option<u64>,
        owner: Option<&Bound<'_, PyBytes>>,
    ) -> io::Result<()> {
        if data.is_empty() && total.is_none() {
            return Ok(()); // headers wait for the first non-empty block
        }
        self.flush(py)?;
        let (head, n) = self.frame(data.len(), total);
        let data = &data[..n];
        if self.framing == Framing::Chunked && !data.is_empty() {
            let mut size = Vec::with_capacity(18);
            enc::push_chunk_size(&mut size, data.len());
            self.send_from(py, &[&head, &size, data, b"\r\n"], owner)
        } else if head.is_empty() && data.is_empty() {
            Ok(())
        } else if !head.is_empty()
            && self.deferred.is_none()
            && self.may_defer(head.len() + data.len())
        {
            // The whole response at once (a one-block body): deferred in the head's buffer.
            let mut head = head;
            head.extend_from_slice(data);
            self.deferred = Some(head);
            Ok(())
        } else {
            self.send_from(py, &[&head, data], owner)
        }
    }

    /// Queues one block of the app's iterable for a coalesced write; writes when enough is
    /// pending. Without coalescing, sends it at once.
    pub fn queue_body(&mut self, py: Python<'_>, block: &Bound<'_, PyBytes>) -> io::Result<()> {
        if !self.out.coalesce {
            return self.send_body(py, block.as_bytes(), None, Some(block));
        }
        let len = block.as_bytes().len();
        if len == 0 {
            return Ok(());
        }
        self.take_back(py)?;
        if self.pending.is_full() {
            // What is held reached the cap: it goes out before this block joins it. Checked
            // before queueing, not after: a full batch that turns out to be the response's
            // last goes out with the response's end in one write, not followed by a write
            // of its own for the last chunk.
            self.flush(py)?;
        }
        let (head, n) = self.frame(len, None);
        if !head.is_empty() {
            self.pending.push_own(&head);
            sio::give_back(head);
        }
        if self.framing == Framing::Chunked && n > 0 {
            self.pending
                .push_own_with(|own| enc::push_chunk_size(own, n));
            self.pending.push_block(block, 0, n);
            self.pending.push_static(b"\r\n");
        } else {
            self.pending.push_block(block, 0, n);
        }
        Ok(())
    }

    /// Before the app produces its next block: lends what is pending to the flusher thread,
    /// which sends it if the app takes longer than `flush::DEADLINE`.
    pub fn lend_pending(&mut self) {
        if self.pending.is_empty() || self.broken || self.blocked {
            return;
        }
        if let Some(f) = Flusher::get() {
            f.arm(self.out.fd, std::mem::take(&mut self.pending));
            self.pending_out = true;
        }
    }

    /// Before the iterable's `close()`: the deferred response goes to the flusher like a
    /// pending block, so that a slow `close()` does not hold it back.
    pub fn lend_deferred(&mut self) {
        if let Some(d) = self.deferred.take() {
            self.pending.push_own(&d);
            sio::give_back(d);
            self.lend_pending();
        }
    }

    /// After `close()`: what the flusher did not send is deferred again.
    pub fn take_back_deferred(&mut self, py: Python<'_>) {
        if self.take_back(py).is_err() || self.pending.is_empty() {
            return;
        }
        let mut held = Vec::new();
        self.pending.copy_into(&mut held);
        self.pending.clear();
        self.blocked = false;
        self.deferred = Some(held);
    }

    /// Takes back what the flusher holds: still pending, or written (then checks the result).
    pub fn take_back(&mut self, py: Python<'_>) -> io::Result<()> {
        if !self.pending_out {
            return Ok(());
        }
        self.pending_out = false;
        let Some(f) = Flusher::get() else {
            return Ok(());
        };
        let (mut pending, result) = match f.disarm_now() {
            Some(taken) => taken,
            None => py.detach(|| f.disarm()),
        };
        match result {
            None => {
                self.pending = pending;
                Ok(())
            }
            Some(Ok(true)) => {
                pending.clear();
                self.pending = pending;
                Ok(())
            }
            Some(Ok(false)) => {
                // The socket took part: the rest waits for the client.
                self.pending = pending;
                self.blocked = true;
                Ok(())
            }
            Some(Err(e)) => {
                self.fail();
                Err(e)
            }
        }
    }

    /// Writes everything pending (the GIL released while the socket is full).
    pub fn flush(&mut self, py: Python<'_>) -> io::Result<()> {
        self.take_back(py)?;
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.broken {
            self.pending.clear();
            self.blocked = false;
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connection already failed",
            ));
        }
        let mut pending = std::mem::take(&mut self.pending);
        if self.defer_with(pending.unwritten(), |out| pending.copy_into(out)) {
            pending.clear();
            self.pending = pending;
            return Ok(());
        }
        if let Some(held) = self.deferred.take() {
            // Deferred bytes go first, in order.
            pending.push_front_own(&held);
            sio::give_back(held);
        }
        let (fd, timeout) = (self.out.fd, self.out.timeout);
        let res = if self.out.coalesce {
            match pending.write_now(fd) {
                Ok(false) => {
                    self.pending = pending;
                    self.blocked = true;
                    return Ok(());
                }
                Ok(true) => {
                    self.blocked = false;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else {
            py.detach(|| pending.write(fd, timeout))
        };
        pending.clear();
        self.pending = pending;
        if res.is_err() {
            self.fail();
        }
        res
    }

    /// Writes what is pending, waiting (the GIL released) while the socket is full: for
    /// `write()`, which PEP 3333 has return only once its bytes are on their way.
    fn flush_waiting(&mut self, py: Python<'_>) -> io::Result<()> {
        let mut pending = std::mem::take(&mut self.pending);
        let (fd, timeout) = (self.out.fd, self.out.timeout);
        let res = py.detach(|| pending.write(fd, timeout));
        pending.clear();
        self.pending = pending;
        self.blocked = false;
        if res.is_err() {
            self.fail();
        }
        res
    }

    /// Sends `count` bytes of the open file `file` from `offset` with sendfile(2).
    pub fn send_file(
        &mut self,
        py: Python<'_>,
        file: RawFd,
        offset: u64,
        count: u64,
    ) -> io::Result<()> {
        if !self.headers_sent() {
            let head = self.encode_head(Some(count));
            self.send(py, &[&head])?;
        }
        let count = match self.framing {
            Framing::NoBody => return Ok(()),
            Framing::Length(left) => count.min(left),
            _ => count,
        };
        if count == 0 {
            return Ok(());
        }
        if self.out.fastcgi.is_some() {
            return self.send_file_copied(py, file, offset, count);
        }
        sio::set_notsent_lowat(self.out.fd, Some(sio::FILE_NOTSENT_LOWAT));
        if self.out.coalesce
            && self.framing != Framing::Chunked
            && (self.pending.is_empty() || self.blocked)
            && !self.pending_out
        {
            let r = self.send_file_or_defer(file, offset, count);
            if self.tail.is_none() {
                // Otherwise the connection's task uncaps it once the tail is sent.
                sio::set_notsent_lowat(self.out.fd, None);
            }
            return r;
        }
        let r = self.send_file_sync(py, file, offset, count);
        sio::set_notsent_lowat(self.out.fd, None);
        r
    }

    /// Sends the file with sendfile, waiting (the GIL released) while the socket is full.
    fn send_file_sync(
        &mut self,
        py: Python<'_>,
        file: RawFd,
        offset: u64,
        count: u64,
    ) -> io::Result<()> {
        if self.framing == Framing::Chunked {
            let mut size = Vec::with_capacity(18);
            enc::push_chunk_size(&mut size, count as usize);
            self.send(py, &[&size])?;
        }
        let (fd, timeout) = (self.out.fd, self.out.timeout);
        let sent = py
            .detach(|| sio::sendfile(fd, file, offset, count, timeout))
            .inspect_err(|_| {
                self.fail();
            })?;
        self.body_sent += sent;
        if let Framing::Length(left) = self.framing {
            self.framing = Framing::Length(left - sent.min(left));
        }
        if sent < count {
            self.fail();
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than its size",
            ));
        }
        if self.framing == Framing::Chunked {
            self.send(py, &[b"\r\n"])?;
        }
        Ok(())
    }

    /// The inline worker: sends what the socket takes now and leaves the rest as a tail for the
    /// connection's task, so that one slow reader does not hold up the worker.
    fn send_file_or_defer(&mut self, file: RawFd, offset: u64, count: u64) -> io::Result<()> {
        let fail = |this: &mut Self, e: io::Error| {
            this.fail();
            Err(e)
        };
        let attempt = if self.blocked {
            // The head waits for the client: the whole file follows it.
            Ok(sio::Sent::Some(0))
        } else {
            sio::try_sendfile(self.out.fd, file, offset, count)
        };
        let sent = match attempt {
            Ok(sio::Sent::Some(n)) => n,
            Ok(sio::Sent::FileEnded(_)) => {
                return fail(
                    self,
                    io::Error::new(io::ErrorKind::UnexpectedEof, "file shorter than its size"),
                )
            }
            Err(e) => return fail(self, e),
        };
        if sent < count {
            // SAFETY: F_DUPFD_CLOEXEC duplicates a descriptor the file wrapper holds open; the
            // copy is owned by the tail alone.
            let dup = unsafe { libc::fcntl(file, libc::F_DUPFD_CLOEXEC, 0) };
            if dup < 0 {
                return fail(self, io::Error::last_os_error());
            }
            self.tail = Some(sio::FileTail {
                // SAFETY: `dup` was just created and nothing else owns it.
                file: unsafe { std::os::fd::OwnedFd::from_raw_fd(dup) },
                offset: offset + sent,
                count: count - sent,
            });
        }
        self.body_sent += count;
        if let Framing::Length(left) = self.framing {
            self.framing = Framing::Length(left - count.min(left));
        }
        Ok(())
    }

    /// Sends a file's bytes through `send` (FastCGI records cannot carry sendfile's output).
    fn send_file_copied(
        &mut self,
        py: Python<'_>,
        file: RawFd,
        offset: u64,
        count: u64,
    ) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut done = 0u64;
        while done < count {
            let want = (count - done).min(buf.len() as u64) as usize;
            let at = offset + done;
            // SAFETY: pread into our own buffer of at least `want` bytes, from a descriptor the
            // file wrapper keeps open for the call.
            let n = py.detach(|| unsafe {
                libc::pread(file, buf.as_mut_ptr().cast(), want, at as libc::off_t)
            });
            if n <= 0 {
                self.fail();
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shorter than its size",
                ));
            }
            let n = n as usize;
            self.send(py, &[&buf[..n]])?;
            self.body_sent += n as u64;
            done += n as u64;
        }
        Ok(())
    }

    /// Ends the response: sends the head if no body was, the last chunk, and checks the length.
    pub fn finish(&mut self, py: Python<'_>) -> io::Result<()> {
        self.finished = true;
        if !self.headers_sent() {
            return self.send_body(py, b"", Some(0), None);
        }
        match self.framing {
            Framing::Chunked if self.out.coalesce => {
                self.take_back(py)?;
                self.pending.push_static(enc::LAST_CHUNK);
                self.flush(py)
            }
            Framing::Chunked => {
                self.flush(py)?;
                self.send(py, &[enc::LAST_CHUNK])
            }
            Framing::Length(left) if left > 0 => {
                self.flush(py)?;
                error!(
                    "app sent {} bytes, {left} fewer than its Content-Length; closing the connection",
                    self.body_sent
                );
                self.out.keep_alive = false;
                Ok(())
            }
            _ => self.flush(py),
        }
    }

    /// The connection failed, or the client read nothing within the timeout: what is pending
    /// is dropped and nothing more is sent.
    pub fn fail(&mut self) {
        self.pending.clear();
        self.blocked = false;
        self.tail = None;
        self.broken = true;
        self.out.keep_alive = false;
    }

    pub fn mark_finished(&mut self) {
        self.finished = true;
    }
}

pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

#[pymethods]
impl StartResponse {
    /// `start_response(status, response_headers, exc_info=None)` (PEP 3333).
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        {
            let mut this = slf.borrow_mut();
            if let Some(info) = exc_info {
                if this.headers_sent() {
                    // PEP 3333: too late to change the response; re-raise the app's error.
                    let value = info.get_item(1)?;
                    return Err(PyErr::from_value(value));
                }
            } else if this.started() {
                return Err(PyAssertionError::new_err(
                    "start_response() called a second time without exc_info (PEP 3333)",
                ));
            }
            if this.finished {
                return Err(PyAssertionError::new_err(
                    "start_response() called after the response ended",
                ));
            }
            this.set_status(status)?;
            if let Err(e) = this.set_headers(headers) {
                this.started = false;
                return Err(e);
            }
            if let Some(w) = &this.write_fn {
                return Ok(w.bind(slf.py()).clone());
            }
        }
        let w = slf.getattr(pyo3::intern!(slf.py(), "write"))?;
        slf.borrow_mut().write_fn = Some(w.clone().unbind());
        Ok(w)
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        if let Some(w) = &self.write_fn {
            visit.call(w)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.write_fn = None;
    }

    /// The `write(data)` callable start_response returns: sends `data` at once.
    fn write(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!("write() takes bytes, not {}", type_name(data)))
        })?;
        if !self.started() {
            return Err(PyAssertionError::new_err(
                "write() called before start_response()",
            ));
        }
        if self.finished {
            return Err(PyAssertionError::new_err(
                "write() called after the response ended",
            ));
        }
        // PEP 3333: what write() was given is on its way before it returns, even when it
        // completes the response: the app may go on working for long.
        let defer = std::mem::replace(&mut self.out.defer_last, false);
        let mut sent = self.send_body(py, bytes.as_bytes(), None, Some(bytes));
        if sent.is_ok() && self.blocked {
            sent = self.flush_waiting(py);
        }
        self.out.defer_last = defer;
        sent.map_err(|e| {
            pyo3::exceptions::PyOSError::new_err(format!("client connection lost: {e}"))
        })
    }
}
