//! Coalescing of response blocks, within PEP 3333's rule.
//!
//! The rule: a server must send each block the app yields at once, "or guarantee that it will
//! continue transmission even while the application is producing its next block". Writing
//! each 64 KiB block with its own syscall costs twice what one large write does on the
//! kernel's side, so the inline worker keeps the blocks it got while it asks the app for the
//! next one, and hands them to this per-worker flusher thread meanwhile: if the app has not
//! answered within [`DEADLINE`], the flusher sends them (transmission continues); if it has,
//! the worker takes them back and sends them with the next ones in one gathered write
//! (`sendmsg`). The flusher never waits for a full socket: what the socket does not take goes
//! back to the worker, whose connection task waits for the client (see
//! `wsgi::Served::Waiting`). App threads hand it a response's deferred last bytes while the
//! app's `close()` runs, one slot per connection. A request that took [`DEADLINE`] or more
//! defers nothing (`StreamSink::may_defer`), so its `close()` does not arm the flusher:
//! batching its response with others would save nothing worth the flusher's ticks.
use std::io::{self, IoSlice};
use std::os::fd::RawFd;
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::net::io as sio;
use crate::wsgi::sink::Kept;

/// How long pending blocks may wait for the app's next block before the flusher sends them.
pub const DEADLINE: Duration = Duration::from_millis(1);
/// How long the flusher keeps ticking after the last armed job before it sleeps until woken.
const PARK_AFTER: Duration = Duration::from_millis(100);

/// Pending bytes from which the worker writes them before it queues the app's next block.
pub const MAX_PENDING: usize = 1 << 20;
/// Pending pieces (blocks and framing) from which the worker writes them before it queues
/// the app's next block (then at most 4 more, the head and one chunk's framing, and the
/// last chunk: within what one write sends, `sio::MAX_IOVECS`).
pub const MAX_PIECES: usize = 48;

/// StartResponse bytes not yet written: the app's `bytes` objects (kept alive here) and framing.
#[derive(Default)]
pub struct Pending {
    /// Owners of the memory `Piece::Block`s point into.
    owners: Vec<Kept>,
    /// Our own bytes (the head, chunk-size lines, leftovers copied), which `Piece::Own`s
    /// address by offset: one buffer, kept with its capacity from response to response.
    own: Vec<u8>,
    pieces: Vec<Piece>,
    /// Bytes in `pieces` (written ones included).
    pub bytes: usize,
    /// Bytes from the front already written (a write the socket took only part of).
    written: usize,
}

/// One piece of a [`Pending`], in the order it goes out.
#[derive(Clone, Copy)]
enum Piece {
    /// Memory of an app's `bytes` object held in `owners`, or static.
    Block(*const u8, usize),
    /// `own[start..start + len]`.
    Own(usize, usize),
}

