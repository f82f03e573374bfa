//! `--worker-connections` and descriptor exhaustion. A worker keeps at most its cap of
//! connections open; at the cap, or when `accept` fails for want of descriptors (EMFILE,
//! ENFILE), it stops accepting (new connections wait in the kernel's backlog, not in the
//! server) and makes room: its idle keep-alive connections are closed first, then the oldest
//! connections still sending a request head. It accepts again once a connection has ended.
//! Each episode is told in one log line, at most one line per [`LOG_EVERY`] (summed).
//!
//! Only HTTP/1 connections between requests (waiting for a head, or reading one) can be
//! closed this way; a connection inside a request, or on HTTP/2, FastCGI or another gateway
//! protocol, is left to end on its own.
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::log::{warning, Level, Repeated};
use crate::slots::now_ms;

/// Idle keep-alive connections closed at a time to make room (nginx frees 32 reusable
/// connections at a time too). Connections still sending a head are closed only as many as
/// the cap still needs.
const EVICT_BATCH: usize = 32;

/// How long the acceptor waits for a connection to end before it looks again (and closes
/// more) while it cannot accept.
const RECHECK: Duration = Duration::from_millis(250);

/// How long the acceptor waits after an `accept` error that is not about descriptors.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// At most one log line per this period about a worker that stopped accepting; the episodes
/// in between are summed into the next line.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Inside a request (or its response): not to be closed.
const BUSY: u8 = 0;
/// Waiting for the next request on a kept-alive connection, nothing of it received.
const IDLE: u8 = 1;
/// Reading a request head (or waiting for a new connection's first one).
const HEAD: u8 = 2;

/// One HTTP/1 connection as the worker's pressure relief sees it.
pub(super) struct ConnSlot {
    state: AtomicU8,
    /// `now_ms()` when the head began to come (or the connection was accepted).
    since: AtomicU64,
    evicted: AtomicBool,
    wake: Notify,
}

impl ConnSlot {
    /// Waiting for a next request after a response.
    pub(super) fn idle(&self) {
        self.state.store(IDLE, Ordering::Release);
    }

    /// A request head is coming, its first byte now.
    pub(super) fn head(&self) {
        self.since.store(now_ms(), Ordering::Release);
        self.state.store(HEAD, Ordering::Release);
    }

    /// Inside a request.
    pub(super) fn busy(&self) {
        self.state.store(BUSY, Ordering::Release);
    }

    /// Completes once the worker chose this connection to close.
    pub(super) async fn evicted(&self) {
        loop {
            let notified = self.wake.notified();
            if self.evicted.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

/// The worker's connections: how many are open, and its HTTP/1 connections' states.
pub struct Connections {
    /// `--worker-connections`.
    cap: usize,
    slots: Mutex<HashMap<u64, Arc<ConnSlot>>>,
    next_id: AtomicU64,
    /// Notified when a connection ends while an acceptor waits for room.
    room: Notify,
    waiting: AtomicBool,
    log: Mutex<Summary>,
}

/// What happened since the last log line.
#[derive(Default)]
struct Summary {
    last: Option<Instant>,
    episodes: usize,
    idle: usize,
    heads: usize,
}

/// Why the acceptor stopped.
enum Cause<'e> {
    Cap,
    Descriptors(&'e io::Error),
}

/// An HTTP/1 connection's registration; it leaves the table when dropped.
pub(super) struct Registered<'c> {
    conns: &'c Connections,
    id: u64,
    pub(super) slot: Arc<ConnSlot>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.conns
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

impl Connections {
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            slots: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            room: Notify::new(),
            waiting: AtomicBool::new(false),
            log: Mutex::new(Summary::default()),
        }
    }

    /// A connection ended: an acceptor waiting for room looks again.
    pub fn closed(&self) {
        if self.waiting.load(Ordering::Acquire) {
            self.room.notify_waiters();
        }
    }

    /// Enters an HTTP/1 connection in the table, reading its first head.
    pub(super) fn register(&self) -> Registered<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(ConnSlot {
            state: AtomicU8::new(HEAD),
            since: AtomicU64::new(now_ms()),
            evicted: AtomicBool::new(false),
            wake: Notify::new(),
        });
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::clone(&slot));
        Registered {
            conns: self,
            id,
            slot,
        }
    }

    /// Before an accept: while the worker is at its cap (`open()` connections open), closes
    /// connections to make room and waits until one has ended.
    pub(super) async fn before_accept(&self, open: impl Fn() -> usize) {
        while open() >= self.cap {
            let now = open();
            let needed = (now + 1).saturating_sub(self.cap);
            self.relieve(needed, &Cause::Cap, now).await;
        }
    }

    /// After a failed accept: for want of descriptors, makes room as at the cap; any other
    /// error is logged and the acceptor pauses a moment instead of spinning.
    pub(super) async fn accept_failed(&self, e: &io::Error, open: usize) {
        if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
            self.relieve(1, &Cause::Descriptors(e), open).await;
        } else {
            static FAILED: Repeated = Repeated::new();
            FAILED.log(Level::Error, || format!("accept failed: {e}"));
            tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
        }
    }

    /// Closes idle keep-alive connections (up to [`EVICT_BATCH`]), then the oldest still
    /// sending a head while fewer than `needed` were closed; then waits for one connection to
    /// end, or [`RECHECK`].
    async fn relieve(&self, needed: usize, cause: &Cause<'_>, open: usize) {
        let (idle, heads) = self.evict(needed);
        self.note(cause, idle, heads, open);
        self.waiting.store(true, Ordering::Release);
        let ended = self.room.notified();
        let _ = tokio::time::timeout(RECHECK, ended).await;
        self.waiting.store(false, Ordering::Release);
    }

    fn evict(&self, needed: usize) -> (usize, usize) {
        let mut idle = Vec::new();
        let mut heads = Vec::new();
        {
            let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            for s in slots.values() {
                if s.evicted.load(Ordering::Acquire) {
                    continue;
                }
                match s.state.load(Ordering::Acquire) {
                    IDLE if idle.len() < EVICT_BATCH => idle.push(Arc::clone(s)),
                    HEAD => heads.push((s.since.load(Ordering::Acquire), Arc::clone(s))),
                    _ => {}
                }
            }
        }
        let more = needed.saturating_sub(idle.len()).min(heads.len());
        if more > 0 && more < heads.len() {
            heads.select_nth_unstable_by_key(more - 1, |(since, _)| *since);
        }
        for s in &idle {
            s.evict();
        }
        for (_, s) in heads.iter().take(more) {
            s.evict();
        }
        (idle.len(), more)
    }

    fn note(&self, cause: &Cause<'_>, idle: usize, heads: usize, open: usize) {
        let mut sum = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        sum.episodes += 1;
        sum.idle += idle;
        sum.heads += heads;
        if sum.last.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            return;
        }
        let why = match cause {
            Cause::Cap => format!(
                "{open} connection(s) open, at --worker-connections {}",
                self.cap
            ),
            Cause::Descriptors(e) => {
                format!("out of file descriptors ({e}) with {open} connection(s) open")
            }
        };
        let last = sum.last.map_or_else(String::new, |t| {
            format!(" (in the last {} s)", t.elapsed().as_secs())
        });
        warning!(
            "{why}: accepting paused {} time(s){last}; closed {} idle keep-alive and {} \
             connection(s) still sending a request head to make room",
            sum.episodes,
            sum.idle,
            sum.heads
        );
        *sum = Summary {
            last: Some(Instant::now()),
            ..Summary::default()
        };
    }
}
