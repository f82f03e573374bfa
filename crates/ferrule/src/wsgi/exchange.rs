//! One request through the app: [`serve`] builds the environ, calls the app and sends what it
//! returns through the transport's sink; a response the client is slow to read stops midway
//! and goes on in [`resume`] once the transport's connection task has waited for the client.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyIterator, PyList, PyTuple};

use super::file_wrapper::FileWrapper;
use super::input::Input;
use super::response::StartResponse;
use super::sink::{Block, BodySource, Sink};
use super::{format_exception, App, Request};
use crate::access;
use crate::log::{self, error};
use crate::net::ConnInfo;
use crate::watchdog;

/// What [`serve`] (or [`resume`]) leaves to the connection's task.
pub enum Served {
    /// The request is over.
    Done(Outcome),
    /// The response waits for the client (the connection is congested). The task waits
    /// until the client reads (or the client timeout passes), then calls [`resume`];
    /// meanwhile the worker serves other connections.
    Waiting(Box<Exchange>),
}

/// What is left of the connection after a request: the transport's own sink and body
/// source back, and whether it may serve another request.
pub struct Outcome {
    pub keep_alive: bool,
    /// None when the exchange could not start (no `start_response` could be made).
    pub sink: Option<Box<dyn Sink>>,
    pub body: Option<Box<dyn BodySource>>,
}

/// A request between the start of its response and its end, waiting for the client.
pub struct Exchange {
    conn: ConnInfo,
    request: Request,
    /// For the access log and the metrics.
    started: Option<Instant>,
    /// `http_server_active_requests`, held until the exchange ends.
    _active: Option<crate::metrics::Held>,
    /// `--request-id-header`: the request's id.
    request_id: Option<Vec<u8>>,
    input: Py<Input>,
    response: Py<StartResponse>,
    /// The app's iterable, when it stopped before its end.
    iterating: Option<Iterating>,
}

/// An app's iterable, between two of its blocks.
struct Iterating {
    iter: Py<PyIterator>,
    /// What the app returned, for its `close()`.
    result: Unclosed,
    /// For the `post_request` hook.
    env: Py<PyDict>,
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

/// A borrow of the response, or a Python error if something else holds it (it never is:
/// the app runs while the bridge holds no borrow).
fn borrow<'py>(
    py: Python<'py>,
    response: &'py Py<StartResponse>,
) -> PyResult<PyRefMut<'py, StartResponse>> {
    response.try_borrow_mut(py).map_err(|_| {
        pyo3::exceptions::PyRuntimeError::new_err("start_response is in use by another call")
    })
}

/// Serves one request: attaches to Python, runs the app, and sends its response through
/// `sink`. `body`: the request's body, None for a request without one.
pub fn serve(
    app: &App,
    conn: &ConnInfo,
    request: Request,
    sink: Box<dyn Sink>,
    body: Option<Box<dyn BodySource>>,
    queued: Option<Instant>,
) -> Served {
    // Only the access log and the metrics need the time a request took: from when it began
    // to wait for an app thread, if it did.
    let started = access::wanted().then(|| queued.unwrap_or_else(Instant::now));
    let active = crate::metrics::active_request();
    let _busy = crate::metrics::thread_busy();
    // `--max-queue-wait`: a request that waited longer for an app thread is answered 503.
    let overdue = queued
        .zip(app.max_queue_wait)
        .filter(|(q, limit)| q.elapsed() > *limit);
    watchdog::request_begin(conn.fd, sink.raw_http());
    let head_request = request.is_head();
    let has_body = body.is_some();
    Python::attach(|py| {
        let input = match body {
            None => app.empty_input.clone_ref(py),
            Some(body) => match Py::new(py, Input::new(body)) {
                Ok(i) => i,
                Err(e) => {
                    error!("cannot create wsgi.input: {e}");
                    return Served::Done(Outcome {
                        keep_alive: false,
                        sink: Some(sink),
                        body: None,
                    });
                }
            },
        };
        let response = match app.response(py, head_request, sink) {
            Ok(r) => r,
            Err(e) => {
                error!("cannot create start_response: {e}");
                return Served::Done(Outcome {
                    keep_alive: false,
                    sink: None,
                    body: take_body(py, &input),
                });
            }
        };
        let request_id = super::request_id::resolve(app, conn, &request);
        keep_copy(conn, &request, started, request_id.as_deref());
        if let (Some(id), Some(h)) = (&request_id, &app.request_id) {
            if let Ok(mut r) = response.try_borrow_mut(py) {
                r.echo = Some((h.name.clone(), id.clone()));
            }
        }
        if has_body {
            if let Ok(mut r) = response.try_borrow_mut(py) {
                r.input = Some(input.clone_ref(py));
            }
        }
        let iterating = if let Some((q, limit)) = overdue {
            warn_overdue(q.elapsed(), limit);
            respond_overloaded(py, &response, limit);
            None
        } else {
            guarded(py, &response, || {
                run_app(
                    py,
                    app,
                    conn,
                    &request,
                    request_id.as_deref(),
                    &input,
                    &response,
                )
            })
        };
        let exchange = Exchange {
            conn: conn.clone(),
            request,
            started,
            _active: active,
            request_id,
            input,
            response,
            iterating,
        };
        after_python(py, app, exchange)
    })
}

