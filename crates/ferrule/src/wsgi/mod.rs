//! The WSGI bridge: the only place that touches Python objects. `serve` runs one request
//! through the app and writes its response.
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ferrule_proto::cgi::{percent_decode, split_target};
use ferrule_proto::http1::{response as enc, RequestHead};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::log::{self, error};
use crate::net::{date, io as sio, ConnInfo};
use crate::watchdog;

pub mod app;
pub mod config_file;
pub mod environ;
pub mod fcgi_out;
pub mod file_wrapper;
pub mod flush;
pub mod forwarded;
pub mod gateway;
pub mod hooks;
pub mod input;
mod known_headers;
pub mod response;

pub use app::{
    build_app, format_exception, import_app, load, prepare, register_stack_dump, source_dir, App,
};
use file_wrapper::FileWrapper;
use input::{BodyError, BodyReader, Input};
use response::{Output, StartResponse};

/// Most unread body bytes drained after a response to keep the connection; beyond, it closes.
pub(crate) const DRAIN_LIMIT: u64 = 1 << 20;

/// What is left of the connection after a request.
pub struct Outcome {
    pub keep_alive: bool,
    pub rbuf: BytesMut,
    /// The end of a file response for the connection's task to send (inline worker).
    pub tail: Option<sio::FileTail>,
    /// The response's last bytes, for the connection's task to write after the requests
    /// already waiting (inline worker; see `StartResponse::deferred`).
    pub deferred: Option<Vec<u8>>,
}

impl Outcome {
    /// The watchdog answered the request (504) and the worker is leaving.
    fn timed_out() -> Self {
        Self {
            keep_alive: false,
            rbuf: BytesMut::new(),
            tail: None,
            deferred: None,
        }
    }
}

/// Where the app's path lives under `--root-path`: the PATH_INFO, or None for a 404.
fn path_info<'a>(root: &str, path: &'a [u8]) -> Option<&'a [u8]> {
    // `OPTIONS *` asks about the server as a whole: the app sees PATH_INFO "*" (as in gunicorn).
    if path == b"*" {
        return Some(path);
    }
    let rest = path.strip_prefix(root.as_bytes())?;
    (rest.is_empty() || rest.starts_with(b"/")).then_some(rest)
}

/// A request as a front protocol delivered it.
pub enum Request {
    Http(RequestHead),
    /// uwsgi, SCGI or FastCGI: CGI variables from a front server.
    Cgi(gateway::CgiRequest),
}

impl Request {
    /// Builds the environ; Ok(None) when the path lies outside `--root-path` (a 404).
    fn environ<'py>(
        &self,
        py: Python<'py>,
        app: &App,
        conn: &ConnInfo,
        input: Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyDict>>> {
        match self {
            Self::Http(head) => {
                let target = split_target(head.target());
                let decoded = percent_decode(target.path);
                let Some(path) = path_info(&app.root_path, &decoded) else {
                    return Ok(None);
                };
                let shared = input.is(app.empty_input.bind(py));
                let env =
                    environ::build(py, &app.environ, head, target, conn, path, input, shared)?;
                if forwarded::any_in_head(head) {
                    forwarded::apply(py, &env, &app.forwarded_allow, conn.peer.map(|p| p.ip()))?;
                }
                Ok(Some(env))
            }
            Self::Cgi(req) => {
                let full = req.path();
                let Some(path) = path_info(&app.root_path, &full) else {
                    return Ok(None);
                };
                let env = gateway::build(py, &app.environ, req, conn, path, input)?;
                forwarded::apply(py, &env, &app.forwarded_allow, conn.peer.map(|p| p.ip()))?;
                Ok(Some(env))
            }
        }
    }
}

/// What [`serve`] (or [`resume`]) leaves to the connection's task.
pub enum Served {
    /// The request is over.
    Done(Outcome),
    /// The inline worker's response waits for the client to read: its socket is full. The
    /// task waits until the socket is writable (or the client timeout passes), then calls
    /// [`resume`]; meanwhile the worker serves other connections.
    Stalled(Box<Exchange>),
}

