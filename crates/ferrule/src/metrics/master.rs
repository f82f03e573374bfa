//! The master's side: worker restarts by reason, the counters of workers that exited (folded
//! in when the master reaps them, before their slot is reused), and a [`Snapshot`] of the
//! whole server. The lock here is only ever taken by the master's threads; a worker forked
//! while a scrape holds it never touches it.
use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::{gauge, WorkerBlock, BUCKETS_US};

/// Why the master replaced a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It exited or was killed without being asked to.
    Crash,
    /// `--timeout`: its watchdog gave up on a request, or its heartbeat went stale.
    Timeout,
    /// `--max-requests`.
    MaxRequests,
    /// `--max-worker-memory`.
    Memory,
    /// HUP or `--reload`.
    Reload,
}

/// `ferrule_worker_restarts_total`'s `reason` label values, in [`Reason`]'s order.
pub const REASONS: [&str; 5] = ["crash", "timeout", "max-requests", "memory", "reload"];

static RESTARTS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

/// The master replaces a worker for `reason`.
pub fn restart(reason: Reason) {
    if let Some(c) = RESTARTS.get(reason as usize) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// One histogram series, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hist {
    pub count: u64,
    pub sum_us: u64,
    /// Not cumulative, as in [`super::Series`].
    pub buckets: [u64; BUCKETS_US.len()],
}

/// Counters summed over workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub accepted: u64,
    pub dropped: u64,
    /// By series key ([`super::key`]).
    pub series: BTreeMap<u64, Hist>,
}

impl Totals {
    const fn new() -> Self {
        Self {
            request_bytes: 0,
            response_bytes: 0,
            accepted: 0,
            dropped: 0,
            series: BTreeMap::new(),
        }
    }

    /// Adds a block's counters.
    pub fn add(&mut self, b: &WorkerBlock) {
        let r = Ordering::Relaxed;
        self.request_bytes += b.request_bytes.load(r);
        self.response_bytes += b.response_bytes.load(r);
        self.accepted += b.accepted.load(r);
        self.dropped += b.dropped.load(r);
        for s in &b.series {
            let stored = s.key.load(Ordering::Acquire);
            if stored == 0 {
                continue;
            }
            let h = self.series.entry(stored - 1).or_default();
            h.count += s.count.load(r);
            h.sum_us += s.sum_us.load(r);
            for (sum, c) in h.buckets.iter_mut().zip(&s.buckets) {
                *sum += c.load(r);
            }
        }
    }
}

/// The counters of workers that exited.
static FOLDED: Mutex<Totals> = Mutex::new(Totals::new());

/// The master reaped the worker of slot `slot`: its counters join the folded ones and its
/// block is cleared for the slot's next worker. Call before the slot is released.
pub fn fold(slot: usize) {
    let Some(blocks) = super::blocks() else {
        return;
    };
    let b = blocks.block(slot);
    let mut folded = FOLDED.lock().unwrap_or_else(PoisonError::into_inner);
    folded.add(b);
    b.clear();
}

/// A listening TCP socket's accept queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    pub listener: String,
    /// Connections waiting to be accepted.
    pub queued: u64,
    /// The queue's limit (`--backlog`, capped by `net.core.somaxconn`).
    pub limit: u64,
}

/// The whole server at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub totals: Totals,
    pub active: u64,
    pub busy: u64,
    pub threads: u64,
    pub open: u64,
    pub queued: u64,
    /// The longest wait for an app thread in the last 10 to 20 s, in microseconds.
    pub wait_max_us: u64,
    pub restarts: [u64; 5],
    /// Live workers: pid and resident memory in bytes.
    pub workers: Vec<(i32, Option<u64>)>,
    pub backlog: Vec<Backlog>,
}

/// Everything, summed over the live workers and those that exited.
#[must_use]
pub fn snapshot(listeners: &[(String, RawFd)]) -> Snapshot {
    let mut snap = Snapshot::default();
    let r = Ordering::Relaxed;
    if let (Some(blocks), Ok(table)) = (super::blocks(), crate::slots::table()) {
        let window = crate::slots::now_ms() / 10_000;
        // Under the lock: a worker being folded is counted once, before or after.
        let folded = FOLDED.lock().unwrap_or_else(PoisonError::into_inner);
        snap.totals = folded.clone();
        for i in 0..crate::slots::SLOTS {
            let pid = table.slot(i).pid.load(Ordering::Acquire);
            if pid == 0 {
                continue;
            }
            let b = blocks.block(i);
            snap.totals.add(b);
            snap.active += gauge(&b.active);
            snap.busy += gauge(&b.busy);
            snap.threads += b.threads.load(r);
            snap.open += gauge(&b.open);
            snap.queued += gauge(&b.queued);
            if b.wait_window.load(r) + 1 >= window {
                snap.wait_max_us = snap.wait_max_us.max(b.wait_max_us.load(r));
            }
            if pid > 0 {
                snap.workers.push((pid, None));
            }
        }
        drop(folded);
    }
    for w in &mut snap.workers {
        w.1 = rss_bytes(w.0);
    }
    for (i, c) in RESTARTS.iter().enumerate() {
        if let Some(v) = snap.restarts.get_mut(i) {
            *v = c.load(r);
        }
    }
    snap.backlog = listeners
        .iter()
        .filter_map(|(name, fd)| {
            let (queued, limit) = accept_queue(*fd)?;
            Some(Backlog {
                listener: name.clone(),
                queued,
                limit,
            })
        })
        .collect();
    snap
}

/// A process's resident memory in bytes, from /proc.
#[must_use]
pub fn rss_bytes(pid: libc::pid_t) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).unwrap_or(4096))
}

/// A listening TCP socket's accept queue and its limit (`TCP_INFO`: for a listener Linux
/// puts them in `tcpi_unacked` and `tcpi_sacked`); None for other sockets.
fn accept_queue(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: tcp_info is plain old data; zeroes are a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::tcp_info>()).ok()?;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, which is that large; a
    // descriptor that is not a TCP socket gives an error.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &raw mut len,
        )
    };
    if rc != 0 || info.tcpi_state != 10 {
        // 10: TCP_LISTEN.
        return None;
    }
    Some((u64::from(info.tcpi_unacked), u64::from(info.tcpi_sacked)))
}