/// Gives the watchdog what the request's access line needs, should it answer or cut the
/// request itself (`--timeout` with an access log or metrics; not for an HTTP/2 stream,
/// whose 504 and line come from its connection).
fn keep_copy(conn: &ConnInfo, request: &Request, started: Option<Instant>, id: Option<&[u8]>) {
    if let Some(started) = started.filter(|_| conn.fd >= 0 && watchdog::copying()) {
        watchdog::keep_copy(request.copied(conn, started, id));
    }
}

/// Runs `f` (a turn of the app), answering a panic in the server's own code as an app error:
/// logged with the request, 500 if nothing was sent, else the connection cut. The thread
/// goes on serving.
fn guarded(
    py: Python<'_>,
    response: &Py<StartResponse>,
    f: impl FnOnce() -> Option<Iterating>,
) -> Option<Iterating> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(it) => it,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            error!("internal error while serving a request (a bug in ferrule): {what}");
            if let Ok(mut r) = response.try_borrow_mut(py) {
                if r.headers_sent() {
                    r.cut();
                } else {
                    drop(r);
                    respond_simple(py, response, 500);
                }
            }
            None
        }
    }
}

/// Goes on with a request whose response waited for the client: `writable` says whether the
/// client read within the timeout (else the response is cut short and the connection closes).
pub fn resume(app: &App, exchange: Box<Exchange>, writable: bool) -> Served {
    let mut exchange = *exchange;
    Python::attach(|py| {
        keep_copy(
            &exchange.conn,
            &exchange.request,
            exchange.started,
            exchange.request_id.as_deref(),
        );
        let (http, code, sent) = exchange.response.try_borrow(py).map_or((false, 0, 0), |r| {
            let http = r.sink.as_ref().is_some_and(|s| s.raw_http());
            (http, r.code, r.body_sent)
        });
        watchdog::request_resume(exchange.conn.fd, http, code, sent);
        let congested = exchange.response.try_borrow_mut(py).is_ok_and(|mut r| {
            if !writable {
                log::debug!(
                    "{} read nothing of the response within the client timeout; closing",
                    exchange.conn.peer_label()
                );
                r.abort();
            } else if let Err(e) = r.flush(py, false) {
                log::debug!("client connection lost: {e}");
            }
            r.congested()
        });
        if congested {
            return Served::Waiting(Box::new(exchange));
        }
        if let Some(it) = exchange.iterating.take() {
            let response = &exchange.response;
            let gone = response.try_borrow(py).is_ok_and(|r| r.client_gone());
            let flow = guarded(py, response, || {
                let flow = if gone {
                    Ok(None)
                } else {
                    iterate(py, response, it.iter.bind(py).clone())
                };
                match flow {
                    Ok(Some(iter)) => {
                        return Some(Iterating {
                            iter: iter.unbind(),
                            result: Unclosed(None),
                            env: it.env.clone_ref(py),
                        })
                    }
                    Ok(None) => {}
                    Err(e) => app_failed(
                        py,
                        &exchange.input,
                        response,
                        &e,
                        "iterating the app's response",
                    ),
                }
                None
            });
            let mut unclosed = it.result;
            match flow {
                Some(mut next) => {
                    // The iterable waits again: it keeps what is to be closed.
                    next.result = Unclosed(unclosed.0.take());
                    exchange.iterating = Some(next);
                }
                None => {
                    if let Some(result) = unclosed.0.take() {
                        close_result(py, response, result.bind(py));
                    }
                    post_hook(py, app, it.env.bind(py), response);
                }
            }
        }
        after_python(py, app, exchange)
    })
}