/// What a request keeps from its start to its end.
struct Req {
    conn: ConnInfo,
    request: Request,
    /// For the access log.
    started: Option<Instant>,
    /// The body reader of a request without a body (the shared empty input holds none).
    own_reader: Option<BodyReader>,
    fastcgi: Option<gateway::FastCgi>,
}

/// A request whose response waits for the client (see [`Served::Stalled`]).
pub struct Exchange {
    req: Req,
    input: Py<Input>,
    response: Py<StartResponse>,
    /// The app's iterable, when it stopped before its end.
    iterating: Option<Iterating>,
}

/// An app's iterable, between two of its blocks.
struct Iterating {
    iter: Py<pyo3::types::PyIterator>,
    /// What the app returned, for its `close()`.
    result: Unclosed,
    /// For the `post_request` hook.
    env: Py<pyo3::types::PyDict>,
}

/// What the app returned, not yet closed. If it is dropped so (the worker stops before the
/// client read its response), its `close()` is called then: PEP 3333 has it called however
/// the request ends.
struct Unclosed(Option<Py<PyAny>>);

impl Drop for Unclosed {
    fn drop(&mut self) {
        let Some(result) = self.0.take() else { return };
        Python::attach(|py| {
            log::debug!("closing the response of a client that was still reading it");
            if let Ok(close) = result.bind(py).getattr(pyo3::intern!(py, "close")) {
                if let Err(e) = close.call0() {
                    error!(
                        "error closing the app's response:\n{}",
                        format_exception(py, &e)
                    );
                }
            }
        });
    }
}

/// The Python side of a request, done.
struct Ended {
    reader: Option<BodyReader>,
    keep_alive: bool,
    code: u16,
    sent: u64,
    broken: bool,
    tail: Option<sio::FileTail>,
    deferred: Option<Vec<u8>>,
}

impl Ended {
    /// Nothing could be sent (no `wsgi.input` or `start_response` could be made).
    fn failed(reader: Option<BodyReader>) -> Self {
        Self {
            reader,
            keep_alive: false,
            code: 500,
            sent: 0,
            broken: true,
            tail: None,
            deferred: None,
        }
    }
}

/// Where a request stands after a turn in Python.
enum Step {
    Ended(Ended),
    Stalled(Py<Input>, Py<StartResponse>, Option<Iterating>),
}

/// Serves one request: attaches to Python, runs the app, writes the response.
pub fn serve(app: &App, conn: &ConnInfo, request: Request, rbuf: BytesMut) -> Served {
    // Only the access log needs the time a request took.
    let started = log::access_enabled().then(Instant::now);
    let (body, expect, version, keep_alive, head_request, fastcgi) = match &request {
        Request::Http(h) => (
            h.body,
            h.expect_continue,
            h.version,
            h.keep_alive,
            h.is_head(),
            None,
        ),
        Request::Cgi(c) => (
            if c.content_length == 0 {
                ferrule_proto::http1::BodyKind::Empty
            } else {
                ferrule_proto::http1::BodyKind::Length(c.content_length)
            },
            false,
            // One request per connection, its end marked by the close (or a Content-Length);
            // a FastCGI connection the front server keeps stays open.
            ferrule_proto::http1::Version::Http10,
            c.fastcgi.is_some_and(|f| f.keep_conn),
            c.is_head(),
            c.fastcgi,
        ),
    };
    let reader = match fastcgi {
        Some(f) => BodyReader::fastcgi(
            conn.fd,
            rbuf,
            f.request_id,
            app.limits.request_body,
            app.client_timeout,
        ),
        None => BodyReader::new(conn.fd, rbuf, body, expect, &app.limits, app.client_timeout),
    };
    let out = Output {
        fd: conn.fd,
        version,
        keep_alive,
        head_request,
        server_header: app.server_header,
        timeout: app.client_timeout,
        coalesce: app.inline && fastcgi.is_none(),
        fastcgi: fastcgi.map(|f| f.request_id),
        defer_last: app.inline && fastcgi.is_none(),
    };
    watchdog::request_begin(conn.fd, matches!(request, Request::Http(_)));
    // A request without a body gets the shared empty input; its reader (the connection's
    // buffer) stays here. (A FastCGI reader is never done before it read the end of STDIN.)
    let (own_reader, reader) = if reader.is_done() {
        (Some(reader), None)
    } else {
        (None, Some(reader))
    };
    let has_body = reader.is_some();
    let step = Python::attach(|py| {
        let input = match reader {
            None => app.empty_input.clone_ref(py),
            Some(reader) => match Py::new(py, Input::new(reader)) {
                Ok(i) => i,
                Err(e) => {
                    error!("cannot create wsgi.input: {e}");
                    return Step::Ended(Ended::failed(None));
                }
            },
        };
        let response = match app.response(py, out) {
            Ok(r) => r,
            Err(e) => {
                error!("cannot create start_response: {e}");
                return Step::Ended(Ended::failed(take_reader(py, &input)));
            }
        };
        if has_body {
            if let Ok(mut r) = response.try_borrow_mut(py) {
                r.body = Some(input.clone_ref(py));
            }
        }
        let iterating = run_app(py, app, conn, &request, &input, &response);
        after_python(py, app, input, response, iterating)
    });
    match step {
        Step::Ended(ended) => {
            let done = Done {
                started,
                own_reader,
                fastcgi,
                ended,
            };
            Served::Done(finish(app, conn, &request, done))
        }
        Step::Stalled(input, response, iterating) => {
            let req = Req {
                conn: *conn,
                request,
                started,
                own_reader,
                fastcgi,
            };
            stall(req, input, response, iterating)
        }
    }
}

