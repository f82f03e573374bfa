//! Coalescing of response blocks, within PEP 3333's rule.
//!
//! The rule: a server must send each block the app yields at once, "or guarantee that it will
//! continue transmission even while the application is producing its next block". Writing
//! each 64 KiB block with its own syscall costs twice what one large write does on the
//! kernel's side, so the inline worker keeps the blocks it got while it asks the app for the
//! next one, and hands them to this per-worker flusher thread meanwhile: if the app has not
//! answered within [`DEADLINE`], the flusher sends them (transmission continues); if it has,
//! the worker takes them back and sends them with the next ones in one `writev`. The flusher
//! never waits for a full socket: what the socket does not take goes back to the worker, whose
//! connection task waits for the client (see `wsgi::Served::Stalled`).
use std::io;
use std::os::fd::RawFd;
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::server::io as sio;

/// How long pending blocks may wait for the app's next block before the flusher sends them.
pub const DEADLINE: Duration = Duration::from_millis(1);
/// How long the flusher keeps ticking after the last armed job before it sleeps until woken.
const PARK_AFTER: Duration = Duration::from_millis(100);

/// Pending bytes beyond which the worker writes at once.
pub const MAX_PENDING: usize = 1 << 20;
/// Pending pieces (blocks and framing) beyond which the worker writes at once.
pub const MAX_PIECES: usize = 48;

/// Response bytes not yet written: the app's `bytes` objects (kept alive here) and framing.
#[derive(Default)]
pub struct Pending {
    /// Owners of the memory `pieces` points into.
    owners: Vec<Py<PyBytes>>,
    /// Framing bytes (chunk sizes, CRLFs, the head) the pieces may point into.
    framing: Vec<Vec<u8>>,
    pieces: Vec<(*const u8, usize)>,
    /// Bytes in `pieces` (written ones included).
    pub bytes: usize,
    /// Bytes from the front already written (a write the socket took only part of).
    written: usize,
}

// SAFETY: `pieces` point into `bytes` objects held by `owners` (immutable, kept alive for as
// long as the `Pending` lives) or into the heap buffers of `framing` (never mutated after
// being pushed). Neither moves when the `Pending` moves, and nothing mutates them, so the
// pointers stay valid and may be read from another thread.
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

    /// Queues our own bytes (a head, a chunk-size line).
    pub fn push_owned(&mut self, data: Vec<u8>) {
        if data.is_empty() {
            return;
        }
        self.pieces.push((data.as_ptr(), data.len()));
        self.bytes += data.len();
        self.framing.push(data);
    }

    /// Queues `len` bytes of the app's block from `start`.
    pub fn push_block(&mut self, block: &Bound<'_, PyBytes>, start: usize, len: usize) {
        let data = block.as_bytes();
        let Some(piece) = data.get(start..start + len) else {
            return;
        };
        if piece.is_empty() {
            return;
        }
        self.pieces.push((piece.as_ptr(), piece.len()));
        self.bytes += piece.len();
        self.owners.push(block.clone().unbind());
    }

    /// Queues a static piece (`\r\n`, the last chunk).
    pub fn push_static(&mut self, data: &'static [u8]) {
        self.pieces.push((data.as_ptr(), data.len()));
        self.bytes += data.len();
    }

    /// Puts our own bytes before everything queued (nothing of which may have been written).
    pub fn push_front_owned(&mut self, data: Vec<u8>) {
        debug_assert_eq!(self.written, 0);
        if data.is_empty() {
            return;
        }
        self.pieces.insert(0, (data.as_ptr(), data.len()));
        self.bytes += data.len();
        self.framing.push(data);
    }

    /// What is left to write, in order.
    pub fn slices(&self) -> Vec<&[u8]> {
        let mut skip = self.written;
        self.pieces
            .iter()
            .filter_map(|&(p, n)| {
                // SAFETY: see the `Send` impl: every piece points into memory owned by `self`.
                let piece = unsafe { std::slice::from_raw_parts(p, n) };
                let rest = piece.get(skip.min(n)..)?;
                skip -= skip.min(n);
                (!rest.is_empty()).then_some(rest)
            })
            .collect()
    }

    /// Writes everything left, waiting for the socket up to `timeout` each time it is full.
    pub fn write(&mut self, fd: RawFd, timeout: Duration) -> io::Result<()> {
        sio::write_all(fd, &self.slices(), 0, timeout)?;
        self.written = self.bytes;
        Ok(())
    }

    /// Writes what the socket takes now, without waiting. True: everything is written;
    /// false: the socket is full and the rest is still here.
    pub fn write_now(&mut self, fd: RawFd) -> io::Result<bool> {
        while self.written < self.bytes {
            let n = sio::try_write_parts(fd, &self.slices())?;
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
        self.framing.clear();
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

#[derive(Default)]
struct State {
    job: Option<Job>,
    /// The flusher sleeps until woken (no job armed for a while). Otherwise it wakes every
    /// [`DEADLINE`] on its own, so arming a job needs no wake-up (no futex, no context switch
    /// per request on a busy worker).
    parked: bool,
    /// When a job was last armed.
    last_arm: Option<Instant>,
    /// The flusher took the job and is writing it.
    writing: bool,
    /// What the flusher wrote, handed back with the result (false: the socket took part).
    done: Option<(Pending, io::Result<bool>)>,
}

/// The worker's flusher thread and its one slot.
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
            match st.job.as_ref().map(|j| j.armed) {
                Some(armed) if armed.elapsed() >= DEADLINE => {
                    // The app is still producing: send what it gave so far.
                    let Some(mut job) = st.job.take() else {
                        continue;
                    };
                    st.writing = true;
                    drop(st);
                    // Never waits for the socket: what it does not take now stays for the
                    // worker, which waits for the client without holding up the others.
                    let result = job.pending.write_now(job.fd);
                    st = self.lock();
                    st.writing = false;
                    st.done = Some((job.pending, result));
                    self.cv.notify_all();
                }
                None if st.last_arm.is_none_or(|t| t.elapsed() > PARK_AFTER) => {
                    st.parked = true;
                    st = self.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
                    st.parked = false;
                }
                // A job not yet due, or recent activity: tick.
                Some(_) | None => {
                    st = self
                        .cv
                        .wait_timeout(st, DEADLINE)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }

    /// Hands `pending` to the flusher while the app produces its next block. A ticking
    /// flusher sees it within two [`DEADLINE`]s; a parked one is woken.
    pub fn arm(&self, fd: RawFd, pending: Pending) {
        let mut st = self.lock();
        let now = Instant::now();
        st.job = Some(Job {
            fd,
            pending,
            armed: now,
        });
        st.last_arm = Some(now);
        if st.parked {
            self.cv.notify_all();
        }
    }

    /// Takes the pending blocks back. `(pending, None)`: not written yet, go on coalescing;
    /// `(pending, Some(result))`: the flusher wrote them, all (`Ok(true)`) or what the socket
    /// took (`Ok(false)`: the rest is still in `pending`).
    pub fn disarm(&self) -> (Pending, Option<io::Result<bool>>) {
        let mut st = self.lock();
        if let Some(job) = st.job.take() {
            return (job.pending, None);
        }
        loop {
            if let Some((pending, result)) = st.done.take() {
                return (pending, Some(result));
            }
            if !st.writing {
                return (Pending::default(), Some(Ok(true)));
            }
            st = self.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }
}
