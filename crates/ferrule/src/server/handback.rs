//! A request's result handed back from an app thread to its HTTP/1 connection's task, without
//! waking the task when it has nothing to do with the result yet.
//!
//! With app threads, waking the connection's task for every finished request costs the worker
//! a wake-up of the event loop (an `eventfd` write by the app thread, and the loop preempting
//! it on a shared CPU) and one more turn of the loop before the next request, which wakes the
//! loop anyway when it arrives. So when the response went out whole and the connection stays
//! open (a *quiet* result), the app thread only leaves it here: the task finds it when the
//! client's next bytes, its close, the keep-alive time, the worker's stop or its choosing the
//! connection to close to make room (it is marked idle for that) wake it. Any other result (a
//! response still to finish, a connection to close) wakes the task at once, and so does every
//! result once the task asked for it (`want`: it was woken meanwhile).
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::conn::Stream;
use super::exchange::Turn;
use super::head::StopWatch;
use super::outbox;
use super::pressure::ConnSlot;

/// Where an app thread leaves a connection's result; one per connection, reused.
pub(super) struct Handback {
    slot: Mutex<Slot>,
    /// The connection as `--worker-connections` sees it: a quiet result makes it idle (the
    /// first to close to make room) without waking the task.
    conn: Arc<ConnSlot>,
    /// The connection's task, for the outbox to wake if its bytes get stuck there.
    task: Waker,
}

#[derive(Default)]
struct Slot {
    turn: Option<Turn>,
    /// When the app thread left it.
    done_at: Option<Instant>,
    waker: Option<Waker>,
    /// The task waits for the result itself: wake it for any.
    want: bool,
}

impl Handback {
    pub(super) fn new(conn: Arc<ConnSlot>, task: Waker) -> Self {
        Self {
            slot: Mutex::default(),
            conn,
            task,
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn put(&self, turn: Turn, quiet: bool) {
        if quiet {
            self.conn.idle();
        }
        let waker = {
            let mut s = self.slot();
            s.turn = Some(turn);
            s.done_at = Some(Instant::now());
            if quiet && !s.want {
                None
            } else {
                s.waker.take()
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn poll_turn(&self, cx: &Context<'_>, want: bool) -> Poll<(Turn, Instant)> {
        let mut s = self.slot();
        if let Some(turn) = s.turn.take() {
            s.want = false;
            let done_at = s.done_at.take().unwrap_or_else(Instant::now);
            return Poll::Ready((turn, done_at));
        }
        s.want |= want;
        if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Waits for the result of the request given to an app thread with `putter`, and says
    /// when the app thread finished it. `idle`: the keep-alive time, after which a quiet
    /// result left unclaimed is looked at.
    pub(super) async fn wait(
        &self,
        stream: &Stream,
        stop: &mut StopWatch,
        idle: Duration,
    ) -> (Turn, Instant) {
        // Bytes already there (a pipelined request, the client's end): ask for the result
        // now. Else the loop's readiness is cleared, so that only new bytes wake the task.
        let mut want = stop.stopping() || stream.has_unread();
        let fd = stream.fd();
        let deadline = tokio::time::Instant::now() + idle;
        loop {
            let turn = std::future::poll_fn(|cx| self.poll_turn(cx, want));
            if want {
                return turn.await;
            }
            tokio::select! {
                biased;
                t = turn => return t,
                () = stream.readable() => {}
                () = stop.stopped() => {}
                () = self.conn.evicted() => {}
                // Its last response's bytes did not all leave the outbox (the client reads
                // slowly): the task writes the rest once it has the result.
                () = outbox::stuck(fd) => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
            // Woken by something else: the result, when there, is claimed on the next poll;
            // else the app thread wakes the task when it leaves it.
            want = true;
        }
    }

    /// The app thread's end for one request.
    pub(super) fn putter(self: &Arc<Self>) -> Putter {
        Putter {
            back: Some(Arc::clone(self)),
        }
    }
}

/// The app thread's end: leaves the result, or `Turn::Failed` if it is dropped without one
/// (the job panicked, or never ran), so the task never waits for a result that cannot come.
pub(super) struct Putter {
    back: Option<Arc<Handback>>,
}

impl Putter {
    /// The connection's task (a putter holds its handback until it puts or drops).
    pub(super) fn task(&self) -> Option<&Waker> {
        self.back.as_ref().map(|b| &b.task)
    }

    /// Leaves the result; `quiet`: complete, on a connection that stays open.
    pub(super) fn put(mut self, turn: Turn, quiet: bool) {
        if let Some(back) = self.back.take() {
            back.put(turn, quiet);
        }
    }
}

impl Drop for Putter {
    fn drop(&mut self) {
        if let Some(back) = self.back.take() {
            back.put(Turn::Failed, false);
        }
    }
}