/// After a turn in Python: the request is over unless its response waits for the client.
fn after_python(py: Python<'_>, app: &App, exchange: Exchange) -> Served {
    let waiting = exchange.iterating.is_some()
        || exchange
            .response
            .try_borrow(py)
            .is_ok_and(|r| r.congested());
    if waiting {
        if watchdog::request_end() {
            // The watchdog answered this request (504) and the worker is leaving.
            return Served::Done(timed_out(py, &exchange.response, &exchange.input));
        }
        return Served::Waiting(Box::new(exchange));
    }
    let Exchange {
        conn,
        request,
        started,
        _active,
        request_id,
        input,
        response,
        iterating: _,
    } = exchange;
    if watchdog::request_end() {
        return Served::Done(timed_out(py, &response, &input));
    }
    let body = take_body(py, &input);
    let Ok(mut r) = response.try_borrow_mut(py) else {
        return Served::Done(Outcome {
            keep_alive: false,
            sink: None,
            body,
        });
    };
    let keep_alive = r.keep_alive();
    let sink = r.sink.take();
    r.input = None;
    let answered = sink.as_ref().is_some_and(|s| s.answered_by_transport());
    if let Some(started) = started.filter(|_| !answered) {
        let target = request.target();
        let mut record = request.access_record(&conn, &target, &r.headers);
        record.status = r.code;
        record.sent = r.body_sent;
        record.elapsed = started.elapsed();
        record.request_id = request_id.as_deref();
        access::write(&record);
    }
    drop(r);
    app.recycle(py, response);
    Served::Done(Outcome {
        keep_alive,
        sink,
        body,
    })
}

/// The watchdog answered the request (504) and the worker is leaving: nothing more is sent.
fn timed_out(py: Python<'_>, response: &Py<StartResponse>, input: &Py<Input>) -> Outcome {
    let sink = response.try_borrow_mut(py).ok().and_then(|mut r| {
        r.abort();
        r.sink.take()
    });
    Outcome {
        keep_alive: false,
        sink,
        body: take_body(py, input),
    }
}

/// The body source back from `wsgi.input` (None from the shared empty input, which has none;
/// its methods never release the GIL, so no other thread can be inside it).
fn take_body(py: Python<'_>, input: &Py<Input>) -> Option<Box<dyn BodySource>> {
    input
        .try_borrow_mut(py)
        .ok()
        .and_then(|mut i| i.reader.take())
}

