//! The inline worker's outbox: the last bytes of the responses its event loop served, written
//! when the loop has nothing left to run and is about to wait for events.
//!
//! A response that is complete when the app is done with it (and small, see
//! `StreamSink::deferred`) is not written at once: the loop first serves the other requests
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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Poll, Waker};

use crate::net::io as sio;

/// Entries after which [`push`] writes them all at once, so that a loop that never runs out
/// of work does not hold responses back for long.
const MAX_ENTRIES: usize = 64;

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

thread_local! {
    static OUTBOX: RefCell<Outbox> = const {
        RefCell::new(Outbox {
            entries: Vec::new(),
            stuck: Vec::new(),
        })
    };
}

// Counters beside the thread-local, so that the checks made on every request and every wait
// for a request read a plain word, not the thread-local. Only the inline worker's one loop
// thread uses the outbox.
/// [`flush_all`] calls so far: an entry pushed at an earlier count has been written.
static FLUSHES: AtomicU64 = AtomicU64::new(0);
/// Connections with stuck bytes.
static STUCK: AtomicUsize = AtomicUsize::new(0);

/// Whether the connection on `fd` has stuck bytes.
fn has_stuck(fd: RawFd) -> bool {
    STUCK.load(Ordering::Relaxed) > 0
        && OUTBOX.with(|o| o.try_borrow().is_ok_and(|o| o.has_stuck(fd)))
}

/// Leaves `bytes` for the connection on `fd`, after what it left before; `task` is woken if
/// they get stuck. Returns a ticket for [`waiting`].
pub fn push(fd: RawFd, bytes: Vec<u8>, task: &Waker) -> u64 {
    let pushed = OUTBOX.with(|o| match o.try_borrow_mut() {
        Ok(mut o) => {
            o.entries.push(Entry {
                fd,
                bytes,
                task: task.clone(),
            });
            Ok((
                FLUSHES.load(Ordering::Relaxed),
                o.entries.len() >= MAX_ENTRIES,
            ))
        }
        Err(_) => Err(bytes),
    });
    match pushed {
        Ok((ticket, full)) => {
            if full {
                flush_all();
            }
            ticket
        }
        // Never reached (nothing here calls back into the outbox while it is borrowed). If
        // it were: what the socket takes now, else the connection is cut rather than left
        // waiting for bytes that will not come.
        Err(bytes) => {
            if sio::try_write_parts(fd, &[&bytes]).map_or(true, |n| n < bytes.len()) {
                // SAFETY: shutdown(2) on the connection's descriptor, which its task owns.
                unsafe {
                    libc::shutdown(fd, libc::SHUT_RDWR);
                }
            }
            sio::give_back(bytes);
            0
        }
    }
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
    OUTBOX.with(|o| {
        let Ok(mut o) = o.try_borrow_mut() else {
            return;
        };
        if o.entries.is_empty() {
            return;
        }
        FLUSHES.fetch_add(1, Ordering::Relaxed);
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
    });
}

/// Takes the bytes the connection on `fd` still has here (stuck ones first), in order, for
/// its task to write.
pub fn take_own(fd: RawFd) -> Option<Vec<u8>> {
    OUTBOX.with(|o| {
        let mut o = o.try_borrow_mut().ok()?;
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
    })
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
