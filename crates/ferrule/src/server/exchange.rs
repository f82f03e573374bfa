//! A request handed to the WSGI bridge and taken back, for every byte-stream transport: run
//! inline or on an app thread, waited on while its response is congested, then settled (the
//! unread body drained, FastCGI's end of the request) with the sink and the read buffer back.
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use bytes::BytesMut;

use super::body::{BodyReader, DRAIN_LIMIT};
use super::buffer::SpooledBody;
use super::conn::Stream;
use super::fcgi_out;
use super::handback::Handback;
use super::outbox;
use super::sink::StreamSink;
use super::Worker;
use crate::net::{io as sio, ConnInfo};
use crate::wsgi::{self, sink::BodySource, sink::Sink, threads::Job};

/// A request's response, done with the app: the transport's sink and read buffer back.
pub(super) struct Finished {
    pub keep_alive: bool,
    pub sink: Box<StreamSink>,
    pub rbuf: BytesMut,
    /// The response's last bytes were left in the outbox by an app thread, with this ticket
    /// (`outbox::waiting`).
    pub queued: Option<u64>,
}

impl Finished {
    /// The connection stays open after this response and no file tail is left to send: its
    /// last bytes, if deferred, may wait in the outbox.
    pub(super) fn may_queue(&self, worker: &Worker) -> bool {
        self.keep_alive && !worker.keep_alive.is_zero() && self.sink.tail.is_none()
    }

    /// An app thread's: leaves the response's deferred last bytes, if they may wait, in the
    /// outbox (`outbox::push_aged`, aged from when the app began the request), the
    /// connection's `task` to wake if they get stuck there.
    fn queue_deferred(&mut self, worker: &Worker, task: &Waker) {
        let Some(began) = self.sink.began() else {
            return;
        };
        if !self.may_queue(worker) {
            return;
        }
        if let Some(bytes) = self.sink.deferred.take() {
            self.queued = Some(outbox::push_aged(self.sink.fd(), bytes, task, began));
        }
    }
}

impl Turn {
    /// The response went out whole and the connection stays open: nothing for the
    /// connection's task to do before the client's next request (none was read with this
    /// one: a pipelined request is for the task to start at once).
    fn is_quiet(&self, worker: &Worker) -> bool {
        matches!(self, Turn::Done(f) if f.may_queue(worker)
            && f.sink.deferred.is_none()
            && f.rbuf.is_empty())
    }
}

/// Where a request stands after a turn in the bridge.
pub(super) enum Turn {
    Done(Finished),
    /// The response waits for the client; the read buffer is the server's own when the
    /// request had no body (else the body source holds it).
    Waiting(Box<wsgi::Exchange>, Option<BytesMut>),
    /// The exchange could not run: close the connection.
    Failed,
}

/// Runs a request through the bridge on this thread (the app thread, or the inline loop's).
pub(super) fn start(
    worker: &Worker,
    info: &ConnInfo,
    request: wsgi::Request,
    sink: Box<StreamSink>,
    mut reader: BodyReader,
    spooled: Option<SpooledBody>,
    queued: Option<Instant>,
) -> Turn {
    // A request without a body gets the shared empty `wsgi.input`, a spooled one reads its
    // file; the read buffer (what followed the head, or the spooled body) stays here.
    let (body, rbuf): (Option<Box<dyn BodySource>>, _) = if let Some(s) = spooled {
        let body: Option<Box<dyn BodySource>> = (!s.is_done()).then(|| Box::new(s) as _);
        (body, Some(std::mem::take(&mut reader.rbuf)))
    } else if reader.is_done() {
        (None, Some(std::mem::take(&mut reader.rbuf)))
    } else {
        (Some(Box::new(reader)), None)
    };
    let sink: Box<dyn Sink> = match &worker.compress {
        Some(c) => super::compress::wrap(c, request.accept_encoding(), sink),
        None => sink,
    };
    let served = wsgi::serve(&worker.app, info, request, sink, body, queued);
    turn(worker, info, served, rbuf)
}

fn turn(worker: &Worker, info: &ConnInfo, served: wsgi::Served, rbuf: Option<BytesMut>) -> Turn {
    match served {
        wsgi::Served::Waiting(exchange) => Turn::Waiting(exchange, rbuf),
        wsgi::Served::Done(outcome) => settle(worker, info, outcome, rbuf),
    }
}