/// Goes on with a request whose response waited for the client: `writable` says whether the
/// client read within the timeout (else the response is cut short and the connection closes).
pub fn resume(app: &App, exchange: Box<Exchange>, writable: bool) -> Served {
    let Exchange {
        req,
        input,
        response,
        iterating,
    } = *exchange;
    watchdog::request_resume(req.conn.fd, matches!(req.request, Request::Http(_)));
    let step = Python::attach(|py| {
        {
            let mut r = response.borrow_mut(py);
            if !writable {
                log::debug!(
                    "{} read nothing of the response within the client timeout; closing",
                    req.conn.peer_label()
                );
                r.fail();
            } else if let Err(e) = r.flush(py) {
                log::debug!("client connection lost: {e}");
            }
            if r.blocked {
                drop(r);
                return Step::Stalled(input, response, iterating);
            }
        }
        if let Some(it) = iterating {
            let broken = response.borrow(py).broken;
            let flow = if broken {
                Ok(None)
            } else {
                iterate(py, &response, it.iter.into_bound(py))
            };
            match flow {
                Ok(Some(iter)) => {
                    let it = Iterating {
                        iter: iter.unbind(),
                        result: it.result,
                        env: it.env,
                    };
                    return Step::Stalled(input, response, Some(it));
                }
                Ok(None) => {}
                Err(e) => app_failed(py, &input, &response, &e, "iterating the app's response"),
            }
            let mut unclosed = it.result;
            if let Some(result) = unclosed.0.take() {
                close_result(py, &response, result.bind(py));
            }
            post_hook(py, app, it.env.bind(py), &response);
        }
        after_python(py, app, input, response, None)
    });
    match step {
        Step::Ended(ended) => {
            let Req {
                conn,
                request,
                started,
                own_reader,
                fastcgi,
            } = req;
            let done = Done {
                started,
                own_reader,
                fastcgi,
                ended,
            };
            Served::Done(finish(app, &conn, &request, done))
        }
        Step::Stalled(input, response, iterating) => stall(req, input, response, iterating),
    }
}

