//! `--static` on HTTP/1 connections: right after a request head is read, the static mounts
//! (`crate::statics`) decide; an answer is encoded with the HTTP/1 response head and sent from
//! the event loop (a small file with its head in one write, a larger one with sendfile as the
//! client reads), and the connection goes on to its next request. The app never sees it. On
//! the inline worker a whole answer on a connection that stays open is left in the outbox
//! (`outbox.rs`) as the app's responses are, to leave with the others the loop served.
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Instant;

use ferrule_proto::http1::{response as enc, BodyKind, RequestHead, Version};

use super::conn::Stream;
use super::Worker;
use crate::access;
use crate::net::{date, io as sio, ConnInfo};
use crate::statics::{Body, Decision, Request, Response, Statics};
use crate::wsgi::HeadOf;

/// Largest file range read into the response head's buffer and sent with it in one write;
/// larger ones go with sendfile(2) after the head. Not configurable.
const SMALL_FILE: u64 = 16 * 1024;

/// What became of a request the static mounts were asked about.
pub(super) enum Answered {
    /// Not static: the app's.
    Pass,
    /// Answered; the connection stays open for the next request. The bytes, if any, are the
    /// whole answer, still to be written: for the outbox.
    KeepAlive(Option<Vec<u8>>),
    /// Answered; the connection is to close. A request body, if any, was not read.
    Close,
    /// The connection failed (or the file shrank) while the answer was sent.
    Failed,
}

/// Asks the static mounts about `head` and sends their answer, if any.
pub(super) async fn answer(
    worker: &Worker,
    statics: &Statics,
    stream: &Stream,
    info: &ConnInfo,
    head: &RequestHead,
) -> Answered {
    let started = access::wanted().then(Instant::now);
    let mut req = Request::new(head.method(), head.target());
    for (name, value) in head.fields() {
        req.field(name, value);
    }
    let resp = match statics.decide(&req) {
        Decision::Pass => return Answered::Pass,
        Decision::Respond(r) => r,
    };
    // The body of a request answered here is never read: the connection closes after it.
    let keep_alive =
        head.keep_alive && head.body == BodyKind::Empty && !worker.keep_alive.is_zero();
    let status = resp.status;
    let body_len = resp.body_len();
    let sent = send(worker, stream, head.version, keep_alive, resp).await;
    if let Some(started) = started {
        let n = if matches!(sent, Sent::Failed) {
            0
        } else {
            body_len
        };
        log_access(info, head, status, n, started);
    }
    sent.answered(keep_alive)
}

/// What [`send`] did with an answer.
pub(super) enum Sent {
    /// Written (a file's tail too).
    Written,
    /// Encoded whole and not written: the inline worker's outbox is to write it.
    Left(Vec<u8>),
    /// The connection failed, or the file ended early.
    Failed,
}

impl Sent {
    /// What became of the request, its answer sent this way.
    pub(super) fn answered(self, keep_alive: bool) -> Answered {
        match (self, keep_alive) {
            (Self::Failed, _) => Answered::Failed,
            (Self::Written, true) => Answered::KeepAlive(None),
            (Self::Left(bytes), true) => Answered::KeepAlive(Some(bytes)),
            (Self::Written | Self::Left(_), false) => Answered::Close,
        }
    }
}