// SAFETY: `Piece::Block`s point into `bytes` objects held by `owners` (immutable, kept alive
// for as long as the `Pending` lives) or into static memory; `Piece::Own`s are offsets into
// `own`, resolved only while `own` is borrowed. Nothing moves or mutates the memory pointed
// to when the `Pending` moves, so the pointers stay valid and may be read from another thread.
unsafe impl Send for Pending {}
// SAFETY: as for `Send`; a shared `&Pending` only reads the pointers and what they point to,
// and `Pending` has no interior mutability.
unsafe impl Sync for Pending {}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.bytes >= MAX_PENDING || self.pieces.len() >= MAX_PIECES
    }

    /// Bytes still to write.
    pub fn unwritten(&self) -> usize {
        self.bytes - self.written
    }

    /// Queues a copy of our own bytes (a head, what is left of a block).
    pub fn push_own(&mut self, data: &[u8]) {
        self.push_own_with(|own| own.extend_from_slice(data));
    }

    /// Queues the bytes `fill` appends to the buffer of our own bytes (a chunk-size line).
    pub fn push_own_with(&mut self, fill: impl FnOnce(&mut Vec<u8>)) {
        let start = self.own.len();
        fill(&mut self.own);
        let len = self.own.len() - start;
        if len > 0 {
            self.pieces.push(Piece::Own(start, len));
            self.bytes += len;
        }
    }

    /// Queues part of an app's block, kept alive (not copied) until written.
    pub fn push_kept(&mut self, kept: Kept) {
        let piece = kept.bytes();
        if piece.is_empty() {
            return;
        }
        self.pieces.push(Piece::Block(piece.as_ptr(), piece.len()));
        self.bytes += piece.len();
        self.owners.push(kept);
    }

    /// Queues a static piece (`\r\n`, the last chunk).
    pub fn push_static(&mut self, data: &'static [u8]) {
        self.pieces.push(Piece::Block(data.as_ptr(), data.len()));
        self.bytes += data.len();
    }

    /// Puts a copy of our own bytes before everything queued (nothing of which may have been
    /// written).
    pub fn push_front_own(&mut self, data: &[u8]) {
        debug_assert_eq!(self.written, 0);
        if data.is_empty() {
            return;
        }
        self.push_own(data);
        if let Some(piece) = self.pieces.pop() {
            self.pieces.insert(0, piece);
        }
    }

    /// Calls `f` with each part left to write, in order, until it returns false.
    fn each_left<'a>(&'a self, mut f: impl FnMut(&'a [u8]) -> bool) {
        let mut skip = self.written;
        for &piece in &self.pieces {
            let whole: &[u8] = match piece {
                // SAFETY: see the `Send` impl: a block points into memory owned by `self`
                // (an owner's bytes) or static.
                Piece::Block(p, n) => unsafe { std::slice::from_raw_parts(p, n) },
                Piece::Own(start, n) => self.own.get(start..start + n).unwrap_or_default(),
            };
            let done = skip.min(whole.len());
            skip -= done;
            let Some(rest) = whole.get(done..).filter(|r| !r.is_empty()) else {
                continue;
            };
            if !f(rest) {
                return;
            }
        }
    }

    /// Appends what is left to write to `out`.
    pub fn copy_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.unwritten());
        self.each_left(|part| {
            out.extend_from_slice(part);
            true
        });
    }

    /// One non-blocking gathered write of what is left, as many parts as one write sends
    /// (gathered on the stack); returns the bytes written (0: the socket is full).
    fn try_write(&self, fd: RawFd) -> io::Result<usize> {
        let mut iov = [IoSlice::new(&[]); sio::MAX_IOVECS];
        let mut n = 0;
        self.each_left(|part| match iov.get_mut(n) {
            Some(slot) => {
                *slot = IoSlice::new(part);
                n += 1;
                true
            }
            None => false,
        });
        sio::try_writev(fd, iov.get(..n).unwrap_or_default())
    }

    /// Writes everything left, waiting for the socket up to `timeout` each time it is full.
    pub fn write(&mut self, fd: RawFd, timeout: Duration) -> io::Result<()> {
        while !self.write_now(fd)? {
            sio::wait_writable(fd, Instant::now() + timeout)?;
        }
        Ok(())
    }

    /// Writes what the socket takes now, without waiting. True: everything is written;
    /// false: the socket is full and the rest is still here.
    pub fn write_now(&mut self, fd: RawFd) -> io::Result<bool> {
        while self.written < self.bytes {
            let n = self.try_write(fd)?;
            if n == 0 {
                return Ok(false);
            }
            self.written += n;
        }
        Ok(true)
    }

    /// Forgets what was written, keeping the allocations.
    pub fn clear(&mut self) {
        self.owners.clear();
        self.own.clear();
        self.pieces.clear();
        self.bytes = 0;
        self.written = 0;
    }
}

struct Job {
    fd: RawFd,
    pending: Pending,
    armed: Instant,
}

/// The flusher's slots: one per connection whose app is producing its next block (the inline
/// loop's one at a time, or one per app thread).
#[derive(Default)]
struct State {
    /// Armed, not yet taken by the flusher.
    jobs: Vec<Job>,
    /// The flusher sleeps until woken (no job armed for a while). Otherwise it wakes every
    /// [`DEADLINE`] on its own, so arming a job needs no wake-up (no futex, no context switch
    /// per request on a busy worker).
    parked: bool,
    /// When a job was last armed.
    last_arm: Option<Instant>,
    /// The connections whose jobs the flusher took and is writing.
    writing: Vec<RawFd>,
    /// What the flusher wrote, per connection, handed back with the result (false: the
    /// socket took part).
    done: Vec<(RawFd, Pending, io::Result<bool>)>,
}

