//! `start_response` (PEP 3333): the status and headers the app sets, checked and encoded
//! once, and the `write()` callable it returns. What is sent goes through the response's
//! [`Sink`] (see `writer.rs`).
use std::borrow::Cow;
use std::time::Instant;

use ferrule_proto::ascii::{parse_decimal, trim_ows};
use ferrule_proto::http1::{is_field_value, is_token, response as enc};
use pyo3::exceptions::{PyAssertionError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use super::input::Input;
use super::known_headers::{KnownHeaders, NameKind};
use super::sink::{Block, Sink};
use crate::log::warning;

/// Where the response's body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyState {
    /// The head is not sent yet.
    Unsent,
    /// No body may be sent (HEAD, 1xx, 204, 304): body bytes are discarded.
    None,
    /// A known length, with this many bytes left.
    Length(u64),
    /// The length is not known: the body goes until the app's iterable ends.
    Open,
}

/// The `start_response` callable handed to the app; also the response's state.
#[pyclass(module = "ferrule._native", name = "StartResponse")]
pub struct StartResponse {
    /// `200 OK`, validated, once `started`.
    pub(super) status: Vec<u8>,
    /// start_response was called (and accepted).
    pub(super) started: bool,
    pub code: u16,
    /// Encoded `Name: value\r\n` lines the app set.
    pub(super) headers: Vec<u8>,
    pub(super) content_length: Option<u64>,
    pub(super) app_date: bool,
    pub(super) app_server: bool,
    /// The request is a HEAD: the response has no body.
    pub(super) head_request: bool,
    pub(super) body: BodyState,
    /// Body bytes sent.
    pub body_sent: u64,
    pub(super) overflow_logged: bool,
    /// The connection is to close after this response (an app error, a body left unread).
    pub close: bool,
    /// The request is over: `write()` refuses.
    pub(super) finished: bool,
    /// When the app was called for this request (the transport is told with the head).
    pub(super) began: Instant,
    /// Header tuples and names of earlier responses (kept when the response is recycled).
    known: KnownHeaders,
    /// The request's `wsgi.input` while its body is not all read (None for a request
    /// without one): asked, when the head goes out, whether the connection closes after the
    /// response (see [`Input::head_going_out`]).
    pub input: Option<Py<Input>>,
    /// The bound `write` method start_response returns, made once and kept while the
    /// object is recycled (a bound method built and freed per request cost ~450
    /// instructions). It refers back to this object: the cycle is broken by
    /// [`StartResponse::release_write`] when the object is let go, and visible to Python's
    /// collector (`__traverse__`) on any other path.
    write_fn: Option<Py<PyAny>>,
    /// Where the response goes; taken back by the transport when the request is over.
    pub(super) sink: Option<Box<dyn Sink>>,
    /// `--request-id-header`: the header's name and the request's id, echoed in the response.
    pub(super) echo: Option<(String, Vec<u8>)>,
}

/// Whether a response header's name is `Connection`.
fn asks_close(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"connection")
}