/// After a turn in Python: the request is over unless its response waits for the client.
#[inline]
fn after_python(
    py: Python<'_>,
    app: &App,
    input: Py<Input>,
    response: Py<StartResponse>,
    iterating: Option<Iterating>,
) -> Step {
    if iterating.is_some() || response.borrow(py).blocked {
        return Step::Stalled(input, response, iterating);
    }
    let reader = take_reader(py, &input);
    let mut r = response.borrow_mut(py);
    // After ABORT_REQUEST the request still ends properly (END_REQUEST).
    let ended = Ended {
        reader,
        keep_alive: r.out.keep_alive,
        code: r.code,
        sent: r.body_sent,
        broken: r.broken && !r.aborted,
        tail: r.tail.take(),
        deferred: r.deferred.take(),
    };
    drop(r);
    app.recycle(py, response);
    Step::Ended(ended)
}

/// A request whose response waits for the client goes to the connection's task.
fn stall(
    req: Req,
    input: Py<Input>,
    response: Py<StartResponse>,
    iterating: Option<Iterating>,
) -> Served {
    if watchdog::request_end() {
        return Served::Done(Outcome::timed_out());
    }
    Served::Stalled(Box::new(Exchange {
        req,
        input,
        response,
        iterating,
    }))
}

/// What the end of a request needs besides the request itself.
struct Done {
    started: Option<Instant>,
    own_reader: Option<BodyReader>,
    fastcgi: Option<gateway::FastCgi>,
    ended: Ended,
}

/// The end of a request, once Python is done with it: the unread body is drained (or the
/// connection is to close), FastCGI's END_REQUEST, the access log.
#[inline]
fn finish(app: &App, conn: &ConnInfo, request: &Request, done: Done) -> Outcome {
    if watchdog::request_end() {
        // The watchdog answered this request (504) and the worker is leaving.
        return Outcome::timed_out();
    }
    let Done {
        started,
        own_reader,
        fastcgi,
        ended,
    } = done;
    let Ended {
        reader,
        mut keep_alive,
        code,
        sent,
        broken,
        tail,
        mut deferred,
    } = ended;
    let mut reader = own_reader.or(reader);
    // The client may wait for the response before it sends the rest of the body (or gives up
    // on it): the response goes out before the drain.
    let body_left = !reader.as_ref().is_some_and(BodyReader::is_done);
    if let Some(d) = deferred.take_if(|_| body_left) {
        // (Deferred: the inline worker, which does not wait for the socket here.)
        match sio::try_write_parts(conn.fd, &[&d]) {
            Ok(n) if n == d.len() => {}
            Ok(n) => {
                // The client does not read: the rest goes from the connection's task, and the
                // connection closes after it instead of draining the body.
                keep_alive = false;
                deferred = d.get(n..).map(<[u8]>::to_vec);
            }
            Err(_) => keep_alive = false,
        }
        sio::give_back(d);
    }
    let rbuf = match reader.as_mut() {
        Some(r) => {
            if keep_alive && !r.is_done() {
                keep_alive = r.drain(DRAIN_LIMIT);
            }
            std::mem::take(&mut r.rbuf)
        }
        None => {
            keep_alive = false;
            BytesMut::new()
        }
    };
    if let Some(f) = fastcgi {
        // The end of STDOUT and END_REQUEST; after a failure mid-response the connection just
        // closes, so that the front server sees the response cut short.
        if broken || !end_fastcgi(conn.fd, f.request_id, app.client_timeout) {
            keep_alive = false;
        }
    }
    if let Some(started) = started {
        access_log(conn, request, code, sent, started);
    }
    Outcome {
        keep_alive,
        rbuf,
        tail,
        deferred,
    }
}

/// The body reader back from `wsgi.input` (None from the shared empty input, which has none;
/// its methods never release the GIL, so no other thread can be inside it).
fn take_reader(py: Python<'_>, input: &Py<Input>) -> Option<BodyReader> {
    input
        .try_borrow_mut(py)
        .ok()
        .and_then(|mut i| i.reader.take())
}

/// Ends a FastCGI response: an empty STDOUT record and END_REQUEST. False if it failed.
fn end_fastcgi(fd: std::os::fd::RawFd, request_id: u16, timeout: Duration) -> bool {
    use ferrule_proto::fastcgi as fcgi;
    let mut out = Vec::with_capacity(32);
    fcgi::encode_stream_end(fcgi::RecordType::Stdout, request_id, &mut out);
    fcgi::encode_end_request(
        request_id,
        0,
        fcgi::ProtocolStatus::RequestComplete,
        &mut out,
    );
    sio::write_all(fd, &[&out], 0, timeout).is_ok()
}

