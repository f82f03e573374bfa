//! The inline worker's outbox: the last bytes of the responses its event loop served, written
//! when the loop has nothing left to run and is about to wait for events.
//!
//! A response that is complete when the app is done with it (and small, see
//! `Response::deferred`) is not written at once: the loop first serves the other requests
//! already waiting, so that clients get their responses in bursts (as from bjoern's
//! read-then-write loop) and each wake-up of a client serves several. The connection's task
//! leaves the bytes here and goes on to wait for its next request; the loop writes every
//! connection's bytes, in the order they came, from its `on_thread_park` hook. The task is
//! not polled a second time to write, and the loop does not check for events once more
//! before it runs out of work.
//!
//! The loop never waits for a socket: what a client's full socket does not take is kept as
//! that connection's stuck bytes, and its task is woken to write them as the client reads
//! ([`stuck`], [`take_own`]), while the loop serves everyone else.
//!
//! A connection's bytes always leave before anything else it writes: its task takes its own
//! bytes and writes them before it serves the next request (a pipelined one can come before
//! the loop waits) and before the connection closes.
use std::cell::RefCell;
use std::os::fd::RawFd;
use std::task::{Poll, Waker};

use super::io as sio;

/// Entries after which [`push`] writes them all at once, so that a loop that never runs out
/// of work does not hold responses back for long.
const MAX_ENTRIES: usize = 64;

/// A connection's bytes waiting, and its task, to wake if the socket does not take them all.
struct Entry {
    fd: RawFd,
    bytes: Vec<u8>,
    task: Waker,
}

thread_local! {
    static OUTBOX: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
    /// What full sockets did not take, per connection, for their tasks to write.
    static STUCK: RefCell<Vec<(RawFd, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
    /// [`flush_all`] calls so far: an entry pushed at an earlier count has been written.
    static FLUSHES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Leaves `bytes` for the connection on `fd`, after what it left before; `task` is woken if
/// they get stuck. Returns a ticket for [`waiting`].
pub fn push(fd: RawFd, bytes: Vec<u8>, task: &Waker) -> u64 {
    let ticket = FLUSHES.with(std::cell::Cell::get);
    let full = OUTBOX.with(|o| match o.try_borrow_mut() {
        Ok(mut o) => {
            o.push(Entry {
                fd,
                bytes,
                task: task.clone(),
            });
            o.len() >= MAX_ENTRIES
        }
        // Never reached (nothing here calls back into the outbox); kept as stuck if it were.
        Err(_) => {
            keep_stuck(fd, &bytes);
            task.wake_by_ref();
            false
        }
    });
    if full {
        flush_all();
    }
    ticket
}

/// Whether the connection on `fd`, which pushed bytes with `ticket`, may still have bytes
/// here: not yet written (no [`flush_all`] since), or stuck.
pub fn waiting(fd: RawFd, ticket: u64) -> bool {
    FLUSHES.with(std::cell::Cell::get) == ticket || has_stuck(fd)
}

fn has_stuck(fd: RawFd) -> bool {
    STUCK.with(|s| {
        s.try_borrow()
            .is_ok_and(|s| s.iter().any(|(f, _)| *f == fd))
    })
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

/// Appends `bytes` to the stuck bytes of the connection on `fd`.
fn keep_stuck(fd: RawFd, bytes: &[u8]) {
    STUCK.with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            match s.iter_mut().find(|(f, _)| *f == fd) {
                Some((_, b)) => b.extend_from_slice(bytes),
                None => s.push((fd, bytes.to_vec())),
            }
        }
    });
}

/// Writes every connection's bytes, as far as each socket takes them now. A connection whose
/// write fails is shut down, so that its task sees the end of it at its next read and closes
/// it; one whose socket is full keeps the rest as stuck bytes, and its task is woken.
pub fn flush_all() {
    let entries = OUTBOX.with(|o| o.try_borrow_mut().map(|mut o| std::mem::take(&mut *o)));
    let Ok(mut entries) = entries else { return };
    if entries.is_empty() {
        return;
    }
    FLUSHES.with(|f| f.set(f.get().wrapping_add(1)));
    for e in entries.drain(..) {
        if has_stuck(e.fd) {
            // Behind bytes already stuck: in order, after them.
            keep_stuck(e.fd, &e.bytes);
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
                    keep_stuck(e.fd, rest);
                    e.task.wake_by_ref();
                    break true;
                }
                Ok(n) => done += n,
                Err(_) => break false,
            }
        };
        sio::give_back(e.bytes);
        if !ok {
            // SAFETY: shutdown(2) on a descriptor its connection's task still owns (the task
            // takes its entries before it closes it); errors are ignored.
            unsafe {
                libc::shutdown(e.fd, libc::SHUT_RDWR);
            }
        }
    }
    // The emptied vector goes back, keeping its room.
    OUTBOX.with(|o| {
        if let Ok(mut o) = o.try_borrow_mut() {
            if o.is_empty() {
                *o = entries;
            }
        }
    });
}

/// Takes the bytes the connection on `fd` still has here (stuck ones first), in order, for
/// its task to write.
pub fn take_own(fd: RawFd) -> Option<Vec<u8>> {
    let mut own = STUCK.with(|s| {
        let mut s = s.try_borrow_mut().ok()?;
        let i = s.iter().position(|(f, _)| *f == fd)?;
        Some(s.swap_remove(i).1)
    });
    OUTBOX.with(|o| {
        let Ok(mut o) = o.try_borrow_mut() else {
            return;
        };
        if !o.iter().any(|e| e.fd == fd) {
            return;
        }
        let (mine, rest): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut *o)
            .into_iter()
            .partition(|e| e.fd == fd);
        *o = rest;
        for e in mine {
            match own.as_mut() {
                Some(b) => {
                    b.extend_from_slice(&e.bytes);
                    sio::give_back(e.bytes);
                }
                None => own = Some(e.bytes),
            }
        }
    });
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