/// Runs the app on the request; returns its iterable when the response stopped midway to
/// wait for the client (see [`Served::Waiting`]).
fn run_app(
    py: Python<'_>,
    app: &App,
    conn: &ConnInfo,
    request: &Request,
    request_id: Option<&[u8]>,
    input: &Py<Input>,
    response: &Py<StartResponse>,
) -> Option<Iterating> {
    #[cfg(feature = "test-hooks")]
    test_panic_hook(request);
    let (env, callable) = match request.environ(py, app, conn, input.bind(py).clone().into_any()) {
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
    if let Some(id) = request_id {
        if let Err(e) = super::request_id::put(py, app, &env, id) {
            error!(
                "cannot put the request id in the environ: {}",
                format_exception(py, &e)
            );
        }
    }
    if let Some(pre) = app.hooks.as_ref().and_then(|h| h.pre.as_ref()) {
        if let Err(e) = pre.bind(py).call1((&env,)) {
            error!("pre_request hook: {}", format_exception(py, &e));
        }
    }
    let iterating = call_app(py, callable, &env, input, response);
    if iterating.is_none() {
        post_hook(py, app, &env, response);
    }
    iterating
}

/// Test builds (`--features test-hooks`, which `make test` uses; never in a wheel): while
/// `FERRULE_TEST_PANIC` is set, a request for `/__ferrule_test_panic__` panics in the
/// server's own code, so that tests can check a panic is contained.
#[cfg(feature = "test-hooks")]
fn test_panic_hook(request: &Request) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("FERRULE_TEST_PANIC").is_some())
        && request.target().starts_with(b"/__ferrule_test_panic__")
    {
        panic!("forced by FERRULE_TEST_PANIC");
    }
}

/// The `post_request` hook, if the config file has one.
fn post_hook(py: Python<'_>, app: &App, env: &Bound<'_, PyDict>, response: &Py<StartResponse>) {
    if let Some(post) = app.hooks.as_ref().and_then(|h| h.post.as_ref()) {
        let code = response.try_borrow(py).map_or(0, |r| r.code);
        if let Err(e) = post.bind(py).call1((env, code)) {
            error!("post_request hook: {}", format_exception(py, &e));
        }
    }
}

/// Calls the app with `env`, sends what it returns, and closes it; or returns the iterable
/// when its response stopped midway to wait for the client.
fn call_app(
    py: Python<'_>,
    callable: &Py<PyAny>,
    env: &Bound<'_, PyDict>,
    input: &Py<Input>,
    response: &Py<StartResponse>,
) -> Option<Iterating> {
    let called = {
        let _in_app = watchdog::enter();
        callable.bind(py).call1((env, response.bind(py)))
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
    if !plain {
        if let Ok(close) = result.getattr(pyo3::intern!(py, "close")) {
            if let Ok(mut r) = response.try_borrow_mut(py) {
                r.app_busy();
            }
            let closed = {
                let _in_app = watchdog::enter();
                close.call0()
            };
            if let Ok(mut r) = response.try_borrow_mut(py) {
                if let Err(e) = r.app_back(py) {
                    lost(e);
                }
            }
            if let Err(e) = closed {
                error!(
                    "error closing the app's response:\n{}",
                    format_exception(py, &e)
                );
                if let Ok(mut r) = response.try_borrow_mut(py) {
                    r.close = true;
                }
            }
        }
    }
    if let Ok(mut r) = response.try_borrow_mut(py) {
        r.mark_finished();
    }
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
) -> PyResult<Option<Bound<'py, PyIterator>>> {
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
        let mut r = borrow(py, response)?;
        check_started(&r)?;
        let total = bytes.as_bytes().len() as u64;
        if r.send_block(py, Block::of(&bytes), Some(total)).is_ok() {
            r.finish(py).unwrap_or_else(lost);
        }
        return Ok(None);
    }
    if let Ok(fw) = result.cast::<FileWrapper>() {
        let plan = fw.try_borrow().ok().and_then(|f| f.sendfile_plan(py));
        if let Some((fd, offset, count)) = plan {
            let mut r = borrow(py, response)?;
            check_started(&r)?;
            if r.send_file(py, fd, offset, count).is_ok() {
                r.finish(py).unwrap_or_else(lost);
            }
            return Ok(None);
        }
    }
    iterate(py, response, result.try_iter()?)
}

