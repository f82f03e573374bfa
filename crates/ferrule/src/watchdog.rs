//! The per-request timeout (`--timeout`): a Rust thread that watches every thread that calls
//! into the app. When one call (the app call, one step of its iterable, or `close()`) runs
//! longer than the timeout, it dumps every Python thread's stack to the error log (through
//! `faulthandler`, which needs no GIL, so it works while the stuck thread holds it), answers the
//! request with a 504 if nothing was sent yet (else cuts the connection), and has the worker
//! stop gracefully; the master starts a replacement at once.
//!
//! Time spent waiting for the client (reading the body) does not count: `wsgi.input` pauses
//! the clock around its waits.
use std::cell::Cell;
use std::os::fd::RawFd;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU16, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ferrule_proto::http1::response as enc;

use crate::access::Copied;
use crate::log::{self, error};
use crate::slots::now_ms;

/// No request on this thread.
const IDLE: u8 = 0;
/// A request is running and nothing was sent.
const OPEN: u8 = 1;
/// The response's head went out.
const SENT: u8 = 2;
/// The watchdog answered (or cut) the request: nothing more may be written.
const TIMED_OUT: u8 = 3;

/// The signal `faulthandler` is registered on in workers, to dump every thread's stack.
pub const DUMP_SIGNAL: libc::c_int = libc::SIGUSR2;

/// One app-calling thread's state, read by the watchdog thread.
struct Slot {
    /// `now_ms()` when the current call into the app began; 0 outside the app.
    since: AtomicU64,
    fd: AtomicI32,
    phase: AtomicU8,
    /// The connection speaks HTTP to the client: a 504 can be written on it.
    http: AtomicBool,
    /// The status of the response head that went out, and the body bytes sent since (for
    /// the access line of a cut).
    code: AtomicU16,
    sent: AtomicU64,
    /// What the request's access line needs, when the watchdog may have to write it
    /// ([`copying`]). Set and taken together with `phase` (under this lock) by the request's
    /// thread and by the watchdog, so that one of them writes the line, never both.
    copy: Mutex<Option<Copied>>,
    /// A side thread of the inline worker (server/side.rs): stuck, it holds only itself,
    /// not the event loop.
    off_loop: AtomicBool,
}

impl Slot {
    fn copy(&self) -> MutexGuard<'_, Option<Copied>> {
        self.copy.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

thread_local! {
    static SLOT: Cell<Option<&'static Slot>> = const { Cell::new(None) };
}

static SLOTS: Mutex<Vec<&'static Slot>> = Mutex::new(Vec::new());
static STUCK: AtomicUsize = AtomicUsize::new(0);
/// The watchdog runs in this process.
static WATCHING: AtomicBool = AtomicBool::new(false);

/// Whether a request's thread gives the watchdog a copy of what its access line needs
/// ([`keep_copy`]): only when the watchdog runs and an access log or metrics want the line.
#[inline]
#[must_use]
pub fn copying() -> bool {
    WATCHING.load(Ordering::Relaxed) && crate::access::wanted()
}

fn slot() -> &'static Slot {
    SLOT.with(|c| {
        if let Some(s) = c.get() {
            return s;
        }
        let s: &'static Slot = Box::leak(Box::new(Slot {
            since: AtomicU64::new(0),
            fd: AtomicI32::new(-1),
            phase: AtomicU8::new(IDLE),
            http: AtomicBool::new(true),
            code: AtomicU16::new(0),
            sent: AtomicU64::new(0),
            copy: Mutex::new(None),
            off_loop: AtomicBool::new(false),
        }));
        SLOTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(s);
        c.set(Some(s));
        s
    })
}

/// A request begins on this thread, on connection `fd`; `http`: a 504 may be written on it
/// (for a front server's protocol the watchdog only cuts the connection).
pub fn request_begin(fd: RawFd, http: bool) {
    request_on(fd, http, OPEN);
}

/// A request whose response waited for the client goes on, on this thread (its response
/// started, with status `code` and `sent` body bytes so far: a timeout cuts the connection).
pub fn request_resume(fd: RawFd, http: bool, code: u16, sent: u64) {
    let s = slot();
    s.code.store(code, Ordering::Relaxed);
    s.sent.store(sent, Ordering::Relaxed);
    request_on(fd, http, SENT);
}

/// The response on this thread has sent `total` body bytes so far.
#[inline]
pub fn body_sent(total: u64) {
    slot().sent.store(total, Ordering::Relaxed);
}

