//! One HTTP/2 stream on the edge thread: its request made into the bridge's neutral request,
//! its body buffered (or, on a streaming path, pumped in as the app reads), handed to the app
//! (an app thread; inline, the worker's loop, or a side thread for a streamed body still to
//! come) and its response sent out as the windows allow.
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferrule_proto::http1::{BodyKind, RequestHead, Version};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderValue, Request, Response, StatusCode};

use super::body::{self, H2Body, Inbound, Unbuffered};
use super::inline::InlineJob;
use super::sink::{H2Sink, Item, Outbound};
use crate::log::debug;
use crate::net::ConnInfo;
use crate::server::buffer::PREREAD_BODY;
use crate::server::Worker;
use crate::statics::{Body, Decision};
use crate::wsgi;

/// What the edge thread reads of a file response at once.
const FILE_BLOCK: usize = 64 * 1024;

/// Serves one stream, from its request to the end of its response.
pub async fn serve(
    worker: Arc<Worker>,
    info: ConnInfo,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    held: Arc<body::Held>,
) {
    // The access line's clock (a line of the server's own, or the app's).
    let started = crate::access::wanted().then(std::time::Instant::now);
    let (parts, recv) = request.into_parts();
    let length = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let limits = &worker.app.limits;
    let limit = limits.request_body;
    let refused = over_limits(&parts, limits).or_else(|| {
        (limit != 0 && length.is_some_and(|n| n > limit)).then_some(StatusCode::PAYLOAD_TOO_LARGE)
    });
    let has_body = !recv.is_end_stream();
    let head = request_head(&parts, has_body, length);
    if let Some(status) = refused {
        simple(&mut respond, status);
        log_own(&info, &head, status, started);
        return;
    }
    let timeout = worker.client_timeout;
    if let Some(resp) = crate::server::health::response(&worker, &head, false) {
        answer_own(respond, resp, &worker, &info, &head, started).await;
        return;
    }
    if let Some(statics) = worker.statics.as_deref() {
        let mut req = crate::statics::Request::new(head.method(), head.target());
        for (name, value) in head.fields() {
            req.field(name, value);
        }
        if let Decision::Respond(resp) = statics.decide(&req) {
            answer_own(respond, resp, &worker, &info, &head, started).await;
            return;
        }
    }
    // Buffered (the default): the whole body is read before the app is called. Streamed: the
    // app reads it as it comes, and the inline worker runs a call whose body is still to come
    // on a side thread (`server/side.rs`), never on its loop.
    let streams = has_body && !worker.buffering.buffers_path(head.target());
    let mut arrived = true;
    let body: Option<Box<dyn wsgi::sink::BodySource>> = if !has_body {
        None
    } else if streams {
        let inbound = Inbound::new();
        tokio::spawn(body::pump(recv, Arc::clone(&inbound), limit));
        // As HTTP/1 does, the inline worker waits (here, not on its loop) for a small body
        // to arrive whole, so that it runs inline without a hand-off to a side thread.
        let small = length.is_some_and(|n| n <= PREREAD_BODY as u64);
        arrived = worker.pool.is_none() && small && inbound.arrival(timeout).await;
        Some(Box::new(H2Body::new(inbound, length, timeout)))
    } else {
        match body::buffer(&worker, recv, length, &held).await {
            Ok(b) => Some(b),
            Err(why) => {
                let status = match why {
                    Unbuffered::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                    Unbuffered::TooSlow => {
                        debug!(
                            "{} sent its HTTP/2 request body slower than --body-min-rate; 408",
                            info.peer_label()
                        );
                        StatusCode::REQUEST_TIMEOUT
                    }
                    Unbuffered::Failed => StatusCode::INTERNAL_SERVER_ERROR,
                    Unbuffered::Closed => {
                        debug!(
                            "{} stopped sending its HTTP/2 request body; resetting the stream",
                            info.peer_label()
                        );
                        respond.send_reset(Reason::CANCEL);
                        return;
                    }
                };
                simple(&mut respond, status);
                log_own(&info, &head, status, started);
                return;
            }
        }
    };
    let out = Outbound::new();
    // The inline worker runs the call on its loop, unless its body is still to come.
    let pooled = worker.pool.is_some();
    let side = !pooled && !arrived;
    let inline = !pooled && !side;
    let sink = Box::new(H2Sink::new(
        Arc::clone(&out),
        worker.app.server_header,
        timeout,
        Arc::clone(&worker),
        inline,
    ));
    // For a line of the server's own once the app has the request (504, a refused stream):
    // a copy of the head (its bytes shared), only when a line is wanted.
    let copy = started.map(|at| (head.clone(), at, info.clone()));
    let request = wsgi::Request::Fields(head);
    let sink: Box<dyn wsgi::sink::Sink> = match &worker.compress {
        Some(c) => crate::server::compress::wrap(c, request.accept_encoding(), sink),
        None => sink,
    };
    // The app runs elsewhere; this task sends its response meanwhile.
    if inline {
        let job = InlineJob {
            request,
            info,
            sink,
            body,
            out: Arc::clone(&out),
        };
        worker.h2_inline.submit(job);
    } else {
        // Handed to an app (or side) thread without waiting for its end (the response says
        // when).
        let w = Arc::clone(&worker);
        // From here the stream waits for an app thread (`--max-queue-wait`).
        let queued = Some(std::time::Instant::now());
        let waiting = crate::metrics::queued();
        let job: crate::wsgi::threads::Job = Box::new(move || {
            drop(waiting);
            // Waiting never comes back: an app thread waits for room itself.
            drop(wsgi::serve(&w.app, &info, request, sink, body, queued));
            w.request_done();
        });
        let sent = match &worker.pool {
            Some(pool) => pool.send(job).await.is_ok(),
            None => worker.side.send(job).await,
        };
        if !sent {
            // The worker is stopping and takes no more calls: the client may try again.
            out.client_gone();
            simple(&mut respond, StatusCode::SERVICE_UNAVAILABLE);
            if let Some((head, at, info)) = &copy {
                log_own(info, head, StatusCode::SERVICE_UNAVAILABLE, Some(*at));
            }
            return;
        }
    }
    if send_response(respond, &out, timeout, worker.request_timeout).await {
        if let Some((head, at, info)) = &copy {
            log_own(info, head, StatusCode::GATEWAY_TIMEOUT, Some(*at));
        }
    }
}

