//! Coalescing of response blocks, within PEP 3333's rule.
//!
//! The rule: a server must send each block the app yields at once, "or guarantee that it will
//! continue transmission even while the application is producing its next block". Writing
//! each 64 KiB block with its own syscall costs twice what one large write does on the
//! kernel's side, so the inline worker keeps the blocks it got while it asks the app for the
//! next one, and hands them to this per-worker flusher thread meanwhile: if the app has not
//! answered within [`DEADLINE`], the flusher sends them (transmission continues); if it has,
//! the worker takes them back and sends them with the next ones in one `writev`.
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
    pub bytes: usize,
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

    pub fn slices(&self) -> Vec<&[u8]> {
        // SAFETY: see the `Send` impl: every piece points into memory owned by `self`.
        self.pieces
            .iter()
            .map(|&(p, n)| unsafe { std::slice::from_raw_parts(p, n) })
            .collect()
    }

    /// Writes everything: first without waiting; if the socket is full, `wait` is called to
    /// finish (the caller releases the GIL there).
    pub fn write(&self, fd: RawFd, timeout: Duration) -> io::Result<()> {
        sio::write_all(fd, &self.slices(), 0, timeout)
    }

    /// Forgets what was written, keeping the allocations.
    pub fn clear(&mut self) {
        self.owners.clear();
        self.framing.clear();
        self.pieces.clear();
        self.bytes = 0;
    }
}

struct Job {
    fd: RawFd,
    timeout: Duration,
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
    /// What the flusher wrote, handed back with the result.
    done: Option<(Pending, io::Result<()>)>,
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
                    let Some(job) = st.job.take() else { continue };
                    st.writing = true;
                    drop(st);
                    let result = job.pending.write(job.fd, job.timeout);
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
    pub fn arm(&self, fd: RawFd, timeout: Duration, pending: Pending) {
        let mut st = self.lock();
        let now = Instant::now();
        st.job = Some(Job {
            fd,
            timeout,
            pending,
            armed: now,
        });
        st.last_arm = Some(now);
        if st.parked {
            self.cv.notify_all();
        }
    }

    /// Takes the pending blocks back. `(pending, None)`: not written yet, go on coalescing;
    /// `(pending, Some(result))`: the flusher wrote them (`pending` is to be cleared).
    pub fn disarm(&self) -> (Pending, Option<io::Result<()>>) {
        let mut st = self.lock();
        if let Some(job) = st.job.take() {
            return (job.pending, None);
        }
        loop {
            if let Some((pending, result)) = st.done.take() {
                return (pending, Some(result));
            }
            if !st.writing {
                return (Pending::default(), Some(Ok(())));
            }
            st = self.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }
}
