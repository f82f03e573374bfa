//! The worker's outbox: the last bytes of the responses it served, written a little later and
//! together, so that clients get their responses in bursts (as from bjoern's read-then-write
//! loop) and each wake-up of a client serves several.
//!
//! Inline (`--threads 1`): a response that is complete when the app is done with it (and
//! small, see `StreamSink::deferred`) is not written at once: the loop first serves the other
//! requests already waiting. The connection's task leaves the bytes here and goes on to wait
//! for its next request; the loop writes every connection's bytes, in the order they came,
//! from its `on_thread_park` hook. The task is not polled a second time to write, and the
//! loop does not check for events once more before it runs out of work.
//!
//! App threads (`--threads N`, HTTP/1): a thread that finished a request leaves its last bytes
//! here ([`push_aged`]) and takes the next request waiting; the outbox is written when a
//! thread finds no request waiting (it is about to sleep), when it holds [`MAX_ENTRIES`], when
//! its oldest bytes have waited [`MAX_AGE`] at the next push, and right away after a request
//! that took longer than that (its successor would likely keep the bytes as long). Writing
//! each response as it is done woke the client once per response: on a loaded worker that
//! wake-up (an inter-processor interrupt from `tcp_sendmsg`) was a tenth of the worker's CPU.
//!
//! Nobody waits for a socket here: what a client's full socket does not take is kept as that
//! connection's stuck bytes, and its task is woken to write them as the client reads
//! ([`stuck`], [`take_own`]), while the worker serves everyone else.
//!
//! A connection's bytes always leave before anything else it writes: its task takes its own
//! bytes and writes them before it serves the next request (a pipelined one can come before
//! the outbox is written) and before the connection closes. The outbox is written under its
//! lock, so a task that finds its bytes gone knows they are on the wire.
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::net::io as sio;

/// Entries after which [`push`] writes them all at once, so that a loop that never runs out
/// of work does not hold responses back for long.
const MAX_ENTRIES: usize = 64;
/// How long app threads let bytes wait here for others to join them (see the module doc):
/// flush::DEADLINE's bound on a block waiting for the app's next one.
const MAX_AGE: Duration = crate::server::flush::DEADLINE;

/// A connection's bytes waiting, and its task, to wake if the socket does not take them all.
struct Entry {
    fd: RawFd,
    bytes: Vec<u8>,
    task: Waker,
}

/// The loop's outbox (one per worker thread: one thread-local, one borrow per operation).
struct Outbox {
    entries: Vec<Entry>,
    /// What full sockets did not take, per connection, for their tasks to write.
    stuck: Vec<(RawFd, Vec<u8>)>,
    /// When the oldest entry was left by an app thread (`push_aged`).
    since: Option<Instant>,
}

impl Outbox {
    fn has_stuck(&self, fd: RawFd) -> bool {
        self.stuck.iter().any(|(f, _)| *f == fd)
    }