/// Runs the app on the request; returns its iterable when the response stopped midway to
/// wait for the client (see [`Served::Stalled`]).
fn run_app(
    py: Python<'_>,
    app: &App,
    conn: &ConnInfo,
    request: &Request,
    input: &Py<Input>,
    response: &Py<StartResponse>,
) -> Option<Iterating> {
    let env = match request.environ(py, app, conn, input.bind(py).clone().into_any()) {
        Ok(Some(e)) => e,
        Ok(None) => {
            respond_simple(py, response, 404);
            return None;
        }
        Err(e) => {
            error!("cannot build the environ: {}", format_exception(py, &e));
            respond_simple(py, response, 500);
            return None;
        }
    };
    if let Some(pre) = app.hooks.as_ref().and_then(|h| h.pre.as_ref()) {
        if let Err(e) = pre.bind(py).call1((&env,)) {
            error!("pre_request hook: {}", format_exception(py, &e));
        }
    }
    let iterating = call_app(py, app, &env, input, response);
    if iterating.is_none() {
        post_hook(py, app, &env, response);
    }
    iterating
}

/// The `post_request` hook, if the config file has one.
fn post_hook(
    py: Python<'_>,
    app: &App,
    env: &Bound<'_, pyo3::types::PyDict>,
    response: &Py<StartResponse>,
) {
    if let Some(post) = app.hooks.as_ref().and_then(|h| h.post.as_ref()) {
        let code = response.borrow(py).code;
        if let Err(e) = post.bind(py).call1((env, code)) {
            error!("post_request hook: {}", format_exception(py, &e));
        }
    }
}

/// Calls the app with `env`, sends what it returns, and closes it; or returns the iterable
/// when its response stopped midway to wait for the client.
fn call_app(
    py: Python<'_>,
    app: &App,
    env: &Bound<'_, pyo3::types::PyDict>,
    input: &Py<Input>,
    response: &Py<StartResponse>,
) -> Option<Iterating> {
    let called = {
        let _in_app = watchdog::enter();
        app.callable.bind(py).call1((env, response.bind(py)))
    };
    let result = match called {
        Ok(r) => r,
        Err(e) => {
            app_failed(py, input, response, &e, "calling the app");
            return None;
        }
    };
    match send_result(py, response, &result) {
        Ok(Some(iter)) => {
            return Some(Iterating {
                iter: iter.unbind(),
                result: Unclosed(Some(result.unbind())),
                env: env.clone().unbind(),
            })
        }
        Ok(None) => {}
        Err(e) => app_failed(py, input, response, &e, "iterating the app's response"),
    }
    close_result(py, response, &result);
    None
}

/// PEP 3333: the iterable's `close()` is called whatever happened.
fn close_result(py: Python<'_>, response: &Py<StartResponse>, result: &Bound<'_, PyAny>) {
    // A plain list or tuple has none (and asking would build an AttributeError for nothing).
    let plain = result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>();
    if plain {
        response.borrow_mut(py).mark_finished();
        return;
    }
    if let Ok(close) = result.getattr(pyo3::intern!(py, "close")) {
        response.borrow_mut(py).lend_deferred();
        let closed = {
            let _in_app = watchdog::enter();
            close.call0()
        };
        response.borrow_mut(py).take_back_deferred(py);
        if let Err(e) = closed {
            error!(
                "error closing the app's response:\n{}",
                format_exception(py, &e)
            );
            response.borrow_mut(py).out.keep_alive = false;
        }
    }
    response.borrow_mut(py).mark_finished();
}

fn lost(e: std::io::Error) {
    log::debug!("client connection lost: {e}");
}

