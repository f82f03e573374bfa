//! HTTP/2: connections served by the `h2` codec on the worker's edge thread (over TLS when
//! ALPN chose `h2`, or plain with prior knowledge, h2c). Each stream is one WSGI call, on an
//! app thread (streams of one connection run concurrently) or, inline (`--threads 1`), on the
//! worker's loop in turn, while the edge thread goes on with the connection's frames. Flow
//! control bounds what is buffered both ways (see `body` and `sink`).
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::server::Builder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::conn::{Stream, Upgrade};
use super::edge::{Arrived, Handoff, Prefixed};
use super::Worker;
use crate::config::Http2Settings;
use crate::log::{debug, warning};
use crate::net::ConnInfo;
use ferrule_proto::h2c;

mod body;
mod inline;
mod sink;
mod stream;

pub use inline::{inline_loop, Inline};

/// The client's first bytes on an HTTP/2 connection (RFC 9113 section 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Streams a client may reset before the server accepts them, before the connection is closed
/// (rapid reset, CVE-2023-44487).
const MAX_PENDING_RESETS: usize = 20;
/// Streams the server may reset for a client's errors before it closes the connection.
const MAX_LOCAL_RESETS: usize = 1024;
/// Response bytes h2 buffers per stream beyond what the window lets out.
const MAX_SEND_BUFFER: usize = 64 * 1024;

pub(super) enum Sniffed {
    Http1,
    Http2,
    Closed,
}

/// Reads enough of a new plain connection to tell the HTTP/2 preface (prior knowledge, h2c)
/// from an HTTP/1 request: only a client whose first bytes are the preface's is read further.
pub(super) async fn sniff_preface(
    worker: &Worker,
    stream: &mut Stream,
    rbuf: &mut BytesMut,
) -> Sniffed {
    let preface = PREFACE;
    loop {
        let n = rbuf.len().min(preface.len());
        if rbuf.get(..n) != preface.get(..n) {
            return Sniffed::Http1;
        }
        if n == preface.len() {
            return Sniffed::Http2;
        }
        if !stream.fill(rbuf, worker.client_timeout).await {
            // An empty connection, or a partial preface: HTTP/1 answers it (or times it out).
            return if rbuf.is_empty() {
                Sniffed::Closed
            } else {
                Sniffed::Http1
            };
        }
    }
}

/// Serves a plain connection whose first bytes (in `first`) are the HTTP/2 preface: the
/// connection moves to the edge thread; this task keeps it counted as active until it ends.
pub(super) async fn serve_plain(
    worker: &Arc<Worker>,
    stream: Stream,
    info: ConnInfo,
    stop: watch::Receiver<bool>,
    first: Bytes,
) {
    to_edge(worker, stream, info, stop, first, None).await;
}

/// Serves a connection upgraded from HTTP/1.1 (`Upgrade: h2c`, after `101 Switching
/// Protocols`): on the edge thread, the client's preface and SETTINGS are read, the upgrading
/// request goes in behind them as stream 1, and the connection is served as HTTP/2.
pub(super) async fn serve_upgraded(
    worker: &Arc<Worker>,
    stream: Stream,
    info: ConnInfo,
    stop: watch::Receiver<bool>,
    up: Upgrade,
) {
    to_edge(
        worker,
        stream,
        info,
        stop,
        up.rest.freeze(),
        Some(up.stream_one),
    )
    .await;
}

/// Moves a plain connection to the edge thread and serves it there as HTTP/2 (`stream_one`:
/// an upgrade's request, spliced in behind the client's preface); waits for its end.
async fn to_edge(
    worker: &Arc<Worker>,
    stream: Stream,
    mut info: ConnInfo,
    stop: watch::Receiver<bool>,
    first: Bytes,
    stream_one: Option<Vec<u8>>,
) {
    let Some(edge) = worker.edge.handle() else {
        return;
    };
    let conn = match Handoff::take(stream) {
        Ok(c) => c,
        Err(e) => {
            debug!("cannot serve {} over HTTP/2: {e}", info.peer_label());
            return;
        }
    };
    // The watchdog never writes on an HTTP/2 connection (its streams share it).
    info.fd = -1;
    let w = Arc::clone(worker);
    let served = edge.spawn(async move {
        match Arrived::new(conn, first) {
            Ok(Arrived::Tcp(io)) => spliced(w, io, info, stop, stream_one).await,
            Ok(Arrived::Unix(io)) => spliced(w, io, info, stop, stream_one).await,
            Err(e) => debug!("cannot serve {} over HTTP/2: {e}", info.peer_label()),
        }
    });
    let _ = served.await;
}

