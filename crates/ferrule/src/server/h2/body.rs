//! An HTTP/2 request body, DATA frames received on the edge thread. Buffered (the default,
//! as on HTTP/1: [`buffer`]), the whole body is read before the app is called, in memory up
//! to `--body-buffer-size` and spooled to a temporary file beyond, the window granted as it
//! arrives. Streamed (`--no-request-buffering`, `--stream-uploads`: [`pump`]), it is handed
//! to the app's `wsgi.input` as it reads: the stream's flow-control window is given back
//! only as the buffered bytes are taken, so a client can never make the server hold more than
//! the window and [`IN_BUFFER`] of one stream.
use std::any::Any;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use ferrule_proto::ParseError;
use h2::RecvStream;
use tokio::sync::Notify;

use crate::server::buffer::{log_spool_failure, open_spool, SpooledBody};
use crate::server::rate::MinRate;
use crate::server::Worker;
use crate::wsgi::sink::{BodyError, BodySource};

/// Body bytes received and not yet read by the app, most, per stream; the client's window is
/// reopened as the app reads them.
pub const IN_BUFFER: usize = 256 * 1024;

/// The request bodies one connection holds in memory, all its streams together: a stream
/// spools once they would pass `--body-buffer-size`, so that a connection with many streams
/// holds no more in memory than an HTTP/1 connection with its one body.
#[derive(Default)]
pub struct Held(AtomicUsize);

/// Bytes counted in a connection's [`Held`], given back when the body holding them goes.
struct Reserved {
    held: Arc<Held>,
    n: usize,
}