/// Sends the iterator's blocks to its end; returns it if the connection congested first
/// (nothing more is asked of the app until the client reads).
fn iterate<'py>(
    py: Python<'py>,
    response: &Py<StartResponse>,
    mut iter: Bound<'py, PyIterator>,
) -> PyResult<Option<Bound<'py, PyIterator>>> {
    loop {
        {
            let mut r = borrow(py, response)?;
            if r.congested() {
                return Ok(Some(iter));
            }
            // What is queued may go out while the app produces the next block (see the
            // transport's sink); the borrow ends before the app runs, as it may call write().
            r.app_busy();
        }
        let next = {
            let _in_app = watchdog::enter();
            iter.next()
        };
        let mut r = borrow(py, response)?;
        if let Err(e) = r.app_back(py) {
            lost(e);
            return Ok(None);
        }
        let Some(item) = next else { break };
        let bytes = chunk_bytes(&item?)?;
        check_started(&r)?;
        if let Err(e) = r.send_block(py, Block::of(&bytes), None) {
            lost(e);
            return Ok(None);
        }
    }
    let mut r = borrow(py, response)?;
    check_started(&r)?;
    r.finish(py).unwrap_or_else(lost);
    Ok(None)
}

fn chunk_bytes<'py>(item: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    item.cast::<PyBytes>().cloned().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "the app's response yielded {}, but WSGI bodies are bytes (PEP 3333)",
            super::response::type_name(item)
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
    use super::sink::BodyError;
    let body_error = input
        .try_borrow(py)
        .ok()
        .and_then(|i| i.reader.as_ref().and_then(|r| r.error()));
    let Ok(mut r) = response.try_borrow_mut(py) else {
        error!("error {when}:\n{}", format_exception(py, err));
        return;
    };
    r.close = true;
    if r.client_gone() {
        // The client went away; the app's error (mostly write() raising) follows from that.
        log::debug!("client connection lost while {when}: {err}");
        return;
    }
    if r.headers_sent() {
        // What the app produced before failing still goes out before the connection closes.
        if let Err(e) = r.flush(py, false) {
            log::debug!("client connection lost: {e}");
        }
        error!(
            "error {when} after the response started; closing the connection:\n{}",
            format_exception(py, err)
        );
        r.cut();
        return;
    }
    let code = match body_error {
        Some(BodyError::Parse(e)) => e.status(),
        Some(BodyError::TooSlow) => {
            log::debug!("request body too slow: {err}");
            408
        }
        Some(BodyError::Io(_)) => {
            // The client is gone or stalled: nobody to answer.
            log::debug!("request body not received: {err}");
            r.abort();
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

/// `--max-queue-wait`: one warning line every 10 s at most (overload comes in bursts), with
/// the count of requests answered 503 since the last line.
fn warn_overdue(waited: Duration, limit: Duration) {
    static OVERDUE: log::Repeated = log::Repeated::new();
    OVERDUE.log(log::Level::Warning, || {
        format!(
            "a request waited {} ms for an app thread, over --max-queue-wait ({} ms): \
             answered 503",
            waited.as_millis(),
            limit.as_millis()
        )
    });
}

/// `--max-queue-wait`: 503 with `Retry-After` (the limit, in whole seconds, at least 1), and
/// the connection closes.
fn respond_overloaded(py: Python<'_>, response: &Py<StartResponse>, limit: Duration) {
    let Ok(mut r) = response.try_borrow_mut(py) else {
        return;
    };
    let body = r.set_simple(503);
    r.add_own_header(
        b"Retry-After",
        itoa::Buffer::new()
            .format(limit.as_secs().max(1))
            .as_bytes(),
    );
    r.close = true;
    send_simple(py, &mut r, &body);
}

/// Answers with a short status page of the server's own (404 outside root path, 500, 413).
fn respond_simple(py: Python<'_>, response: &Py<StartResponse>, code: u16) {
    let Ok(mut r) = response.try_borrow_mut(py) else {
        return;
    };
    if code >= 500 || matches!(code, 400 | 408 | 413) {
        r.close = true;
    }
    let body = r.set_simple(code);
    send_simple(py, &mut r, &body);
}

/// Sends the body of a response [`StartResponse::set_simple`] began, and ends it.
fn send_simple(py: Python<'_>, r: &mut StartResponse, body: &[u8]) {
    let sent = r
        .send_block(py, Block::own(body), Some(body.len() as u64))
        .and_then(|()| r.finish(py));
    if sent.is_err() {
        r.close = true;
    }
    r.mark_finished();
}
