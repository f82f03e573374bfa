//! `--metrics-bind` and `--statsd-host`: figures the workers count and the master reports.
//!
//! A second anonymous `MAP_SHARED` mapping, made in the master before the first fork next to
//! the slot table ([`crate::slots`]), holds one [`WorkerBlock`] of atomics per worker slot.
//! A worker only adds to its own block with relaxed atomics on the request path; the master
//! reads every block to answer a scrape ([`serve`]) or to send statsd lines, and folds a dead
//! worker's counters into its own accumulator ([`master`]) before the slot is reused, so that
//! counters never go backwards. Nothing here goes through the request path of another
//! process, takes a lock in a worker, or touches Python. Without either option nothing is
//! mapped and every call below returns after one load.
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod master;
mod render;
pub mod serve;

pub use render::Format;

/// OpenTelemetry's default buckets for `http.server.request.duration`, in microseconds
/// (0.005 s to 10 s); a request slower than the last lands only in `+Inf`.
pub const BUCKETS_US: [u64; 14] = [
    5_000, 10_000, 25_000, 50_000, 75_000, 100_000, 250_000, 500_000, 750_000, 1_000_000,
    2_500_000, 5_000_000, 7_500_000, 10_000_000,
];

/// `http.request.method` values; anything else is `_OTHER`, as OpenTelemetry asks.
pub const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER",
];

/// `network.protocol.version` values; `unknown` for a request refused before its head was read
/// or a gateway's unusual `SERVER_PROTOCOL`.
pub const PROTOCOLS: [&str; 4] = ["unknown", "1.0", "1.1", "2"];

/// Histogram series (method, status, protocol) one worker can hold; more are counted in
/// `ferrule_metrics_series_dropped_total`. A worker's block is about 17 KiB, and pages of the
/// mapping that no worker touches cost no memory.
pub const SERIES: usize = 128;

/// One histogram series: a request duration by method, status code and protocol.
#[repr(C)]
pub struct Series {
    /// [`key`] + 1; 0 while the entry is free.
    pub key: AtomicU64,
    pub count: AtomicU64,
    pub sum_us: AtomicU64,
    /// Requests per bucket (not cumulative): `buckets[i]` counts those up to `BUCKETS_US[i]`
    /// and above the bucket before.
    pub buckets: [AtomicU64; BUCKETS_US.len()],
}

/// One worker's figures. Counters only grow; gauges go up and down (stored as wrapping u64,
/// read as i64).
#[repr(C)]
pub struct WorkerBlock {
    pub active: AtomicU64,
    pub busy: AtomicU64,
    pub threads: AtomicU64,
    pub open: AtomicU64,
    pub accepted: AtomicU64,
    pub request_bytes: AtomicU64,
    pub response_bytes: AtomicU64,
    pub queued: AtomicU64,
    /// The 10 s window (`now_ms / 10_000`) `wait_max_us` belongs to.
    pub wait_window: AtomicU64,
    pub wait_max_us: AtomicU64,
    pub dropped: AtomicU64,
    pub series: [Series; SERIES],
}

/// The blocks, one per slot of [`crate::slots::Table`].
pub struct Blocks {
    base: NonNull<WorkerBlock>,
}

// SAFETY: the mapping only hands out shared references to blocks made of atomics.
unsafe impl Send for Blocks {}
// SAFETY: as above; every field is an atomic, safe to use from any thread or process.
unsafe impl Sync for Blocks {}

static BLOCKS: OnceLock<Blocks> = OnceLock::new();
/// In a worker: its own block (set after the fork, only when metrics are on).
static MINE: OnceLock<&'static WorkerBlock> = OnceLock::new();

/// Maps the blocks (in the master, before any fork). Call only when metrics are asked for.
///
/// # Errors
/// The mapping failed.
pub fn map() -> std::io::Result<&'static Blocks> {
    if let Some(b) = BLOCKS.get() {
        return Ok(b);
    }
    let size = crate::slots::SLOTS * std::mem::size_of::<WorkerBlock>();
    // SAFETY: a fresh anonymous shared mapping; no existing memory is touched.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // Zero-filled memory is a valid WorkerBlock (atomics at 0), and page-aligned.
    let base = NonNull::new(ptr.cast::<WorkerBlock>()).ok_or_else(std::io::Error::last_os_error)?;
    Ok(BLOCKS.get_or_init(|| Blocks { base }))
}

/// The blocks, if metrics are on.
#[must_use]
pub fn blocks() -> Option<&'static Blocks> {
    BLOCKS.get()
}

impl Blocks {
    /// Slot `i`'s block (< SLOTS).
    #[must_use]
    pub fn block(&self, i: usize) -> &WorkerBlock {
        assert!(i < crate::slots::SLOTS, "slot index {i} out of range");
        // SAFETY: i < SLOTS, so the block lies inside the mapping, which lives for the rest
        // of the process; zeroed bytes are valid atomics.
        unsafe { &*self.base.as_ptr().add(i) }
    }
}

/// In a new worker: its block is slot `i`'s.
pub fn set_mine(i: usize) {
    if let Some(b) = BLOCKS.get() {
        let _ = MINE.set(b.block(i));
    }
}

/// This worker's block; None when metrics are off (or outside the supervisor).
#[inline]
fn mine() -> Option<&'static WorkerBlock> {
    MINE.get().copied()
}

fn method_index(m: &[u8]) -> u64 {
    METHODS
        .iter()
        .position(|k| k.as_bytes() == m)
        .map_or(METHODS.len() as u64 - 1, |i| i as u64)
}

