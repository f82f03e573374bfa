//! Connections from a front server: uwsgi and SCGI (one request per connection) and FastCGI
//! (records, with FCGI_KEEP_CONN reuse). The codecs are in `ferrule_proto`; this reads their
//! heads off the socket and hands each request to the WSGI bridge like an HTTP one.
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use ferrule_proto::fastcgi::{
    encode_end_request, FcgiRequest, HeadDecoder, HeadEvent, ProtocolStatus, Role,
};
use ferrule_proto::http1::{BodyKind, Version};
use ferrule_proto::{scgi, uwsgi, GatewayLimits};
use tokio::sync::watch;

use super::body::BodyReader;
use super::buffer::{self, Prepared, SpooledBody};
use super::conn::{linger, refuse, Stream, READ_BUF};
use super::exchange::{on_pool, on_side, start, until_done, Finished, Ready};
use super::sink::{StreamSink, Wire};
use super::statics::Asked;
use super::Worker;
use crate::config::Protocol;
use crate::log::{debug, error, warning};
use crate::net::{io as sio, ConnInfo};
use crate::wsgi::cgi::CgiRequest;
use crate::wsgi::Request;

/// How long an idle FastCGI connection kept by the front server (`fastcgi_keep_conn on`) stays
/// open; nginx notices a closed one and opens another.
const FASTCGI_IDLE: std::time::Duration = std::time::Duration::from_mins(1);

/// Serves the one request of a uwsgi or SCGI connection.
pub(super) async fn serve_one(
    worker: &Arc<Worker>,
    mut stream: Stream,
    info: ConnInfo,
    proto: Protocol,
) {
    let limits = GatewayLimits::default();
    let mut rbuf = BytesMut::with_capacity(READ_BUF);
    let parsed = loop {
        let parsed = match proto {
            Protocol::Uwsgi => uwsgi::parse_packet(&mut rbuf, &limits)
                .map(|p| p.map(|p| (p.vars, p.content_length))),
            _ => {
                scgi::parse_head(&mut rbuf, &limits).map(|h| h.map(|h| (h.vars, h.content_length)))
            }
        };
        match parsed {
            Ok(Some(p)) => break p,
            Ok(None) => {
                if !stream.fill(&mut rbuf, worker.client_timeout).await {
                    return;
                }
            }
            Err(e) => {
                if proto == Protocol::Uwsgi && uwsgi::looks_like_http(&rbuf) {
                    error!(
                        "an HTTP request arrived on the uwsgi socket from {}: point the front \
                         server's uwsgi_pass (not proxy_pass) here, or bind an http:// address \
                         for HTTP clients",
                        info.peer_label()
                    );
                } else {
                    warning!(
                        "closing a {} connection from {}: {e}",
                        proto.scheme(),
                        info.peer_label()
                    );
                }
                return;
            }
        }
    };
    let (vars, content_length) = parsed;
    let cgi = CgiRequest {
        vars,
        content_length,
        length_always_sent: proto == Protocol::Scgi,
    };
    let path = cgi
        .vars
        .get(b"REQUEST_URI")
        .or_else(|| cgi.vars.get(b"PATH_INFO"))
        .unwrap_or(b"/");
    // When the body began, for the access line of a body refused or too slow.
    let began = (content_length > 0 && crate::access::wanted()).then(std::time::Instant::now);
    let (spooled, streams) =
        match buffer::prepare_gateway(worker, &mut stream, content_length, path, &mut rbuf).await {
            Prepared::InBuffer { .. } => (None, false),
            Prepared::Streams { .. } => (None, true),
            Prepared::Spooled(body) => (Some(body), false),
            Prepared::Refused(e) => {
                debug!("refused request body from {}: {e}", info.peer_label());
                let status = e.status();
                refuse(worker, &mut stream, status, &info, Asked::Cgi(&cgi), began).await;
                return;
            }
            Prepared::TooSlow => {
                debug!(
                    "{} sent a request body slower than --body-min-rate; 408",
                    info.peer_label()
                );
                refuse(worker, &mut stream, 408, &info, Asked::Cgi(&cgi), began).await;
                return;
            }
            Prepared::Failed => {
                refuse(worker, &mut stream, 500, &info, Asked::Cgi(&cgi), began).await;
                return;
            }
            Prepared::Closed => return,
        };
    let fd = stream.fd();
    let reader = BodyReader::new(
        fd,
        rbuf,
        body_kind(content_length),
        false,
        &worker.app.limits,
        worker.client_timeout,
    );
    let request = Request::Cgi(cgi);
    // One request per connection, its end marked by the close (or a Content-Length).
    let sink = Box::new(StreamSink::new(worker.sink_settings(
        fd,
        Wire::Http1(Version::Http10),
        false,
    )));
    let side = streams && on_side(worker, &reader);
    if let Some(mut finished) =
        exchange(worker, &stream, &info, request, sink, reader, spooled, side).await
    {
        worker.request_done();
        if !stream
            .send_rest(&mut finished.sink, worker.client_timeout)
            .await
        {
            return;
        }
    }
    linger(&mut stream).await;
}