impl Reserved {
    /// Counts `n` more bytes, if the connection's total stays within `cap`.
    fn more(&mut self, n: usize, cap: usize) -> bool {
        let before = self.held.0.fetch_add(n, Ordering::AcqRel);
        if before.saturating_add(n) > cap {
            self.held.0.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        self.n += n;
        true
    }

    /// Gives every byte back (the body went to a spool file).
    fn release(&mut self) {
        self.held
            .0
            .fetch_sub(std::mem::take(&mut self.n), Ordering::AcqRel);
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.release();
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Bytes>,
    buffered: usize,
    /// Bytes the app has read.
    consumed: u64,
    ended: bool,
    error: Option<BodyError>,
    /// The app's side is gone (its request is over): the pump stops.
    dropped: bool,
    /// The app waits on `arrived` (a condvar's wake is a system call: made only then).
    waiting: bool,
}

/// What the edge thread and the app share of one request body.
pub struct Inbound {
    state: Mutex<State>,
    /// The app waits here for bytes.
    arrived: Condvar,
    /// The pump waits here for room.
    room: Notify,
    /// The edge thread may wait here for the body's end (or failure).
    done: Notify,
    /// A buffered body's bytes in its connection's [`Held`], given back with it.
    _reserved: Option<Reserved>,
}

impl Inbound {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            arrived: Condvar::new(),
            room: Notify::new(),
            done: Notify::new(),
            _reserved: None,
        })
    }

    /// A body received whole (`len` bytes in `queue`, counted in `reserved`).
    fn whole(queue: VecDeque<Bytes>, len: usize, reserved: Reserved) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                queue,
                buffered: len,
                ended: true,
                ..State::default()
            }),
            arrived: Condvar::new(),
            room: Notify::new(),
            done: Notify::new(),
            _reserved: Some(reserved),
        })
    }

    /// Whether the whole body is here (or it failed): the app would not wait for it.
    pub fn arrived(&self) -> bool {
        let s = self.lock();
        s.ended || s.error.is_some()
    }

    /// Waits up to `within` for the whole body (or its failure); false if it is still to
    /// come then.
    pub async fn arrival(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let done = self.done.notified();
            if self.arrived() {
                return true;
            }
            if tokio::time::timeout_at(deadline, done).await.is_err() {
                return self.arrived();
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fails the body (the client reset the stream, or it ran past the limit).
    fn fail(&self, e: BodyError) {
        let mut s = self.lock();
        s.error.get_or_insert(e);
        self.wake(s);
        self.done.notify_one();
    }

    /// Wakes the app if it waits for the body.
    fn wake(&self, s: MutexGuard<'_, State>) {
        let waiting = s.waiting;
        drop(s);
        if waiting {
            self.arrived.notify_all();
        }
    }
}

/// Why a stream's body was not buffered.
pub enum Unbuffered {
    /// Over `--limit-request-body`: 413.
    TooLarge,
    /// Slower than `--body-min-rate`: 408.
    TooSlow,
    /// A spool file could not be created or written: 500.
    Failed,
    /// The client reset the stream, left, or sent nothing within the client timeout.
    Closed,
}

/// Reads a stream's whole body on the edge thread before the app is called (request
/// buffering, as `server/buffer.rs` does on HTTP/1), the window granted as the bytes arrive:
/// in memory up to `--body-buffer-size` (for all the bodies of the connection together,
/// `held`), spooled to an unnamed temporary file beyond.
/// `--limit-request-body` is checked at every frame, `--body-min-rate` over the time spent
/// waiting for the client, and each wait is bounded by the client timeout.
pub async fn buffer(
    worker: &Worker,
    mut recv: RecvStream,
    length: Option<u64>,
    held: &Arc<Held>,
) -> Result<Box<dyn BodySource>, Unbuffered> {
    let limit = worker.app.limits.request_body;
    let memory = worker.buffering.memory;
    let mut reserved = Reserved {
        held: Arc::clone(held),
        n: 0,
    };
    let mut rate = MinRate::start(worker.buffering.min_rate);
    // Copied out of the frames: a frame's bytes may share (and hold) a larger read buffer.
    let mut kept = BytesMut::new();
    let mut total: u64 = 0;
    let mut spool: Option<std::fs::File> = None;
    loop {
        let began = rate.is_some().then(Instant::now);
        let data = match tokio::time::timeout(worker.client_timeout, recv.data()).await {
            Ok(None) => break,
            Ok(Some(Ok(data))) => data,
            Ok(Some(Err(_))) | Err(_) => return Err(Unbuffered::Closed),
        };
        let n = data.len();
        total = total.saturating_add(n as u64);
        if limit != 0 && total > limit {
            return Err(Unbuffered::TooLarge);
        }
        let _ = recv.flow_control().release_capacity(n);
        if let (Some(r), Some(began)) = (rate.as_mut(), began) {
            if !r.record(n, began.elapsed()) {
                return Err(Unbuffered::TooSlow);
            }
        }
        if spool.is_none() && !reserved.more(n, memory) {
            let mut file = open_spool(worker).ok_or(Unbuffered::Failed)?;
            spool_write(worker, &mut file, &kept)?;
            kept = BytesMut::new();
            reserved.release();
            spool = Some(file);
        }
        match spool.as_mut() {
            Some(file) => spool_write(worker, file, &data)?,
            None => kept.extend_from_slice(&data),
        }
    }
    Ok(match spool {
        Some(file) => Box::new(SpooledBody::new(file, total)),
        None => {
            let len = kept.len();
            let mut queue = VecDeque::new();
            if len > 0 {
                queue.push_back(kept.freeze());
            }
            let inbound = Inbound::whole(queue, len, reserved);
            Box::new(H2Body::new(inbound, length, worker.client_timeout))
        }
    })
}

fn spool_write(worker: &Worker, file: &mut std::fs::File, b: &[u8]) -> Result<(), Unbuffered> {
    file.write_all(b).map_err(|e| {
        log_spool_failure(worker, &e);
        Unbuffered::Failed
    })
}

/// Moves the stream's DATA into `inbound` as the app makes room, on the edge thread.
/// `limit`: `--limit-request-body` (0: none).
pub async fn pump(mut recv: RecvStream, inbound: Arc<Inbound>, limit: u64) {
    let mut total: u64 = 0;
    loop {
        // Room first: the window is only reopened for bytes the buffer can take.
        loop {
            let notified = inbound.room.notified();
            {
                let s = inbound.lock();
                if s.dropped {
                    return;
                }
                if s.buffered < IN_BUFFER {
                    break;
                }
            }
            notified.await;
        }
        match recv.data().await {
            None => {
                let mut s = inbound.lock();
                s.ended = true;
                inbound.wake(s);
                inbound.done.notify_one();
                return;
            }
            Some(Err(e)) => {
                let kind = if e.is_reset() || e.is_go_away() || e.is_io() {
                    std::io::ErrorKind::ConnectionReset
                } else {
                    std::io::ErrorKind::InvalidData
                };
                inbound.fail(BodyError::Io(kind));
                return;
            }
            Some(Ok(data)) => {
                let n = data.len();
                total = total.saturating_add(n as u64);
                if limit != 0 && total > limit {
                    inbound.fail(BodyError::Parse(ParseError::BodyTooLarge));
                    return;
                }
                let _ = recv.flow_control().release_capacity(n);
                if n > 0 {
                    let mut s = inbound.lock();
                    s.buffered += n;
                    s.queue.push_back(data);
                    inbound.wake(s);
                }
            }
        }
    }
}

/// The app's side of an HTTP/2 request body.
pub struct H2Body {
    inbound: Arc<Inbound>,
    /// The request's Content-Length, when it sent one (h2 checks the DATA against it).
    length: Option<u64>,
    timeout: Duration,
}

impl H2Body {
    pub fn new(inbound: Arc<Inbound>, length: Option<u64>, timeout: Duration) -> Self {
        Self {
            inbound,
            length,
            timeout,
        }
    }

    /// Waits (up to the client timeout) until bytes, the end or an error are there.
    fn wait<'a>(&'a self, mut s: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let deadline = std::time::Instant::now() + self.timeout;
        while s.queue.is_empty() && !s.ended && s.error.is_none() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                s.error = Some(BodyError::Io(std::io::ErrorKind::TimedOut));
                break;
            }
            s.waiting = true;
            s = self
                .inbound
                .arrived
                .wait_timeout(s, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        s.waiting = false;
        s
    }

    /// Moves up to `max` buffered bytes to `out`; the pump is told there is room.
    fn take(&self, s: &mut State, max: usize, out: &mut impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < max {
            let Some(front) = s.queue.front_mut() else {
                break;
            };
            let k = front.len().min(max - n);
            out(front.get(..k).unwrap_or_default());
            front.advance(k);
            if front.is_empty() {
                s.queue.pop_front();
            }
            n += k;
        }
        s.buffered -= n;
        s.consumed += n as u64;
        if n > 0 {
            self.inbound.room.notify_one();
        }
        n
    }
}