/// The access line of an answer of the server's own without a body (a refusal, a 504).
fn log_own(
    info: &ConnInfo,
    head: &RequestHead,
    status: StatusCode,
    started: Option<std::time::Instant>,
) {
    if let Some(started) = started {
        crate::server::statics::log_access(info, head, status.as_u16(), 0, started);
    }
}

/// The request head the bridge sees: `:authority` as Host, cookies joined with `; `
/// (RFC 9113 section 8.2.3), the other fields as sent.
fn request_head(parts: &http::request::Parts, has_body: bool, length: Option<u64>) -> RequestHead {
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let authority = parts.uri.authority().map(http::uri::Authority::as_str);
    let mut cookie = Vec::new();
    for v in parts.headers.get_all(http::header::COOKIE) {
        if !cookie.is_empty() {
            cookie.extend_from_slice(b"; ");
        }
        cookie.extend_from_slice(v.as_bytes());
    }
    let host = authority.map(|a| (&b"host"[..], a.as_bytes()));
    let fields = parts
        .headers
        .iter()
        .filter(|(n, _)| {
            *n != http::header::COOKIE && (authority.is_none() || *n != http::header::HOST)
        })
        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
    let cookie = (!cookie.is_empty()).then_some((&b"cookie"[..], &cookie[..]));
    let kind = match (has_body, length) {
        (false, _) => BodyKind::Empty,
        (true, Some(n)) => BodyKind::Length(n),
        (true, None) => BodyKind::Chunked,
    };
    RequestHead::from_parts(
        parts.method.as_str().as_bytes(),
        target.as_bytes(),
        Version::Http2,
        host.into_iter().chain(fields).chain(cookie),
        kind,
    )
}

