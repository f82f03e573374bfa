//! Reading an HTTP/1 request head in the event loop: the connection's timer, the worker's stop
//! as a connection sees it, and the head's time limits (`--client-timeout` between reads,
//! `--header-timeout` for the whole head from its first byte).
use std::time::Duration;

use bytes::BytesMut;
use ferrule_proto::http1::{parse_request, RequestHead};
use ferrule_proto::ParseError;
use tokio::sync::watch;
use tokio::time::Instant;

use super::conn::Stream;
use super::pressure::ConnSlot;
use super::{outbox, Worker};

/// How long an idle keep-alive connection waits for one more request once the worker stops.
const STOP_IDLE: Duration = Duration::from_millis(500);

pub(super) enum HeadRead {
    Head(RequestHead),
    /// The client closed or failed, or sent nothing of a next request in time.
    Closed,
    /// Part of a head came, but not the rest in time (`--client-timeout` between reads or
    /// `--header-timeout` for the whole head): answered 408. When the head began.
    TimedOut(std::time::Instant),
    /// The head is refused; when it began, if it took more than one read.
    Refused(ParseError, Option<std::time::Instant>),
}

/// A connection's one timer, re-armed lazily: a later deadline leaves it where it is (when it
/// fires early, the wait goes on to the real deadline), so that a busy keep-alive connection
/// does not register and cancel a timer for every request.
pub(super) struct Timer {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Timer {
    pub(super) fn new(deadline: Instant) -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    /// Waits for `read` until `deadline`; None on timeout.
    pub(super) async fn within<F: std::future::Future>(
        &mut self,
        deadline: Instant,
        read: F,
    ) -> Option<F::Output> {
        if self.sleep.deadline() > deadline {
            self.sleep.as_mut().reset(deadline);
        }
        let mut read = std::pin::pin!(read);
        loop {
            tokio::select! {
                biased;
                r = &mut read => return Some(r),
                () = &mut self.sleep => {
                    if Instant::now() >= deadline {
                        return None;
                    }
                    self.sleep.as_mut().reset(deadline);
                }
            }
        }
    }
}

/// The worker's stop as seen by one connection: one wait registered for the connection's life,
/// not one per request.
pub(super) struct StopWatch {
    rx: watch::Receiver<bool>,
    wait: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
}

impl StopWatch {
    pub(super) fn new(rx: watch::Receiver<bool>) -> Self {
        let mut waiter = rx.clone();
        let wait = Box::pin(async move {
            while !*waiter.borrow_and_update() {
                if waiter.changed().await.is_err() {
                    // The worker's end dropped the sender: it stops with the runtime.
                    std::future::pending::<()>().await;
                }
            }
        });
        Self {
            rx,
            wait: Some(wait),
        }
    }

    /// The worker's stop signal, for a connection that goes on under another protocol.
    pub(super) fn into_inner(self) -> watch::Receiver<bool> {
        self.rx
    }

    pub(super) fn stopping(&self) -> bool {
        *self.rx.borrow()
    }

    /// Completes when the worker stops; pending forever after it completed once.
    pub(super) async fn stopped(&mut self) {
        match self.wait.as_mut() {
            Some(w) => {
                w.await;
                self.wait = None;
            }
            None => std::future::pending().await,
        }
    }
}

/// Reads the next request head into `rbuf`. Until its first byte the client has `idle` (the
/// client timeout for a connection's first request, the keep-alive time after); from then on
/// `--client-timeout` between reads and `--header-timeout` for the whole head. `slot` is told
/// when the head begins and when it is whole; the connection closes when the worker picks it
/// to make room (`--worker-connections`).
pub(super) async fn read_head(
    stream: &mut Stream,
    rbuf: &mut BytesMut,
    worker: &Worker,
    idle: Duration,
    stop: &mut StopWatch,
    timer: &mut Timer,
    slot: &ConnSlot,
) -> HeadRead {
    let mut deadline = Instant::now() + idle;
    // When the head must be complete (None inside: no --header-timeout): set by its first
    // byte (pipelined bytes already read count from now); None outside until then.
    let mut head_by: Option<Option<Instant>> = None;
    let mut stopping = stop.stopping();
    // When the head's first byte was seen waiting for more (for a refusal's access line).
    let mut began = None;
    loop {
        if !rbuf.is_empty() {
            match parse_request(rbuf, &worker.app.limits) {
                Ok(Some(head)) => {
                    slot.busy();
                    return HeadRead::Head(head);
                }
                Ok(None) => {}
                Err(e) => return HeadRead::Refused(e, began.map(Instant::into_std)),
            }
        }
        let waiting = rbuf.is_empty();
        if !waiting {
            let now = Instant::now();
            deadline = now + worker.client_timeout;
            let by = *head_by.get_or_insert_with(|| {
                began = Some(now);
                slot.head();
                worker
                    .header_timeout
                    .and_then(|limit| now.checked_add(limit))
            });
            if let Some(by) = by {
                deadline = deadline.min(by);
            }
        }
        if waiting && stopping {
            // The worker is stopping: an idle connection gets a moment for a request already
            // on its way (answered with `Connection: close`), then closes.
            deadline = deadline.min(Instant::now() + STOP_IDLE);
        }
        let fd = stream.fd();
        let read = timer.within(deadline, stream.read_buf(rbuf));
        let mut unstick = false;
        // The read first: no random pick of a branch per poll, and the stop is polled only
        // while the read waits (a stop that came meanwhile is seen by `stopping` above).
        tokio::select! {
            biased;
            r = read => match r {
                None if !waiting => {
                    return HeadRead::TimedOut(began.map_or_else(std::time::Instant::now, Instant::into_std));
                }
                Some(Ok(0) | Err(_)) | None => return HeadRead::Closed,
                Some(Ok(_)) => {}
            },
            // The last response did not all fit in the socket: the rest goes as the client
            // reads, while the next request is awaited.
            () = outbox::stuck(fd) => unstick = true,
            () = stop.stopped(), if waiting && !stopping => stopping = true,
            () = slot.evicted() => return HeadRead::Closed,
        }
        if unstick && !stream.write_own(worker.client_timeout).await {
            return HeadRead::Closed;
        }
    }
}