/// Serves `io` on the edge thread, after splicing in an upgrade's stream 1 if there is one.
async fn spliced<S: AsyncRead + AsyncWrite + Unpin>(
    worker: Arc<Worker>,
    io: Prefixed<S>,
    info: ConnInfo,
    stop: watch::Receiver<bool>,
    stream_one: Option<Vec<u8>>,
) {
    let io = match stream_one {
        None => io,
        Some(frame) => {
            let max_frame = worker.http2.map_or(16_384, |s| s.max_frame_size as usize);
            match splice(io, &frame, max_frame, worker.client_timeout).await {
                Some(io) => io,
                None => return,
            }
        }
    };
    serve(worker, io, info, stop).await;
}

/// Reads the client's preface and first SETTINGS frame, and puts stream 1's HEADERS after
/// them. None if the client sent something else or nothing in time.
async fn splice<S: AsyncRead + Unpin>(
    mut io: Prefixed<S>,
    stream_one: &[u8],
    max_frame: usize,
    timeout: Duration,
) -> Option<Prefixed<S>> {
    use tokio::io::AsyncReadExt;
    let mut buf = BytesMut::with_capacity(256);
    let end = loop {
        match h2c::settings_end(&buf, max_frame) {
            Ok(Some(end)) => break end,
            Ok(None) => {}
            Err(_) => return None,
        }
        match tokio::time::timeout(timeout, io.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return None,
        }
    };
    let rest = buf.split_off(end);
    buf.extend_from_slice(stream_one);
    buf.extend_from_slice(&rest);
    Some(Prefixed::new(buf.freeze(), io.into_inner()))
}

fn builder(s: &Http2Settings) -> Builder {
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(s.max_concurrent_streams)
        .initial_window_size(s.initial_stream_window)
        .initial_connection_window_size(s.initial_connection_window)
        .max_frame_size(s.max_frame_size)
        .max_header_list_size(s.max_header_list_size)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
        .max_local_error_reset_streams(Some(MAX_LOCAL_RESETS));
    b
}

/// Serves an HTTP/2 connection on the edge thread until it closes; the worker stopping sends
/// GOAWAY and lets the streams in flight finish.
pub async fn serve<S>(worker: Arc<Worker>, io: S, info: ConnInfo, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(settings) = worker.http2 else {
        return;
    };
    worker.h2_inline.start_edge();
    let handshake = builder(&settings).handshake::<_, Bytes>(io);
    let mut conn = match tokio::time::timeout(worker.client_timeout, handshake).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            debug!("HTTP/2 handshake with {} failed: {e}", info.peer_label());
            return;
        }
        Err(_) => {
            debug!("HTTP/2 handshake with {} timed out", info.peer_label());
            return;
        }
    };
    let mut pinger = settings
        .keep_alive_interval
        .and_then(|every| conn.ping_pong().map(|p| (p, every)));
    let mut stopping = *stop.borrow();
    if stopping {
        conn.graceful_shutdown();
    }
    // The request bodies the connection's streams hold in memory (see `body::Held`).
    let held = Arc::new(body::Held::default());
    loop {
        let ping = async {
            match pinger.as_mut() {
                Some((p, every)) => keep_alive(p, *every, settings.keep_alive_timeout).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            accepted = conn.accept() => match accepted {
                Some(Ok((request, respond))) => {
                    let held = Arc::clone(&held);
                    tokio::spawn(stream::serve(Arc::clone(&worker), info.clone(), request, respond, held));
                }
                Some(Err(e)) => {
                    if e.is_library() {
                        // The client broke the protocol or a limit (rapid reset, floods):
                        // GOAWAY went out with the reason.
                        warning!("HTTP/2 connection from {} closed: {e}", info.peer_label());
                    } else {
                        debug!("HTTP/2 connection from {} ended: {e}", info.peer_label());
                    }
                    return;
                }
                None => return,
            },
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() && *stop.borrow() {
                    conn.graceful_shutdown();
                }
            }
            () = ping => {
                debug!("HTTP/2 connection from {}: no answer to PING within --http2-keep-alive-timeout; closing", info.peer_label());
                conn.abrupt_shutdown(h2::Reason::NO_ERROR);
                pinger = None;
            }
        }
    }
}

/// Waits `every`, sends a PING and waits for its answer; returns only when none came within
/// `timeout`.
async fn keep_alive(p: &mut h2::PingPong, every: Duration, timeout: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match tokio::time::timeout(timeout, p.ping(h2::Ping::opaque())).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => std::future::pending::<()>().await,
            Err(_) => return,
        }
    }
}