fn request_on(fd: RawFd, http: bool, phase: u8) {
    let s = slot();
    s.fd.store(fd, Ordering::Release);
    s.http.store(http, Ordering::Release);
    s.phase.store(phase, Ordering::Release);
}

/// Gives the watchdog what the access line of the request on this thread needs, should it
/// answer (or cut) the request itself; asked only when [`copying`].
pub fn keep_copy(copy: Copied) {
    let old = slot().copy().replace(copy);
    drop(old);
}

/// This thread is a side thread of the inline worker, not its event loop: a request stuck
/// on it is handled as one on an app thread (the worker stops gracefully).
pub fn off_loop() {
    slot().off_loop.store(true, Ordering::Release);
}

/// The request on this thread is over. True if the watchdog took it over (timed out): it
/// wrote the request's access line.
pub fn request_end() -> bool {
    let s = slot();
    s.since.store(0, Ordering::Release);
    s.fd.store(-1, Ordering::Release);
    if !copying() {
        return s.phase.swap(IDLE, Ordering::AcqRel) == TIMED_OUT;
    }
    let mut copy = s.copy();
    let timed_out = s.phase.swap(IDLE, Ordering::AcqRel) == TIMED_OUT;
    let old = copy.take();
    drop(copy);
    drop(old);
    timed_out
}