    /// Appends `bytes` to the stuck bytes of the connection on `fd`.
    fn keep_stuck(&mut self, fd: RawFd, bytes: &[u8]) {
        match self.stuck.iter_mut().find(|(f, _)| *f == fd) {
            Some((_, b)) => b.extend_from_slice(bytes),
            None => {
                self.stuck.push((fd, bytes.to_vec()));
                STUCK.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The worker's outbox: the inline loop's, or its app threads' (one worker runs one or the
/// other). Locked for each operation, and while it is written.
static OUTBOX: Mutex<Outbox> = Mutex::new(Outbox {
    entries: Vec::new(),
    stuck: Vec::new(),
    since: None,
});

fn outbox() -> MutexGuard<'static, Outbox> {
    OUTBOX.lock().unwrap_or_else(PoisonError::into_inner)
}

// Counters beside the lock, so that the checks made on every request and every wait for a
// request read a plain word.
/// Writes of the outbox so far: an entry pushed at an earlier count has been written.
static FLUSHES: AtomicU64 = AtomicU64::new(0);
/// Connections with stuck bytes.
static STUCK: AtomicUsize = AtomicUsize::new(0);

/// Whether the connection on `fd` has stuck bytes.
fn has_stuck(fd: RawFd) -> bool {
    STUCK.load(Ordering::Relaxed) > 0 && outbox().has_stuck(fd)
}

/// Leaves `bytes` for the connection on `fd`, after what it left before; `task` is woken if
/// they get stuck. The inline loop's: written when it waits for events. Returns a ticket for
/// [`waiting`].
pub fn push(fd: RawFd, bytes: Vec<u8>, task: &Waker) -> u64 {
    enter(fd, bytes, task, |o| o.entries.len() >= MAX_ENTRIES)
}

/// [`push`] for an app thread, whose request began at `began`: writes the outbox when it is
/// full, when its oldest bytes have waited [`MAX_AGE`], or when the request took that long.
pub fn push_aged(fd: RawFd, bytes: Vec<u8>, task: &Waker, began: Instant) -> u64 {
    let now = Instant::now();
    enter(fd, bytes, task, |o| {
        let since = *o.since.get_or_insert(now);
        o.entries.len() >= MAX_ENTRIES || now - began >= MAX_AGE || now - since >= MAX_AGE
    })
}

/// Appends an entry, then writes the outbox if `write_now` says so (under the same lock).
fn enter(
    fd: RawFd,
    bytes: Vec<u8>,
    task: &Waker,
    write_now: impl FnOnce(&mut Outbox) -> bool,
) -> u64 {
    let mut o = outbox();
    o.entries.push(Entry {
        fd,
        bytes,
        task: task.clone(),
    });
    let ticket = FLUSHES.load(Ordering::Relaxed);
    if write_now(&mut o) {
        write_all(&mut o);
    }
    ticket
}

/// Whether the connection on `fd`, which pushed bytes with `ticket`, may still have bytes
/// here: not yet written (no [`flush_all`] since), or stuck.
pub fn waiting(fd: RawFd, ticket: u64) -> bool {
    FLUSHES.load(Ordering::Relaxed) == ticket || has_stuck(fd)
}

/// Completes when the connection on `fd` has stuck bytes (its task is woken then).
pub async fn stuck(fd: RawFd) {
    std::future::poll_fn(|_| {
        if has_stuck(fd) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// Writes every connection's bytes, as far as each socket takes them now. A connection whose
/// write fails is shut down, so that its task sees the end of it at its next read and closes
/// it; one whose socket is full keeps the rest as stuck bytes, and its task is woken.
pub fn flush_all() {
    let mut o = outbox();
    if !o.entries.is_empty() {
        write_all(&mut o);
    }
}

/// [`flush_all`], with the lock held.
fn write_all(o: &mut Outbox) {
    FLUSHES.fetch_add(1, Ordering::Relaxed);
    o.since = None;
    let mut entries = std::mem::take(&mut o.entries);
    for e in entries.drain(..) {
        if STUCK.load(Ordering::Relaxed) > 0 && o.has_stuck(e.fd) {
            // Behind bytes already stuck: in order, after them.
            o.keep_stuck(e.fd, &e.bytes);
            sio::give_back(e.bytes);
            continue;
        }
        let mut done = 0;
        let ok = loop {
            let Some(rest) = e.bytes.get(done..).filter(|r| !r.is_empty()) else {
                break true;
            };
            match sio::try_write_parts(e.fd, &[rest]) {
                Ok(0) => {
                    o.keep_stuck(e.fd, rest);
                    e.task.wake_by_ref();
                    break true;
                }
                Ok(n) => done += n,
                Err(_) => break false,
            }
        };
        sio::give_back(e.bytes);
        if !ok {
            // SAFETY: shutdown(2) on a descriptor its connection's task still owns (the
            // task takes its entries before it closes it); errors are ignored.
            unsafe {
                libc::shutdown(e.fd, libc::SHUT_RDWR);
            }
        }
    }
    // The emptied vector goes back, keeping its room.
    o.entries = entries;
}

/// Takes the bytes the connection on `fd` still has here (stuck ones first), in order, for
/// its task to write.
pub fn take_own(fd: RawFd) -> Option<Vec<u8>> {
    let mut o = outbox();
    let mut own = o.stuck.iter().position(|(f, _)| *f == fd).map(|i| {
        STUCK.fetch_sub(1, Ordering::Relaxed);
        o.stuck.swap_remove(i).1
    });
    if !o.entries.iter().any(|e| e.fd == fd) {
        return own;
    }
    let (mine, rest): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut o.entries)
        .into_iter()
        .partition(|e| e.fd == fd);
    o.entries = rest;
    for e in mine {
        match own.as_mut() {
            Some(b) => {
                b.extend_from_slice(&e.bytes);
                sio::give_back(e.bytes);
            }
            None => own = Some(e.bytes),
        }
    }
    own
}

/// When a connection's task ends without writing its own bytes (it was dropped): what the
/// socket takes now is written, the rest dropped with the connection.
pub struct Guard(pub RawFd);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(bytes) = take_own(self.0) {
            let _ = sio::try_write_parts(self.0, &[&bytes]);
            sio::give_back(bytes);
        }
    }
}