/// Encodes and sends `resp`; on the inline worker, when the connection stays open and the
/// answer fits one buffer, leaves it to the outbox instead.
pub(super) async fn send(
    worker: &Worker,
    stream: &Stream,
    version: Version,
    keep_alive: bool,
    resp: Response,
) -> Sent {
    let reason = enc::reason(resp.status);
    let mut status = Vec::with_capacity(4 + reason.len());
    status.extend_from_slice(itoa::Buffer::new().format(resp.status).as_bytes());
    status.push(b' ');
    status.extend_from_slice(reason.as_bytes());
    let mut fields = Vec::with_capacity(320);
    for (name, value) in &resp.headers {
        enc::push_header(&mut fields, name.as_bytes(), value.as_bytes());
    }
    let connection = match (version, keep_alive) {
        (Version::Http11, false) => enc::Connection::Close,
        (Version::Http10, true) => enc::Connection::KeepAlive,
        _ => enc::Connection::Default,
    };
    let small = match &resp.body {
        Body::File { len, .. } => *len <= SMALL_FILE,
        _ => true,
    };
    let out = date::with(|d| {
        let head = enc::ResponseHead {
            line: enc::StatusLine::Http11,
            status: &status,
            fields: &fields,
            server: worker.app.server_header.then_some(&b"ferrule"[..]),
            date: Some(d),
            content_length: resp.content_length,
            framing: match &resp.body {
                Body::Empty => enc::Framing::NoBody,
                _ => enc::Framing::Length(resp.body_len()),
            },
            connection,
        };
        let room = if small { resp.body_len() as usize } else { 0 };
        let mut out = sio::take_buf(head.max_len() + room);
        head.encode(&mut out);
        out
    });
    let timeout = worker.client_timeout;
    // The outbox is written by the inline worker's loop before it waits (`server::run`).
    let leave = keep_alive && worker.pool.is_none();
    match resp.body {
        Body::Empty => finish(stream, out, leave, timeout).await,
        Body::Bytes(bytes) => {
            let mut out = out;
            out.extend_from_slice(&bytes);
            finish(stream, out, leave, timeout).await
        }
        Body::File { file, offset, len } if small => {
            let mut out = out;
            let start = out.len();
            out.resize(start + len as usize, 0);
            let read = out
                .get_mut(start..)
                .is_some_and(|dst| file.read_exact_at(dst, offset).is_ok());
            if !read {
                sio::give_back(out);
                return Sent::Failed;
            }
            finish(stream, out, leave, timeout).await
        }
        Body::File { file, offset, len } => {
            if !finish_write(stream, out, timeout).await {
                return Sent::Failed;
            }
            // The tail owns a descriptor: the cache's shared file gets a duplicate.
            let owned = match Arc::try_unwrap(file) {
                Ok(f) => f,
                Err(shared) => match shared.try_clone() {
                    Ok(f) => f,
                    Err(_) => return Sent::Failed,
                },
            };
            sio::set_notsent_lowat(stream.fd(), Some(sio::FILE_NOTSENT_LOWAT));
            let tail = sio::FileTail {
                file: owned.into(),
                offset,
                count: len,
            };
            if stream.send_tail(tail, timeout).await {
                Sent::Written
            } else {
                Sent::Failed
            }
        }
    }
}

/// Leaves `out` for the outbox, or writes it now.
async fn finish(stream: &Stream, out: Vec<u8>, leave: bool, timeout: std::time::Duration) -> Sent {
    if leave {
        Sent::Left(out)
    } else if finish_write(stream, out, timeout).await {
        Sent::Written
    } else {
        Sent::Failed
    }
}

/// Writes `out` whole and keeps the buffer for the next response.
async fn finish_write(stream: &Stream, out: Vec<u8>, timeout: std::time::Duration) -> bool {
    let written = stream.write_all(&out, timeout).await;
    sio::give_back(out);
    written
}

/// The access log's line for an answer the server made itself (a static file, the health
/// path), as for the app's responses.
pub(super) fn log_access(
    info: &ConnInfo,
    head: &RequestHead,
    code: u16,
    sent: u64,
    started: Instant,
) {
    access::write(&access::Record {
        remote: access::remote(|| {
            info.peer
                .map_or_else(|| "-".to_owned(), |p| p.ip().to_string())
        }),
        method: head.method(),
        target: head.target(),
        version: head.version.as_str().as_bytes(),
        fields: head,
        response_headers: b"",
        status: code,
        sent,
        elapsed: started.elapsed(),
        request_id: None,
    });
}

/// What the server read of a request it refused, for its access line.
#[derive(Clone, Copy)]
pub(crate) enum Asked<'a> {
    /// The bytes of a head as they came (nothing of them need be valid): the request line
    /// and the header lines, as far as they came whole.
    Raw(&'a [u8]),
    /// A parsed HTTP/1 head.
    Head(&'a RequestHead),
    /// A front server's request.
    Cgi(&'a crate::wsgi::cgi::CgiRequest),
}

/// The access log's line for a request the server refused before the app saw it (a head
/// that did not parse, was too large or came too slowly; a body too large or too slow).
/// `began`: when the request began (its first byte), if known.
pub(crate) fn log_refused(
    info: &ConnInfo,
    asked: Asked<'_>,
    code: u16,
    sent: u64,
    began: Option<Instant>,
) {
    if !access::wanted() {
        return;
    }
    let partial;
    let target;
    let mut record = match asked {
        Asked::Raw(buf) => {
            partial = access::Partial::parse(buf);
            partial.record(access::remote(|| {
                info.peer
                    .map_or_else(|| "-".to_owned(), |p| p.ip().to_string())
            }))
        }
        Asked::Head(head) => HeadOf::Http(head).access_record(info, head.target(), b""),
        Asked::Cgi(req) => {
            target = req.target();
            HeadOf::Cgi(req).access_record(info, &target, b"")
        }
    };
    record.status = code;
    record.sent = sent;
    record.elapsed = began.map_or(std::time::Duration::ZERO, |b| b.elapsed());
    access::write(&record);
}