fn protocol_index(v: &[u8]) -> u64 {
    match v {
        b"HTTP/1.0" => 1,
        b"HTTP/1.1" => 2,
        b"HTTP/2" | b"HTTP/2.0" => 3,
        _ => 0,
    }
}

/// A series' key: method, protocol, status.
#[must_use]
pub fn key(method: u64, protocol: u64, status: u16) -> u64 {
    method | (protocol << 8) | (u64::from(status) << 16)
}

/// A key's parts: (method index, protocol index, status).
#[must_use]
pub fn parts(key: u64) -> (usize, usize, u16) {
    let m = usize::try_from(key & 0xff)
        .unwrap_or(0)
        .min(METHODS.len() - 1);
    let p = usize::try_from((key >> 8) & 0xff)
        .unwrap_or(0)
        .min(PROTOCOLS.len() - 1);
    (m, p, u16::try_from((key >> 16) & 0xffff).unwrap_or(0))
}

/// The bucket a duration falls in; `BUCKETS_US.len()` for `+Inf` only.
#[must_use]
pub fn bucket(us: u64) -> usize {
    BUCKETS_US.partition_point(|&b| b < us)
}

impl WorkerBlock {
    /// The series for `key`, claimed if new; None if the table is full.
    fn series(&self, key: u64) -> Option<&Series> {
        let stored = key + 1;
        let start = usize::try_from(stored.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 57).unwrap_or(0);
        for i in 0..SERIES {
            let s = self.series.get((start + i) % SERIES)?;
            match s
                .key
                .compare_exchange(0, stored, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(s),
                Err(k) if k == stored => return Some(s),
                Err(_) => {}
            }
        }
        None
    }
}

/// One answered request (the app's, a static or health answer, or a refusal): called from
/// [`crate::access::write`]. `received`: the request body's declared length.
pub fn observe(
    method: &[u8],
    version: &[u8],
    status: u16,
    received: u64,
    sent: u64,
    elapsed: Duration,
) {
    let Some(b) = mine() else {
        return;
    };
    b.request_bytes.fetch_add(received, Ordering::Relaxed);
    b.response_bytes.fetch_add(sent, Ordering::Relaxed);
    let Some(s) = b.series(key(method_index(method), protocol_index(version), status)) else {
        b.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    if let Some(c) = s.buckets.get(bucket(us)) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    s.sum_us.fetch_add(us, Ordering::Relaxed);
    s.count.fetch_add(1, Ordering::Relaxed);
}

/// Whether this worker counts (metrics on): callers take the time a request starts only then
/// (or for the access log).
#[inline]
#[must_use]
pub fn enabled() -> bool {
    mine().is_some()
}

/// A gauge held up by one while it lives.
pub struct Held(&'static AtomicU64);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn hold(pick: impl FnOnce(&'static WorkerBlock) -> &'static AtomicU64) -> Option<Held> {
    let g = pick(mine()?);
    g.fetch_add(1, Ordering::Relaxed);
    Some(Held(g))
}

/// A request in progress (`http_server_active_requests`), from the bridge's start to its end.
#[must_use]
pub fn active_request() -> Option<Held> {
    hold(|b| &b.active)
}

/// An app thread in the app (or the inline worker's thread).
#[must_use]
pub fn thread_busy() -> Option<Held> {
    hold(|b| &b.busy)
}

/// An open connection (any protocol); counts it accepted too.
#[must_use]
pub fn connection() -> Option<Held> {
    let b = mine()?;
    b.accepted.fetch_add(1, Ordering::Relaxed);
    hold(|b| &b.open)
}

/// The worker's app threads (1 inline).
pub fn app_threads(n: u64) {
    if let Some(b) = mine() {
        b.threads.store(n, Ordering::Relaxed);
    }
}

/// A request waiting for an app thread; dropping it (as the thread starts the job, or when
/// the job is dropped unrun) ends the wait and notes how long it was.
pub struct Queued(&'static WorkerBlock, Instant);

/// A request starts to wait for an app thread.
#[must_use]
pub fn queued() -> Option<Queued> {
    let b = mine()?;
    b.queued.fetch_add(1, Ordering::Relaxed);
    Some(Queued(b, Instant::now()))
}

impl Drop for Queued {
    fn drop(&mut self) {
        let b = self.0;
        b.queued.fetch_sub(1, Ordering::Relaxed);
        let us = u64::try_from(self.1.elapsed().as_micros()).unwrap_or(u64::MAX);
        let window = crate::slots::now_ms() / 10_000;
        if b.wait_window.swap(window, Ordering::Relaxed) == window {
            b.wait_max_us.fetch_max(us, Ordering::Relaxed);
        } else {
            b.wait_max_us.store(us, Ordering::Relaxed);
        }
    }
}

impl WorkerBlock {
    /// Zeroes every figure (the master, once the worker is gone and folded).
    fn clear(&self) {
        for a in [
            &self.active,
            &self.busy,
            &self.threads,
            &self.open,
            &self.accepted,
            &self.request_bytes,
            &self.response_bytes,
            &self.queued,
            &self.wait_window,
            &self.wait_max_us,
            &self.dropped,
        ] {
            a.store(0, Ordering::Relaxed);
        }
        for s in &self.series {
            s.count.store(0, Ordering::Relaxed);
            s.sum_us.store(0, Ordering::Relaxed);
            for b in &s.buckets {
                b.store(0, Ordering::Relaxed);
            }
            s.key.store(0, Ordering::Release);
        }
    }
}

/// A gauge's value (wrapping u64 read as signed, never below 0).
fn gauge(a: &AtomicU64) -> u64 {
    let v = a.load(Ordering::Relaxed);
    if v > u64::MAX / 2 {
        0
    } else {
        v
    }
}

#[cfg(test)]
mod tests;