/// Whether a `Connection` value lists the `close` option.
fn has_close_token(value: &[u8]) -> bool {
    value
        .split(|&c| c == b',')
        .any(|t| trim_ows(t).eq_ignore_ascii_case(b"close"))
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
    pub fn new(head_request: bool, sink: Box<dyn Sink>) -> Self {
        Self {
            status: Vec::new(),
            started: false,
            code: 0,
            headers: Vec::with_capacity(128),
            content_length: None,
            app_date: false,
            app_server: false,
            head_request,
            body: BodyState::Unsent,
            body_sent: 0,
            overflow_logged: false,
            close: false,
            finished: false,
            began: Instant::now(),
            known: KnownHeaders::default(),
            input: None,
            write_fn: None,
            sink: Some(sink),
            echo: None,
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

    /// Whether nothing of its response is still held, so that it may serve another request
    /// (see [`StartResponse::reset`]): the transport took its sink back.
    #[must_use]
    pub fn recyclable(&self) -> bool {
        self.sink.is_none() && self.input.is_none()
    }

    /// The state of a new response, keeping this one's buffers and known headers. Every
    /// field is named, so that a new one cannot be left out.
    pub fn reset(&mut self, head_request: bool, sink: Box<dyn Sink>) {
        let Self {
            status,
            started,
            code,
            headers,
            content_length,
            app_date,
            app_server,
            head_request: this_head_request,
            body,
            body_sent,
            overflow_logged,
            close,
            finished,
            began,
            known: _,
            input,
            write_fn: _,
            sink: this_sink,
            echo,
        } = self;
        *echo = None;
        status.clear();
        *started = false;
        *code = 0;
        headers.clear();
        *content_length = None;
        *app_date = false;
        *app_server = false;
        *this_head_request = head_request;
        *body = BodyState::Unsent;
        *body_sent = 0;
        *overflow_logged = false;
        *close = false;
        *finished = false;
        *began = Instant::now();
        *input = None;
        *this_sink = Some(sink);
    }

    #[must_use]
    pub fn started(&self) -> bool {
        self.started
    }

    #[must_use]
    pub fn headers_sent(&self) -> bool {
        self.body != BodyState::Unsent
    }

    /// The server's own short answer (404 outside `--root-path`, 500, 413...): its status and
    /// a plain-text body naming it, which the caller sends.
    pub(super) fn set_simple(&mut self, code: u16) -> Vec<u8> {
        let reason = enc::reason(code);
        self.code = code;
        self.status.clear();
        self.status
            .extend_from_slice(itoa::Buffer::new().format(code).as_bytes());
        self.status.push(b' ');
        self.status.extend_from_slice(reason.as_bytes());
        self.headers.clear();
        enc::push_header(
            &mut self.headers,
            b"Content-Type",
            b"text/plain; charset=utf-8",
        );
        let body = format!("{reason}\n").into_bytes();
        enc::push_header(
            &mut self.headers,
            b"Content-Length",
            itoa::Buffer::new().format(body.len()).as_bytes(),
        );
        self.content_length = Some(body.len() as u64);
        self.app_date = false;
        self.app_server = false;
        self.started = true;
        body
    }

    /// One more header field of the server's own on a [`set_simple`](Self::set_simple) answer.
    pub(super) fn add_own_header(&mut self, name: &[u8], value: &[u8]) {
        enc::push_header(&mut self.headers, name, value);
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
        self.push_echo();
        Ok(())
    }

    /// Adds the request id's header, unless the app set it.
    fn push_echo(&mut self) {
        if let Some((name, id)) = &self.echo {
            if crate::access::response_header(&self.headers, name.as_bytes()).is_none() {
                enc::push_header(&mut self.headers, name.as_bytes(), id);
            }
        }
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
            // `Connection: close` is the app asking for the connection to close after this
            // response: honoured on a raw HTTP/1 connection (the head then says so itself),
            // meaningless over FastCGI and HTTP/2. Any other hop-by-hop field is refused.
            if fresh.as_deref().is_some_and(asks_close) && has_close_token(&value_b) {
                if self.sink.as_ref().is_some_and(|s| s.raw_http()) {
                    self.close = true;
                }
                return Ok(());
            }
            dropped.push(name_s.to_string());
            return Ok(());
        };
        let length = if kind == NameKind::ContentLength {
            Some(parse_decimal(trim_ows(&value_b)).ok_or_else(|| {
                invalid(format!("Content-Length {value} is not a decimal number"))
            })?)
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
}

/// `start_response` re-entered while it is already running (from a `__str__`
/// of a header it is reading, say): an error for the app, never a panic.
fn busy(_: pyo3::pycell::PyBorrowMutError) -> PyErr {
    PyRuntimeError::new_err("start_response() re-entered while it was running")
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
            let mut this = slf.try_borrow_mut().map_err(busy)?;
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
        slf.try_borrow_mut().map_err(busy)?.write_fn = Some(w.clone().unbind());
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
        let sent = self
            .send_block(py, Block::of(bytes), None)
            .and_then(|()| self.flush(py, true));
        sent.map_err(|e| {
            pyo3::exceptions::PyOSError::new_err(format!("client connection lost: {e}"))
        })
    }
}