/// Marks a call into the app; the clock runs until the guard drops.
pub struct InApp(&'static Slot);

#[must_use]
pub fn enter() -> InApp {
    let s = slot();
    s.since.store(now_ms().max(1), Ordering::Release);
    InApp(s)
}

impl Drop for InApp {
    fn drop(&mut self) {
        self.0.since.store(0, Ordering::Release);
    }
}

/// Stops the clock while the app waits for the client (reading the body).
pub struct Paused(&'static Slot, bool);

#[must_use]
pub fn pause() -> Paused {
    let s = slot();
    let running = s.since.swap(0, Ordering::AcqRel) != 0;
    Paused(s, running)
}

impl Drop for Paused {
    fn drop(&mut self) {
        if self.1 {
            self.0.since.store(now_ms().max(1), Ordering::Release);
        }
    }
}

/// Before the response's first bytes go out (`code`: its status): false if the watchdog
/// already answered it.
pub fn claim_response(code: u16) -> bool {
    let s = slot();
    s.code.store(code, Ordering::Relaxed);
    s.sent.store(0, Ordering::Relaxed);
    match s
        .phase
        .compare_exchange(OPEN, SENT, Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => true,
        Err(p) => p != TIMED_OUT,
    }
}

/// Requests the watchdog took over and whose threads are still inside the app.
pub fn stuck_count() -> usize {
    STUCK.load(Ordering::Acquire)
}

/// What the watchdog needs to know.
pub struct Settings {
    pub timeout: Duration,
    pub graceful: Duration,
    /// The app runs on the event loop thread: nothing else can progress once a request on
    /// it is stuck (one on a side thread, see `off_loop`, holds only its thread).
    pub inline: bool,
    pub server_header: bool,
}

/// Starts the watchdog thread; `stop` makes the worker stop gracefully.
pub fn spawn(settings: Settings, stop: Box<dyn Fn() + Send>) {
    let timeout_ms = settings.timeout.as_millis() as u64;
    WATCHING.store(true, Ordering::Relaxed);
    let tick = (settings.timeout / 8).clamp(Duration::from_millis(50), Duration::from_millis(500));
    let spawned = std::thread::Builder::new()
        .name("ferrule-watchdog".into())
        .spawn(move || {
            let mut fired_at: Option<u64> = None;
            loop {
                let mut loop_stuck = false;
                std::thread::sleep(tick);
                let now = now_ms();
                let slots: Vec<&'static Slot> = SLOTS
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                for s in slots {
                    let since = s.since.load(Ordering::Acquire);
                    if since == 0 || now.saturating_sub(since) <= timeout_ms {
                        continue;
                    }
                    let phase = s.phase.load(Ordering::Acquire);
                    if phase == TIMED_OUT || phase == IDLE {
                        continue;
                    }
                    take_over(s, &settings, now - since);
                    fired_at.get_or_insert(now);
                    loop_stuck |= !s.off_loop.load(Ordering::Acquire);
                }
                if let Some(at) = fired_at {
                    if settings.inline && loop_stuck {
                        // The event loop itself is stuck: no other request can finish.
                        exit_now();
                    }
                    if at == now {
                        stop();
                    }
                    if now.saturating_sub(at) > settings.graceful.as_millis() as u64 {
                        error!("worker did not stop within the graceful timeout; exiting");
                        exit_now();
                    }
                }
            }
        });
    if let Err(e) = spawned {
        error!("cannot start the request watchdog (--timeout): {e}");
    }
}

/// How long the watchdog waits, after a stuck HTTP/2 stream's call, for the edge thread to
/// send its 504 before the worker goes on to stop.
const EDGE_ANSWER: Duration = Duration::from_millis(500);

fn take_over(s: &Slot, settings: &Settings, ran_ms: u64) {
    answer(s, settings, ran_ms);
    // Counted only once the client has its answer: a graceful stop waits for every request
    // not counted here, and ends (closing their connections) as soon as all are.
    STUCK.fetch_add(1, Ordering::AcqRel);
}

/// Logs the timeout, dumps the stacks, and answers the request with a 504 (or cuts it).
fn answer(s: &Slot, settings: &Settings, ran_ms: u64) {
    let fd = s.fd.load(Ordering::Acquire);
    error!(
        "WORKER TIMEOUT (pid:{}): a call into the app has run for {}.{:03} s, over --timeout {} s; \
         the Python stacks of all threads follow, then this worker is replaced",
        std::process::id(),
        ran_ms / 1000,
        ran_ms % 1000,
        settings.timeout.as_secs()
    );
    log::flush();
    // SAFETY: sends a signal to our own process; faulthandler's handler writes the stacks.
    unsafe {
        libc::kill(libc::getpid(), DUMP_SIGNAL);
    }
    // The handler runs on another thread; give it a moment before writing on.
    std::thread::sleep(Duration::from_millis(100));
    // Taken with the phase: the request's thread, if it ends now, writes its own line.
    let (answered, copy) = {
        let mut copy = s.copy();
        let take = |from| {
            s.phase
                .compare_exchange(from, TIMED_OUT, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        };
        let answered = take(OPEN);
        // Else the response had started: the watchdog cuts it (below).
        let mine = answered || take(SENT);
        (answered, if mine { copy.take() } else { None })
    };
    if fd < 0 {
        // An HTTP/2 stream (no connection of its own): its 504 is written by the edge thread,
        // whose own deadline has passed by now; give it time to go out before a stuck inline
        // worker exits.
        std::thread::sleep(EDGE_ANSWER);
        return;
    }
    if answered && s.http.load(Ordering::Acquire) {
        let server = settings.server_header.then_some(&b"ferrule"[..]);
        let resp = crate::net::date::with(|d| {
            enc::simple_response(enc::StatusLine::Http11, 504, true, d, server, false)
        });
        // SAFETY: fd is the request's connection, kept open by its task while the request is
        // in the app (which it still is); a short write on a fresh response head is harmless.
        let written = unsafe {
            let n = libc::write(fd, resp.as_ptr().cast(), resp.len());
            libc::shutdown(fd, libc::SHUT_WR);
            n
        };
        if let Some(copy) = copy {
            // The body of a simple response: its reason and a newline.
            let body = enc::reason(504).len() as u64 + 1;
            let sent = if usize::try_from(written).is_ok_and(|n| n == resp.len()) {
                body
            } else {
                0
            };
            copy.write(504, sent);
        }
    } else {
        s.phase.store(TIMED_OUT, Ordering::Release);
        // The response had started: all the client can learn is that it was cut short.
        // SAFETY: as above, the connection is still open; shutdown does not close the fd.
        unsafe {
            libc::shutdown(fd, libc::SHUT_RDWR);
        }
        if let Some(copy) = copy {
            // Cut: the status the head carried and the body bytes handed to the connection
            // (504 and none when no head went out, on a front server's protocol).
            let (code, sent) = match s.code.load(Ordering::Relaxed) {
                _ if answered => (504, 0),
                0 => (504, 0),
                c => (c, s.sent.load(Ordering::Relaxed)),
            };
            copy.write(code, sent);
        }
    }
}

/// Ends a worker stuck past `--timeout` (the master counts it as a timeout, not a crash).
fn exit_now() -> ! {
    crate::slots::leaving(crate::slots::LEAVING_TIMEOUT);
    log::flush();
    // SAFETY: _exit ends the process without running Python's finalisation, which would wait
    // for the stuck thread's GIL.
    unsafe { libc::_exit(1) }
}
