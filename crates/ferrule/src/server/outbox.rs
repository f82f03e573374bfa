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
//! A connection's bytes always leave before anything else it writes: its task flushes its own
//! entries before it serves the next request (a pipelined one can come before the loop waits)
//! and before the connection closes ([`Guard`]).
use std::cell::RefCell;
use std::os::fd::RawFd;
use std::time::Duration;

use super::io as sio;

/// Entries after which [`push`] writes them all at once, so that a loop that never runs out
/// of work does not hold responses back for long.
const MAX_ENTRIES: usize = 64;

/// A connection's bytes waiting, and the time a write may wait for its socket.
struct Entry {
    fd: RawFd,
    bytes: Vec<u8>,
    timeout: Duration,
}

thread_local! {
    static OUTBOX: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
    /// [`flush_all`] calls so far: an entry pushed at an earlier count has been written.
    static FLUSHES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Leaves `bytes` for the connection on `fd`, after what it left before. Returns a ticket
/// for [`waiting`].
pub fn push(fd: RawFd, bytes: Vec<u8>, timeout: Duration) -> u64 {
    let ticket = FLUSHES.with(std::cell::Cell::get);
    let full = OUTBOX.with(|o| match o.try_borrow_mut() {
        Ok(mut o) => {
            o.push(Entry { fd, bytes, timeout });
            o.len() >= MAX_ENTRIES
        }
        // Never reached (nothing here calls back into the outbox); written now if it were.
        Err(_) => {
            let written = sio::write_all(fd, &[&bytes], 0, timeout);
            finish(fd, bytes, written.is_ok());
            false
        }
    });
    if full {
        flush_all();
    }
    ticket
}

/// Whether bytes pushed with this `ticket` may still wait (no [`flush_all`] since): a
/// connection checks before it looks for its entries with [`flush_fd`].
pub fn waiting(ticket: u64) -> bool {
    FLUSHES.with(std::cell::Cell::get) == ticket
}

/// Writes every connection's bytes. A connection whose write fails or times out is shut
/// down, so that its task sees the end of it at its next read and closes it.
pub fn flush_all() {
    let entries = OUTBOX.with(|o| o.try_borrow_mut().map(|mut o| std::mem::take(&mut *o)));
    let Ok(mut entries) = entries else { return };
    if entries.is_empty() {
        return;
    }
    FLUSHES.with(|f| f.set(f.get().wrapping_add(1)));
    for e in entries.drain(..) {
        let ok = sio::write_all(e.fd, &[&e.bytes], 0, e.timeout).is_ok();
        finish(e.fd, e.bytes, ok);
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

/// Writes the bytes left for the connection on `fd`, if any. False if a write failed.
pub fn flush_fd(fd: RawFd) -> bool {
    let mine: Vec<Entry> = OUTBOX.with(|o| match o.try_borrow_mut() {
        Ok(mut o) if o.iter().any(|e| e.fd == fd) => {
            let (mine, rest) = std::mem::take(&mut *o)
                .into_iter()
                .partition(|e| e.fd == fd);
            *o = rest;
            mine
        }
        _ => Vec::new(),
    });
    let mut ok = true;
    for e in mine {
        ok = ok && sio::write_all(e.fd, &[&e.bytes], 0, e.timeout).is_ok();
        finish(e.fd, e.bytes, ok);
    }
    ok
}

/// After a write: the buffer goes back for the next responses; a failed connection is shut
/// down (its task still owns the descriptor, see [`Guard`]).
fn finish(fd: RawFd, bytes: Vec<u8>, ok: bool) {
    sio::give_back(bytes);
    if !ok {
        // SAFETY: shutdown(2) on a descriptor its connection's task still owns (the task
        // flushes its entries before it closes it); errors are ignored.
        unsafe {
            libc::shutdown(fd, libc::SHUT_RDWR);
        }
    }
}

/// Flushes a connection's bytes when its task ends, before its socket is closed (a local of
/// the task, dropped before the stream the task was given).
pub struct Guard(pub RawFd);

impl Drop for Guard {
    fn drop(&mut self) {
        flush_fd(self.0);
    }
}