/// The `--limit-request-*` limits as HTTP/1 applies them: the request line (method, target,
/// version) 414, the number of fields and the length of one field (`name: value`) 431.
fn over_limits(parts: &http::request::Parts, limits: &ferrule_proto::Limits) -> Option<StatusCode> {
    let target = parts.uri.path_and_query().map_or(1, |p| p.as_str().len());
    if parts.method.as_str().len() + target + " HTTP/2".len() + 1 > limits.request_line {
        return Some(StatusCode::URI_TOO_LONG);
    }
    if parts.headers.len() > limits.request_fields
        || parts
            .headers
            .iter()
            .any(|(n, v)| n.as_str().len() + 2 + v.len() > limits.field_size)
    {
        return Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    None
}

/// Sends an answer of the server's own (`--static`, `--health-path`) and its access line.
async fn answer_own(
    respond: SendResponse<Bytes>,
    resp: crate::statics::Response,
    worker: &Worker,
    info: &ConnInfo,
    head: &RequestHead,
    started: Option<std::time::Instant>,
) {
    let (status, len) = (resp.status, resp.body_len());
    let sent = send_static(
        respond,
        resp,
        worker.app.server_header,
        worker.client_timeout,
    )
    .await;
    if let Some(started) = started {
        let sent = if sent { len } else { 0 };
        crate::server::statics::log_access(info, head, status, sent, started);
    }
}

/// Sends a `--static` answer on the stream. False if the stream or the file failed.
async fn send_static(
    mut respond: SendResponse<Bytes>,
    resp: crate::statics::Response,
    server_header: bool,
    timeout: Duration,
) -> bool {
    let mut head = Response::new(());
    let Ok(status) = StatusCode::from_u16(resp.status) else {
        return false;
    };
    *head.status_mut() = status;
    let fields = head.headers_mut();
    for (name, value) in &resp.headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            fields.append(*name, v);
        }
    }
    if let Some(n) = resp.content_length {
        fields.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    if let Ok(d) = crate::net::date::with(HeaderValue::from_bytes) {
        fields.insert(http::header::DATE, d);
    }
    if server_header {
        fields.insert(http::header::SERVER, HeaderValue::from_static("ferrule"));
    }
    let empty = matches!(resp.body, Body::Empty);
    let Ok(mut send) = respond.send_response(head, empty) else {
        return false;
    };
    let sent = match resp.body {
        Body::Empty => return true,
        Body::Bytes(b) => send_data(&mut send, b, timeout).await,
        Body::File { file, offset, len } => send_file(&mut send, &file, offset, len, timeout).await,
    };
    sent.is_ok() && send.send_data(Bytes::new(), true).is_ok()
}

/// Sends `count` bytes of `file` from `offset`, read in blocks as the windows open.
async fn send_file(
    send: &mut SendStream<Bytes>,
    file: &std::fs::File,
    mut offset: u64,
    mut count: u64,
    timeout: Duration,
) -> Result<(), Ended> {
    while count > 0 {
        let want = usize::try_from(count).unwrap_or(FILE_BLOCK).min(FILE_BLOCK);
        let mut buf = vec![0u8; want];
        let n = match file.read_at(&mut buf, offset) {
            Ok(0) | Err(_) => return Err(Ended),
            Ok(n) => n,
        };
        buf.truncate(n);
        send_data(send, Bytes::from(buf), timeout).await?;
        offset += n as u64;
        count -= n as u64;
    }
    Ok(())
}

/// A response of the server's own, without body.
fn simple(respond: &mut SendResponse<Bytes>, status: StatusCode) {
    let mut r = Response::new(());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(0));
    let _ = respond.send_response(r, true);
}