/// The worker's flusher thread and its slots.
pub struct Flusher {
    state: Mutex<State>,
    cv: Condvar,
}

static FLUSHER: OnceLock<Option<&'static Flusher>> = OnceLock::new();

impl Flusher {
    /// The worker's flusher, started on first use (after the fork, in the worker). None if
    /// the thread cannot be started: blocks are then written one by one.
    pub fn get() -> Option<&'static Self> {
        *FLUSHER.get_or_init(|| {
            let f: &'static Self = Box::leak(Box::new(Self {
                state: Mutex::new(State::default()),
                cv: Condvar::new(),
            }));
            std::thread::Builder::new()
                .name("ferrule-flush".into())
                .spawn(move || f.run())
                .ok()
                .map(|_| f)
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self) {
        let mut st = self.lock();
        loop {
            if let Some(i) = st.jobs.iter().position(|j| j.armed.elapsed() >= DEADLINE) {
                // The app is still producing: send what it gave so far.
                let mut job = st.jobs.swap_remove(i);
                st.writing.push(job.fd);
                drop(st);
                // Never waits for the socket: what it does not take now stays for the
                // worker, which waits for the client without holding up the others.
                let result = job.pending.write_now(job.fd);
                st = self.lock();
                st.writing.retain(|&fd| fd != job.fd);
                st.done.push((job.fd, job.pending, result));
                self.cv.notify_all();
            } else if st.jobs.is_empty() && st.last_arm.is_none_or(|t| t.elapsed() > PARK_AFTER) {
                st.parked = true;
                st = self.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
                st.parked = false;
            } else {
                // Jobs not yet due, or recent activity: tick.
                st = self
                    .cv
                    .wait_timeout(st, DEADLINE)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
    }

    /// Hands `pending`, the connection on `fd`'s, to the flusher while the app produces its
    /// next block. A ticking flusher sees it within two [`DEADLINE`]s; a parked one is woken.
    pub fn arm(&self, fd: RawFd, pending: Pending) {
        let mut st = self.lock();
        let now = Instant::now();
        st.jobs.push(Job {
            fd,
            pending,
            armed: now,
        });
        st.last_arm = Some(now);
        if st.parked {
            self.cv.notify_all();
        }
    }

    /// Takes the connection on `fd`'s pending blocks back. `(pending, None)`: not written
    /// yet, go on coalescing; `(pending, Some(result))`: the flusher wrote them, all
    /// (`Ok(true)`) or what the socket took (`Ok(false)`: the rest is still in `pending`).
    pub fn disarm(&self, fd: RawFd) -> (Pending, Option<io::Result<bool>>) {
        let mut st = self.lock();
        loop {
            if let Some(taken) = Self::ready(&mut st, fd) {
                return taken;
            }
            st = self.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// [`Flusher::disarm`] when it need not wait, which is almost always: the caller may
    /// hold the GIL (the flusher never takes it, and holds its lock only briefly). None:
    /// the flusher is writing them; call `disarm` with the GIL released.
    pub fn disarm_now(&self, fd: RawFd) -> Option<(Pending, Option<io::Result<bool>>)> {
        Self::ready(&mut self.lock(), fd)
    }

    fn ready(st: &mut State, fd: RawFd) -> Option<(Pending, Option<io::Result<bool>>)> {
        if let Some(i) = st.jobs.iter().position(|j| j.fd == fd) {
            return Some((st.jobs.swap_remove(i).pending, None));
        }
        if let Some(i) = st.done.iter().position(|d| d.0 == fd) {
            let (_, pending, result) = st.done.swap_remove(i);
            return Some((pending, Some(result)));
        }
        (!st.writing.contains(&fd)).then(|| (Pending::default(), Some(Ok(true))))
    }
}