impl Drop for H2Body {
    fn drop(&mut self) {
        self.inbound.lock().dropped = true;
        self.inbound.room.notify_one();
    }
}

impl BodySource for H2Body {
    fn read(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
        block: bool,
    ) -> Result<Option<usize>, BodyError> {
        let mut s = self.inbound.lock();
        if block {
            s = self.wait(s);
        }
        if !s.queue.is_empty() {
            let n = self.take(&mut s, max, &mut |b| out.extend_from_slice(b));
            return Ok(Some(n));
        }
        if let Some(e) = s.error {
            return Err(e);
        }
        if s.ended {
            return Ok(Some(0));
        }
        Ok(None)
    }

    fn exact_len(&self, size: Option<usize>) -> Option<usize> {
        let s = self.inbound.lock();
        if s.error.is_some() {
            return None;
        }
        let left = self.length?.saturating_sub(s.consumed);
        let left = usize::try_from(left).unwrap_or(usize::MAX);
        Some(size.map_or(left, |n| n.min(left)))
    }

    fn buffered(&self) -> usize {
        self.inbound.lock().buffered
    }

    fn read_exact_into(&mut self, dst: &mut [u8]) -> Result<(), BodyError> {
        let mut filled = 0;
        while filled < dst.len() {
            let mut s = self.wait(self.inbound.lock());
            if s.queue.is_empty() {
                return Err(s
                    .error
                    .unwrap_or(BodyError::Io(std::io::ErrorKind::UnexpectedEof)));
            }
            let want = dst.len() - filled;
            let rest = dst.get_mut(filled..).unwrap_or_default();
            let mut at = 0;
            let n = self.take(&mut s, want, &mut |b| {
                if let Some(d) = rest.get_mut(at..at + b.len()) {
                    d.copy_from_slice(b);
                }
                at += b.len();
            });
            filled += n;
        }
        Ok(())
    }

    fn is_done(&self) -> bool {
        let s = self.inbound.lock();
        s.ended && s.queue.is_empty()
    }

    fn error(&self) -> Option<BodyError> {
        self.inbound.lock().error
    }

    fn head_going_out(&mut self) -> bool {
        // The stream goes on: what the client still sends is read (and dropped) or the stream
        // is reset once the response is complete; the connection's other streams go on.
        false
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}