/// Sends the app's iterable: one-element lists get a Content-Length, file wrappers sendfile.
/// Returns the iterator when the client's socket filled before its end (inline worker).
fn send_result<'py>(
    py: Python<'py>,
    response: &Py<StartResponse>,
    result: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, pyo3::types::PyIterator>>> {
    // A list or tuple of one bytes object: its length is the Content-Length.
    let single = if let Ok(l) = result.cast::<PyList>() {
        (l.len() == 1).then(|| l.get_item(0)).transpose()?
    } else if let Ok(t) = result.cast::<PyTuple>() {
        (t.len() == 1).then(|| t.get_item(0)).transpose()?
    } else {
        None
    };
    if let Some(item) = single {
        let bytes = chunk_bytes(&item)?;
        let mut r = response.borrow_mut(py);
        check_started(&r)?;
        let data = bytes.as_bytes();
        if r.send_body(py, data, Some(data.len() as u64), Some(&bytes))
            .is_ok()
        {
            r.finish(py).unwrap_or_else(lost);
        }
        return Ok(None);
    }
    if let Ok(fw) = result.cast::<FileWrapper>() {
        if let Some((fd, offset, count)) = fw.borrow().sendfile_plan(py) {
            let mut r = response.borrow_mut(py);
            check_started(&r)?;
            if r.send_file(py, fd, offset, count).is_ok() {
                r.finish(py).unwrap_or_else(lost);
            }
            return Ok(None);
        }
    }
    iterate(py, response, result.try_iter()?)
}

/// Sends the iterator's blocks to its end; returns it if the client's socket filled first
/// (inline worker: nothing more is asked of the app until the client reads).
fn iterate<'py>(
    py: Python<'py>,
    response: &Py<StartResponse>,
    mut iter: Bound<'py, pyo3::types::PyIterator>,
) -> PyResult<Option<Bound<'py, pyo3::types::PyIterator>>> {
    loop {
        {
            let mut r = response.borrow_mut(py);
            if r.blocked {
                return Ok(Some(iter));
            }
            // Pending blocks go to the flusher while the app produces the next (see
            // flush.rs); the borrow ends before the app runs, as it may call write().
            r.lend_pending();
        }
        let next = {
            let _in_app = watchdog::enter();
            iter.next()
        };
        let mut r = response.borrow_mut(py);
        if let Err(e) = r.take_back(py) {
            lost(e);
            return Ok(None);
        }
        let Some(item) = next else { break };
        let bytes = chunk_bytes(&item?)?;
        check_started(&r)?;
        if let Err(e) = r.queue_body(py, &bytes) {
            lost(e);
            return Ok(None);
        }
    }
    let mut r = response.borrow_mut(py);
    check_started(&r)?;
    r.finish(py).unwrap_or_else(lost);
    Ok(None)
}

fn chunk_bytes<'py>(item: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    item.cast::<PyBytes>().cloned().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "the app's response yielded {}, but WSGI bodies are bytes (PEP 3333)",
            response::type_name(item)
        ))
    })
}

fn check_started(r: &StartResponse) -> PyResult<()> {
    if r.started() {
        Ok(())
    } else {
        Err(pyo3::exceptions::PyAssertionError::new_err(
            "the app returned body data without calling start_response() (PEP 3333)",
        ))
    }
}

/// The app raised: log it once, then answer 500 if nothing was sent, else close.
fn app_failed(
    py: Python<'_>,
    input: &Py<Input>,
    response: &Py<StartResponse>,
    err: &PyErr,
    when: &str,
) {
    let body_error = input
        .try_borrow(py)
        .ok()
        .and_then(|i| i.reader.as_ref().and_then(|r| r.error));
    let mut r = response.borrow_mut(py);
    r.out.keep_alive = false;
    if r.broken {
        // The client went away; the app's error (mostly write() raising) follows from that.
        log::debug!("client connection lost while {when}: {err}");
        return;
    }
    if r.headers_sent() {
        // What the app produced before failing still goes out before the connection closes.
        if let Err(e) = r.flush(py) {
            log::debug!("client connection lost: {e}");
        }
        error!(
            "error {when} after the response started; closing the connection:\n{}",
            format_exception(py, err)
        );
        // Nothing more is sent; what a full socket has not taken yet still goes out (inline
        // worker), then the connection closes.
        if !r.blocked {
            r.broken = true;
        }
        return;
    }
    let code = match body_error {
        Some(BodyError::Parse(e)) => e.status(),
        Some(BodyError::Io(_)) => {
            // The client is gone or stalled: nobody to answer.
            log::debug!("request body not received: {err}");
            r.broken = true;
            return;
        }
        None => {
            error!("error {when}:\n{}", format_exception(py, err));
            500
        }
    };
    drop(r);
    respond_simple(py, response, code);
}