/// Sends the response as the app queues it, until its end (or the stream's). True when the
/// app gave no head within `--timeout` and the stream was answered 504.
async fn send_response(
    mut respond: SendResponse<Bytes>,
    out: &Outbound,
    timeout: Duration,
    request_timeout: Duration,
) -> bool {
    // `--timeout`: a call that gives no head in time is answered 504 here, counted from the
    // dispatch, so before the watchdog (which counts from the call and cannot write on a
    // connection other streams share) dumps the stacks and retires the worker.
    let deadline =
        (!request_timeout.is_zero()).then(|| tokio::time::Instant::now() + request_timeout);
    // The head, when the app has given it.
    let (head, end) = loop {
        let ready = out.ready.notified();
        {
            let mut s = out.lock();
            if s.aborted {
                drop(s);
                respond.send_reset(Reason::INTERNAL_ERROR);
                return false;
            }
            if let Some(h) = s.head.take() {
                let end = s.no_body || (s.finished && s.queue.is_empty());
                break (h, end);
            }
        }
        let reset = std::future::poll_fn(|cx| respond.poll_reset(cx));
        let expired = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = ready => {}
            _ = reset => {
                out.client_gone();
                return false;
            }
            () = expired => {
                {
                    let mut s = out.lock();
                    if s.head.is_some() || s.aborted {
                        // The app answered meanwhile.
                        continue;
                    }
                    // The app's access line is not written: this answer's is.
                    s.timed_out = true;
                }
                simple(&mut respond, StatusCode::GATEWAY_TIMEOUT);
                out.client_gone();
                return true;
            }
        }
    };
    let Ok(mut send) = respond.send_response(head, end) else {
        out.client_gone();
        return false;
    };
    if end {
        // A body the app still gives (to a HEAD, say) is dropped.
        out.client_gone();
        return false;
    }
    if send_body(&mut send, out, timeout).await.is_err() {
        out.client_gone();
    }
    false
}

/// The stream ended early: reset, client gone, or stalled past the timeout.
struct Ended;

async fn send_body(
    send: &mut SendStream<Bytes>,
    out: &Outbound,
    timeout: Duration,
) -> Result<(), Ended> {
    loop {
        let ready = out.ready.notified();
        let next = {
            let mut s = out.lock();
            if s.aborted {
                drop(s);
                send.send_reset(Reason::INTERNAL_ERROR);
                return Err(Ended);
            }
            match s.queue.pop_front() {
                Some(item) => {
                    let len = match &item {
                        Item::Data(b) => b.len(),
                        Item::File { count, .. } => usize::try_from(*count).unwrap_or(usize::MAX),
                    };
                    s.queued -= len.min(super::sink::OUT_BUFFER).min(s.queued);
                    Some(item)
                }
                None if s.cut => {
                    drop(s);
                    send.send_reset(Reason::INTERNAL_ERROR);
                    return Err(Ended);
                }
                None if s.finished => {
                    drop(s);
                    return send.send_data(Bytes::new(), true).map_err(|_| Ended);
                }
                None => None,
            }
        };
        match next {
            Some(Item::Data(bytes)) => {
                out.made_room();
                send_data(send, bytes, timeout).await?;
            }
            Some(Item::File {
                file,
                offset,
                count,
            }) => {
                out.made_room();
                send_file(send, &file, offset, count, timeout).await?;
            }
            None => {
                let reset = std::future::poll_fn(|cx| send.poll_reset(cx));
                tokio::select! {
                    () = ready => {}
                    _ = reset => return Err(Ended),
                }
            }
        }
    }
}

/// Sends `bytes` as the client's windows open, each wait bounded by the client timeout.
async fn send_data(
    send: &mut SendStream<Bytes>,
    mut bytes: Bytes,
    timeout: Duration,
) -> Result<(), Ended> {
    while !bytes.is_empty() {
        send.reserve_capacity(bytes.len());
        let capacity = std::future::poll_fn(|cx| send.poll_capacity(cx));
        let n = match tokio::time::timeout(timeout, capacity).await {
            Ok(Some(Ok(n))) => n,
            Ok(_) => return Err(Ended),
            Err(_) => {
                debug!("HTTP/2: a client read nothing of a response within the client timeout; resetting the stream");
                send.send_reset(Reason::CANCEL);
                return Err(Ended);
            }
        };
        if n == 0 {
            continue;
        }
        let chunk = bytes.split_to(n.min(bytes.len()));
        send.send_data(chunk, false).map_err(|_| Ended)?;
    }
    Ok(())
}