/// The end of a request, once the bridge is done with it: the unread body is drained (or the
/// connection is to close), FastCGI's end of the request.
fn settle(
    worker: &Worker,
    info: &ConnInfo,
    outcome: wsgi::Outcome,
    rbuf: Option<BytesMut>,
) -> Turn {
    let Some(mut sink) = outcome
        .sink
        .and_then(|s| s.into_any().downcast::<StreamSink>().ok())
    else {
        return Turn::Failed;
    };
    let mut keep_alive = outcome.keep_alive;
    let reader = outcome
        .body
        .and_then(|b| b.into_any().downcast::<BodyReader>().ok());
    let body_left = reader.as_ref().is_some_and(|r| !r.is_done());
    if let Some(d) = sink.deferred.take_if(|_| body_left) {
        // The client may wait for the response before it sends the rest of the body (or
        // gives up on it): the response goes out before the drain. (Deferred: the inline
        // worker, which does not wait for the socket here.)
        match sio::try_write_parts(info.fd, &[&d]) {
            Ok(n) if n == d.len() => {}
            Ok(n) => {
                // The client does not read: the rest goes from the connection's task, and the
                // connection closes after it instead of draining the body.
                keep_alive = false;
                sink.deferred = d.get(n..).map(<[u8]>::to_vec);
            }
            Err(_) => keep_alive = false,
        }
        sio::give_back(d);
    }
    let rbuf = match (reader, rbuf) {
        (Some(mut r), _) => {
            if keep_alive && !r.is_done() {
                // Waiting for the client with the GIL let go (an app or side thread holds it
                // between a request's end and its next job).
                keep_alive = if r.arrived() {
                    r.drain(DRAIN_LIMIT)
                } else {
                    wsgi::threads::without_gil(|| r.drain(DRAIN_LIMIT))
                };
            }
            std::mem::take(&mut r.rbuf)
        }
        (None, Some(rbuf)) => rbuf,
        (None, None) => {
            keep_alive = false;
            BytesMut::new()
        }
    };
    if let Some(id) = sink.fastcgi_id() {
        // The end of STDOUT and END_REQUEST; after a failure mid-response the connection just
        // closes, so that the front server sees the response cut short.
        if sink.failed() || !fcgi_out::end_request(info.fd, id, worker.client_timeout) {
            keep_alive = false;
        }
    }
    Turn::Done(Finished {
        keep_alive,
        sink,
        rbuf,
        queued: None,
    })
}

/// A request ready for an app thread: what `start` takes besides the worker.
pub(super) struct Ready {
    info: ConnInfo,
    request: wsgi::Request,
    sink: Box<StreamSink>,
    reader: BodyReader,
    spooled: Option<SpooledBody>,
}

impl Ready {
    pub(super) fn new(
        info: &ConnInfo,
        request: wsgi::Request,
        sink: Box<StreamSink>,
        reader: BodyReader,
        spooled: Option<SpooledBody>,
    ) -> Self {
        Self {
            info: info.clone(),
            request,
            sink,
            reader,
            spooled,
        }
    }

    /// The request as a job for an app thread, which gives its turn to `done`. It waits for
    /// an app thread from now (`--max-queue-wait`).
    fn job(self, worker: &Arc<Worker>, done: impl FnOnce(&Worker, Turn) + Send + 'static) -> Job {
        let w = Arc::clone(worker);
        let queued = Some(Instant::now());
        let waiting = crate::metrics::queued();
        Box::new(move || {
            drop(waiting);
            let r = self;
            let turn = start(&w, &r.info, r.request, r.sink, r.reader, r.spooled, queued);
            done(&w, turn);
        })
    }
}

/// Whether the inline worker runs a request whose body streams (`reader`) on a side thread
/// (`side.rs`): the app would wait on the loop for body bytes still to come.
pub(super) fn on_side(worker: &Worker, reader: &BodyReader) -> bool {
    worker.pool.is_none() && !reader.arrived()
}

/// Runs a request on an app thread (`--threads` > 1), or on a side thread of the inline
/// worker (`side.rs`: a body still to come). None: the worker could not run it.
pub(super) async fn on_pool(worker: &Arc<Worker>, mut ready: Ready) -> Option<Turn> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let inline = worker.pool.is_none();
    if inline {
        ready.sink.off_loop();
    }
    let job = ready.job(worker, move |_, turn| {
        let _ = tx.send(turn);
    });
    let sent = if inline {
        worker.side.send(job).await
    } else {
        worker.send_job(job).await
    };
    if !sent {
        return None;
    }
    rx.await.ok()
}

/// Runs an HTTP/1 request on an app thread, its result left in `back` (see `handback`); the
/// response's last bytes, when the sink deferred them, go to the outbox (`outbox::push_aged`).
/// False: the worker could not run it.
pub(super) async fn on_pool_quiet(
    worker: &Arc<Worker>,
    ready: Ready,
    back: &Arc<Handback>,
) -> bool {
    let putter = back.putter();
    let job = ready.job(worker, move |w, mut turn| {
        if let (Turn::Done(f), Some(task)) = (&mut turn, putter.task()) {
            f.queue_deferred(w, task);
        }
        let quiet = turn.is_quiet(w);
        putter.put(turn, quiet);
    });
    worker.send_job(job).await
}

/// Waits for the client to read while the response is congested, resuming it each time,
/// until it is done. None: the connection is to close at once.
pub(super) async fn until_done(
    worker: &Worker,
    stream: &Stream,
    info: &ConnInfo,
    mut turn: Turn,
) -> Option<Finished> {
    loop {
        let (exchange, rbuf) = match turn {
            Turn::Done(finished) => return Some(finished),
            Turn::Failed => return None,
            Turn::Waiting(exchange, rbuf) => (exchange, rbuf),
        };
        let writable = stream.writable_within(worker.client_timeout).await;
        turn = self::turn(
            worker,
            info,
            wsgi::resume(&worker.app, exchange, writable),
            rbuf,
        );
    }
}