/// Answers with a short status page of the server's own (404 outside root path, 500, 413).
fn respond_simple(py: Python<'_>, response: &Py<StartResponse>, code: u16) {
    let mut r = response.borrow_mut(py);
    r.code = code;
    let close = !r.out.keep_alive || code >= 500 || code == 413 || code == 400;
    if close {
        r.out.keep_alive = false;
    }
    let server = r.out.server_header.then_some(&b"ferrule"[..]);
    let mut bytes = date::with(|d| {
        enc::simple_response(
            enc::StatusLine::Http11,
            code,
            close,
            d,
            server,
            r.out.head_request,
        )
    });
    r.body_sent = bytes.len() as u64;
    r.mark_finished();
    if !watchdog::claim_response() {
        r.out.keep_alive = false;
        return;
    }
    if r.out.fastcgi.is_some() {
        // A CGI-style head: `Status: 404 Not Found` instead of the HTTP status line.
        if let Some(rest) = bytes.strip_prefix(b"HTTP/1.1 ") {
            bytes = [&b"Status: "[..], rest].concat();
        }
    }
    if r.send(py, &[&bytes]).is_err() {
        r.out.keep_alive = false;
    }
}

fn access_log(conn: &ConnInfo, request: &Request, code: u16, sent: u64, started: Instant) {
    let quote = |v: Option<&[u8]>| {
        v.map_or_else(
            || "-".to_owned(),
            |v| String::from_utf8_lossy(v).replace('"', "\\\""),
        )
    };
    let (method, target, version, referer, agent, remote) = match request {
        Request::Http(head) => {
            let field = |name: &[u8]| {
                head.fields()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            };
            (
                String::from_utf8_lossy(head.method()).into_owned(),
                String::from_utf8_lossy(head.target()).replace('"', "%22"),
                head.version.as_str().to_owned(),
                quote(field(b"referer")),
                quote(field(b"user-agent")),
                conn.peer
                    .map_or_else(|| "-".to_owned(), |p| p.ip().to_string()),
            )
        }
        Request::Cgi(req) => (
            String::from_utf8_lossy(req.method()).into_owned(),
            String::from_utf8_lossy(&req.target()).replace('"', "%22"),
            String::from_utf8_lossy(req.protocol()).into_owned(),
            quote(req.header(b"HTTP_REFERER")),
            quote(req.header(b"HTTP_USER_AGENT")),
            req.header(b"REMOTE_ADDR").map_or_else(
                || {
                    conn.peer
                        .map_or_else(|| "-".to_owned(), |p| p.ip().to_string())
                },
                |a| String::from_utf8_lossy(a).into_owned(),
            ),
        ),
    };
    let line = format!(
        "{remote} - - [{}] \"{method} {target} {version}\" {code} {} \"{referer}\" \"{agent}\" {}us",
        log::timestamp(true),
        if sent == 0 {
            "-".to_owned()
        } else {
            sent.to_string()
        },
        started.elapsed().as_micros(),
    );
    log::access(&line);
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_path_mounts_on_segment_boundaries() {
        assert_eq!(super::path_info("", b"/x"), Some(&b"/x"[..]));
        assert_eq!(super::path_info("/app", b"/app/x"), Some(&b"/x"[..]));
        assert_eq!(super::path_info("/app", b"/app"), Some(&b""[..]));
        assert_eq!(super::path_info("/app", b"/application"), None);
        assert_eq!(super::path_info("/app", b"/other"), None);
        assert_eq!(super::path_info("", b"*"), Some(&b"*"[..]));
        assert_eq!(super::path_info("/app", b"*"), Some(&b"*"[..]));
    }
}
