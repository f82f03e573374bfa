//! `--health-path`: a path the worker answers itself, without calling the app, for load
//! balancers and Kubernetes probes: `200 ok` while it serves, `503 draining` once it is
//! leaving (TERM, a reload, `--max-requests`, a timed-out request), so a readiness probe takes
//! a draining worker out of rotation before its connections close. HTTP/1 connections ask
//! [`answer_first`] before the static mounts; HTTP/2 streams ask [`response`].
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use ferrule_proto::http1::{BodyKind, RequestHead};

use super::conn::Stream;
use super::statics::{self, Answered};
use super::Worker;
use crate::net::ConnInfo;
use crate::statics::{Body, Response};

/// Set once the worker stops taking new connections (it is draining).
static DRAINING: AtomicBool = AtomicBool::new(false);

/// The worker is leaving: the health path answers 503 from now on.
pub fn drain() {
    DRAINING.store(true, Ordering::Release);
}

/// The answer to `head` when it asks for the health path (GET or HEAD, any query); None
/// otherwise. `stopping`: the connection has seen the worker's stop.
#[must_use]
pub fn response(worker: &Worker, head: &RequestHead, stopping: bool) -> Option<Response> {
    let path = worker.health_path.as_deref()?;
    let target = head.target();
    let asked = target.split(|&c| c == b'?').next().unwrap_or_default();
    let method = head.method();
    if asked != path.as_bytes() || (method != b"GET" && method != b"HEAD") {
        return None;
    }
    let (status, text): (u16, &'static [u8]) = if stopping || DRAINING.load(Ordering::Acquire) {
        (503, b"draining\n")
    } else {
        (200, b"ok\n")
    };
    let headers = vec![
        ("Content-Type", "text/plain; charset=utf-8".to_owned()),
        ("Cache-Control", "no-store".to_owned()),
    ];
    Some(Response {
        status,
        headers,
        content_length: Some(text.len() as u64),
        body: if method == b"HEAD" {
            Body::Empty
        } else {
            Body::Bytes(Bytes::from_static(text))
        },
    })
}

/// On an HTTP/1 connection: answers the health path, else asks the static mounts (if any).
pub(super) async fn answer_first(
    worker: &Worker,
    stream: &Stream,
    info: &ConnInfo,
    head: &RequestHead,
    stopping: bool,
) -> Answered {
    let Some(resp) = response(worker, head, stopping) else {
        return match &worker.statics {
            Some(mounts) => statics::answer(worker, mounts, stream, info, head).await,
            None => Answered::Pass,
        };
    };
    let started = crate::access::wanted().then(Instant::now);
    let keep_alive = head.keep_alive
        && head.body == BodyKind::Empty
        && !worker.keep_alive.is_zero()
        && !stopping;
    let (status, len) = (resp.status, resp.body_len());
    let sent = statics::send(worker, stream, head.version, keep_alive, resp).await;
    if let Some(started) = started {
        let n = if matches!(sent, statics::Sent::Failed) {
            0
        } else {
            len
        };
        statics::log_access(info, head, status, n, started);
    }
    sent.answered(keep_alive)
}