/// Serves FastCGI requests on one connection, one at a time, while the front server keeps it.
pub(super) async fn serve_fastcgi(
    worker: &Arc<Worker>,
    mut stream: Stream,
    info: ConnInfo,
    mut stop: watch::Receiver<bool>,
) {
    let mut rbuf = BytesMut::with_capacity(READ_BUF);
    let mut dec = HeadDecoder::new(GatewayLimits::default());
    // One sink for the connection's life, reset for each request (its buffers kept).
    let mut sink: Option<Box<StreamSink>> = None;
    loop {
        let Some(req) =
            read_fastcgi_head(worker, &mut stream, &mut rbuf, &mut dec, &info, &mut stop).await
        else {
            return;
        };
        let fd = stream.fd();
        if req.role != Role::Responder {
            let mut out = Vec::new();
            encode_end_request(req.request_id, 0, ProtocolStatus::UnknownRole, &mut out);
            if sio::write_all(fd, &[&out], 0, worker.client_timeout).is_err() || !req.keep_conn {
                return;
            }
            continue;
        }
        let keep_conn = req.keep_conn;
        let reader = BodyReader::fastcgi(
            fd,
            std::mem::take(&mut rbuf),
            req.request_id,
            worker.app.limits.request_body,
            worker.client_timeout,
        );
        let request = Request::Cgi(CgiRequest {
            vars: req.vars,
            content_length: req.content_length,
            length_always_sent: false,
        });
        let wire = Wire::FastCgi(req.request_id);
        let fresh = match sink.take() {
            Some(mut s) => {
                s.reset(worker.sink_settings(fd, wire, keep_conn));
                s
            }
            None => Box::new(StreamSink::new(worker.sink_settings(fd, wire, keep_conn))),
        };
        // FastCGI bodies always stream: STDIN not all arrived waits for the front server.
        let side = on_side(worker, &reader);
        let Some(finished) =
            exchange(worker, &stream, &info, request, fresh, reader, None, side).await
        else {
            return;
        };
        worker.request_done();
        rbuf = finished.rbuf;
        let keep_alive = finished.keep_alive;
        sink = Some(finished.sink);
        if !keep_conn || !keep_alive || *stop.borrow() {
            linger(&mut stream).await;
            return;
        }
    }
}

/// Reads records until one request's head is complete, answering management records and
/// refusing other request ids on the way. None: close the connection.
async fn read_fastcgi_head(
    worker: &Worker,
    stream: &mut Stream,
    rbuf: &mut BytesMut,
    dec: &mut HeadDecoder,
    info: &ConnInfo,
    stop: &mut watch::Receiver<bool>,
) -> Option<FcgiRequest> {
    let fd = stream.fd();
    loop {
        let mut reply = Vec::new();
        let (used, request) = match dec.decode(rbuf) {
            Ok((0, None)) => (0, None),
            Ok((n, None)) => (n, None),
            Ok((n, Some(ev))) => match ev {
                HeadEvent::Request(r) => (n, Some(r)),
                HeadEvent::Management(rec) | HeadEvent::OtherRequest(rec) => {
                    if let Err(e) = ferrule_proto::fastcgi::answer_other(&rec, &mut reply) {
                        warning!(
                            "closing a FastCGI connection from {}: {e}",
                            info.peer_label()
                        );
                        return None;
                    }
                    (n, None)
                }
                HeadEvent::Aborted { request_id } => {
                    encode_end_request(request_id, 0, ProtocolStatus::RequestComplete, &mut reply);
                    (n, None)
                }
            },
            Err(e) => {
                warning!(
                    "closing a FastCGI connection from {}: {e}",
                    info.peer_label()
                );
                return None;
            }
        };
        rbuf.advance(used);
        if !reply.is_empty() && sio::write_all(fd, &[&reply], 0, worker.client_timeout).is_err() {
            return None;
        }
        if request.is_some() {
            return request;
        }
        if used > 0 {
            continue;
        }
        // Between requests the front server may keep the connection idle for long; a stopping
        // worker closes idle ones (nginx retries a request on a closed kept connection).
        let idle = rbuf.is_empty() && !dec.in_request();
        if idle && *stop.borrow() {
            return None;
        }
        let timeout = if idle {
            FASTCGI_IDLE
        } else {
            worker.client_timeout
        };
        tokio::select! {
            r = tokio::time::timeout(timeout, stream.read_buf(rbuf)) => match r {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            },
            _ = stop.changed(), if idle => return None,
        }
    }
}

/// The body a front server announces: CONTENT_LENGTH bytes after the head.
fn body_kind(content_length: u64) -> BodyKind {
    if content_length == 0 {
        BodyKind::Empty
    } else {
        BodyKind::Length(content_length)
    }
}

/// Runs one request through the app (inline, on an app thread, or on a side thread when
/// `side`) until its response is done.
#[expect(
    clippy::too_many_arguments,
    reason = "one request's parts, passed on whole"
)]
async fn exchange(
    worker: &Arc<Worker>,
    stream: &Stream,
    info: &ConnInfo,
    request: Request,
    sink: Box<StreamSink>,
    reader: BodyReader,
    spooled: Option<SpooledBody>,
    side: bool,
) -> Option<Finished> {
    let turn = if worker.pool.is_none() && !side {
        start(worker, info, request, sink, reader, spooled, None)
    } else {
        let ready = Ready::new(info, request, sink, reader, spooled);
        on_pool(worker, ready).await?
    };
    until_done(worker, stream, info, turn).await
}
