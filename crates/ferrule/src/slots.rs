//! What the master and its workers share: one slot per worker in an anonymous `MAP_SHARED`
//! mapping made before the first fork. A worker writes its heartbeat, readiness and "leaving"
//! flag; the master reads them without any message passing, so a wedged worker cannot block it.
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;

/// Slots in the table: workers, plus the new ones that overlap the old during a reload.
pub const SLOTS: usize = 4096;

/// One worker's state, written by the worker (and cleared by the master when it exits).
#[repr(C)]
#[derive(Default)]
pub struct WorkerSlot {
    /// The worker's pid; 0 for a free slot.
    pub pid: AtomicI32,
    /// 1 once the worker has loaded the app and is accepting connections.
    pub booted: AtomicU32,
    /// Not 0 once the worker stops accepting and is on its way out (request timeout, max
    /// requests): the master starts its replacement at once. The value says why (`LEAVING*`).
    pub leaving: AtomicU32,
    /// `now_ms()` of the worker event loop's last tick.
    pub heartbeat: AtomicU64,
    /// When the master marked the worker leaving (`now_ms()`), to kill it if it lingers.
    pub leaving_since: AtomicU64,
}

/// The slot table, shared across `fork`.
pub struct Table {
    base: NonNull<WorkerSlot>,
}

// SAFETY: the table only hands out shared references to slots made of atomics.
unsafe impl Send for Table {}
// SAFETY: as above; every field is an atomic, safe to access from any thread or process.
unsafe impl Sync for Table {}

static TABLE: OnceLock<Table> = OnceLock::new();
/// This process's slot, in a worker.
static MINE: OnceLock<usize> = OnceLock::new();

/// Milliseconds on the system-wide monotonic clock (the same in every process).
#[must_use]
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills a timespec on our stack.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

/// The table, mapped on first use (in the master, before any fork).
pub fn table() -> std::io::Result<&'static Table> {
    if let Some(t) = TABLE.get() {
        return Ok(t);
    }
    let size = SLOTS * std::mem::size_of::<WorkerSlot>();
    // SAFETY: a fresh anonymous shared mapping; no existing memory is touched.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // The mapping is zero-filled, which is a valid WorkerSlot (all atomics 0), and suitably
    // aligned (page-aligned).
    let base = NonNull::new(ptr.cast::<WorkerSlot>()).ok_or_else(std::io::Error::last_os_error)?;
    Ok(TABLE.get_or_init(|| Table { base }))
}

impl Table {
    /// Slot `i` (< SLOTS).
    #[must_use]
    pub fn slot(&self, i: usize) -> &WorkerSlot {
        assert!(i < SLOTS, "slot index {i} out of range");
        // SAFETY: i < SLOTS, so the pointer lies inside the mapping, which lives for the rest
        // of the process; the zeroed bytes are valid atomics.
        unsafe { &*self.base.as_ptr().add(i) }
    }

    /// Claims a free slot for a new worker (in the master, before the fork).
    pub fn claim(&self) -> Option<usize> {
        (0..SLOTS).find(|&i| {
            let s = self.slot(i);
            if s.pid.load(Ordering::Acquire) != 0 {
                return false;
            }
            s.booted.store(0, Ordering::Release);
            s.leaving.store(0, Ordering::Release);
            s.leaving_since.store(0, Ordering::Release);
            s.heartbeat.store(now_ms(), Ordering::Release);
            // A placeholder until the fork gives the real pid.
            s.pid.store(-1, Ordering::Release);
            true
        })
    }

    /// Frees a slot whose worker exited (or whose fork failed).
    pub fn release(&self, i: usize) {
        self.slot(i).pid.store(0, Ordering::Release);
    }
}

/// In a worker: remembers which slot is its own.
pub fn set_mine(i: usize) {
    let _ = MINE.set(i);
}

/// In a worker: its own slot, if it runs under the supervisor.
pub fn mine() -> Option<&'static WorkerSlot> {
    let i = *MINE.get()?;
    Some(TABLE.get()?.slot(i))
}

/// In a worker: the event loop is alive.
pub fn heartbeat() {
    if let Some(s) = mine() {
        s.heartbeat.store(now_ms(), Ordering::Release);
    }
}

/// In a worker: it has loaded the app and accepts connections.
pub fn booted() {
    if let Some(s) = mine() {
        s.heartbeat.store(now_ms(), Ordering::Release);
        s.booted.store(1, Ordering::Release);
    }
}

/// `WorkerSlot::leaving`: asked to (a signal), or for no reason the metrics count.
pub const LEAVING: u32 = 1;
/// `WorkerSlot::leaving`: its watchdog gave up on a request (`--timeout`).
pub const LEAVING_TIMEOUT: u32 = 2;
/// `WorkerSlot::leaving`: `--max-requests`.
pub const LEAVING_MAX_REQUESTS: u32 = 3;

/// In a worker: it is leaving (stopped accepting) for `why` (one of the `LEAVING*` values;
/// the first reason given stays); the master should replace it now.
pub fn leaving(why: u32) {
    if let Some(s) = mine() {
        let _ = s
            .leaving
            .compare_exchange(0, why, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// A stop signal (TERM, INT, QUIT) that came to a worker before its event loop's own handlers
/// were in place (while the app was loading, say); 0 if none.
static EARLY_STOP: AtomicI32 = AtomicI32::new(0);

/// From the worker's early signal handler: async-signal-safe (one atomic store).
pub fn note_early_stop(sig: i32) {
    EARLY_STOP.store(sig, Ordering::Release);
}

/// In a worker: the stop signal received before the event loop could handle signals.
pub fn early_stop() -> Option<i32> {
    Some(EARLY_STOP.load(Ordering::Acquire)).filter(|&s| s != 0)
}
