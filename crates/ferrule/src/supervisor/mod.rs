//! The master process: binds, forks workers (through Python's `os.fork`, so the interpreter's
//! fork handlers run), waits for signals with `sigtimedwait` (no threads, no handlers), and
//! respawns workers that die.
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::config::{BindAddr, Config};
use crate::log::{error, info, warning};
use crate::server::listener::{self, Listener};
use crate::wsgi;

pub mod shared;

/// A worker's exit code when it cannot load the app (gunicorn's WORKER_BOOT_ERROR).
pub const BOOT_ERROR: i32 = 3;

/// Signals the master waits for.
const SIGNALS: [libc::c_int; 8] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGUSR1,
];

/// Who returns from a fork.
enum Forked {
    Master(libc::pid_t),
    /// The child ran its worker to the end; the process must exit with this code.
    Child(i32),
}

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a sigset_t on our stack.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        for s in SIGNALS {
            libc::sigaddset(&raw mut set, s);
        }
        set
    }
}

fn set_mask(how: libc::c_int) {
    let set = signal_set();
    // SAFETY: sigprocmask with a valid set; the old mask is not needed.
    unsafe {
        libc::sigprocmask(how, &raw const set, std::ptr::null_mut());
    }
}

fn kill(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid we forked; a pid that already exited yields ESRCH, ignored.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn describe(status: libc::c_int) -> (String, Option<i32>) {
    if libc::WIFEXITED(status) {
        let code = libc::WEXITSTATUS(status);
        (format!("exited with code {code}"), Some(code))
    } else if libc::WIFSIGNALED(status) {
        (
            format!("was killed by signal {}", libc::WTERMSIG(status)),
            None,
        )
    } else {
        (format!("ended with status {status}"), None)
    }
}

/// What the master knows of one worker.
struct WorkerInfo {
    slot: usize,
    started: Instant,
    /// Told to stop (or stopping on its own): no longer counted, killed if it lingers.
    leaving: Option<Instant>,
}

struct Master<'a> {
    cfg: &'a Config,
    listeners: Vec<Listener>,
    workers: BTreeMap<libc::pid_t, WorkerInfo>,
    target: u32,
    table: &'static shared::Table,
    /// After a worker failed to boot on a respawn, the next try waits until then.
    retry_at: Option<Instant>,
    /// The wait before the next try, doubled at each failure (up to 30 s).
    backoff: Duration,
}

/// How long a new worker may take to import the app and start accepting.
const BOOT_TIMEOUT: Duration = Duration::from_mins(2);
/// Beyond `--timeout`, how stale a heartbeat may be before the master kills the worker (the
/// worker's own watchdog acts at `--timeout`; this is for a loop that is wedged).
const HEARTBEAT_GRACE: Duration = Duration::from_secs(2);
/// Beyond `--graceful-timeout`, how long a leaving worker may linger before SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Runs the server: returns the process exit code (in the master, or in a worker child).
pub fn run(py: Python<'_>, cfg: &Config) -> i32 {
    if let Some(mask) = cfg.umask {
        // SAFETY: umask only sets the process's file mode creation mask.
        unsafe { libc::umask(mask as libc::mode_t) };
    }
    let mut listeners = Vec::new();
    for b in &cfg.binds {
        match listener::bind(b, cfg.backlog, cfg.reuse_port) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                error!("{e}");
                return 1;
            }
        }
        if let (BindAddr::Unix(path), Some((uid, gid))) = (&b.addr, cfg.user) {
            // Workers running as --user must be able to accept on it: the socket is theirs.
            let gid = cfg.group.unwrap_or(gid);
            if let Err(e) = std::os::unix::fs::chown(path, Some(uid), Some(gid)) {
                error!("--user: cannot hand {} to uid {uid}: {e}", path.display());
                return 1;
            }
        }
    }
    let table = match shared::table() {
        Ok(t) => t,
        Err(e) => {
            error!("cannot map the worker table: {e}");
            return 1;
        }
    };
    let pid = std::process::id();
    info!("Starting ferrule {}", env!("CARGO_PKG_VERSION"));
    for l in &listeners {
        info!("Listening at: {} ({pid})", l.display);
    }
    info!(
        "Using worker: {}",
        if cfg.threads > 1 {
            format!("threads ({} app threads)", cfg.threads)
        } else {
            "inline".to_owned()
        }
    );
    if cfg.forwarded_allow.trusts_all() {
        warning!(
            "--forwarded-allow-ips '*': every peer may set X-Forwarded-For and the like; \
             use it only when nothing but your proxy can reach this server"
        );
    }
    if let Some(p) = &cfg.pidfile {
        if let Err(e) = std::fs::write(p, format!("{pid}\n")) {
            error!("--pid {}: cannot write the pidfile: {e}", p.display());
            return 1;
        }
    }
    wsgi::prepare(py);
    set_mask(libc::SIG_BLOCK);
    let mut master = Master {
        cfg,
        listeners,
        workers: BTreeMap::new(),
        target: cfg.workers,
        table,
        retry_at: None,
        backoff: Duration::from_secs(1),
    };
    let code = master.serve(py);
    if matches!(code, Forked::Master(_)) {
        remove_unix_sockets(cfg);
        if let Some(p) = &cfg.pidfile {
            let _ = std::fs::remove_file(p);
        }
    }
    match code {
        Forked::Master(c) | Forked::Child(c) => c,
    }
}

fn remove_unix_sockets(cfg: &Config) {
    for b in &cfg.binds {
        if let BindAddr::Unix(p) = &b.addr {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A worker's resident memory in bytes, from /proc.
fn rss_bytes(pid: libc::pid_t) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).unwrap_or(4096))
}

/// Why a new worker did not come up.
enum BootFailure {
    Exited(libc::c_int),
    TimedOut,
}

impl Master<'_> {
    /// `Forked::Master(code)` when the server stops; `Forked::Child(code)` in a worker.
    fn serve(&mut self, py: Python<'_>) -> Forked {
        // The first worker boots alone: an app that cannot load stops the server with its
        // error printed once, instead of once per worker.
        let first = match self.spawn(py) {
            Forked::Child(c) => return Forked::Child(c),
            Forked::Master(pid) => pid,
        };
        if first < 0 {
            return Forked::Master(1);
        }
        match self.wait_booted(first) {
            Ok(()) => {}
            Err(BootFailure::Exited(status)) if describe(status).1 == Some(BOOT_ERROR) => {
                error!("Worker failed to boot ({})", describe(status).0);
                self.stop(libc::SIGTERM, self.cfg.graceful_timeout);
                return Forked::Master(BOOT_ERROR);
            }
            // Killed from outside while it booted: start another, as after any crash.
            Err(BootFailure::Exited(status)) => {
                warning!("Worker (pid:{first}) {} while booting", describe(status).0);
            }
            Err(BootFailure::TimedOut) => {
                error!("Worker did not boot within {} s", BOOT_TIMEOUT.as_secs());
                self.stop(libc::SIGTERM, self.cfg.graceful_timeout);
                return Forked::Master(BOOT_ERROR);
            }
        }
        let set = signal_set();
        loop {
            if let Some(c) = self.fill(py) {
                return Forked::Child(c);
            }
            let timeout = libc::timespec {
                tv_sec: 0,
                tv_nsec: 200_000_000,
            };
            // SAFETY: sigtimedwait with a valid set and timeout; we do not need the siginfo.
            let sig = unsafe {
                libc::sigtimedwait(&raw const set, std::ptr::null_mut(), &raw const timeout)
            };
            match sig {
                libc::SIGTERM => {
                    return Forked::Master(self.stop(libc::SIGTERM, self.cfg.graceful_timeout))
                }
                libc::SIGINT | libc::SIGQUIT => {
                    return Forked::Master(self.stop(libc::SIGINT, Duration::from_secs(5)))
                }
                libc::SIGHUP => {
                    if let Some(c) = self.reload(py) {
                        return Forked::Child(c);
                    }
                }
                libc::SIGTTIN => {
                    self.target = (self.target + 1).min(1024);
                    info!("Handling signal: ttin; {} workers", self.target);
                }
                libc::SIGTTOU if self.target > 1 => {
                    self.target -= 1;
                    info!("Handling signal: ttou; {} workers", self.target);
                    let oldest = self
                        .workers
                        .iter()
                        .filter(|(_, w)| w.leaving.is_none())
                        .min_by_key(|(_, w)| w.started)
                        .map(|(&pid, _)| pid);
                    if let Some(pid) = oldest {
                        self.retire(pid, libc::SIGTERM);
                    }
                }
                libc::SIGUSR1 => {
                    crate::log::reopen();
                    for &pid in self.workers.keys() {
                        kill(pid, libc::SIGUSR1);
                    }
                }
                _ => {}
            }
            self.reap();
            self.check();
        }
    }

    /// Workers counted toward the target: those not leaving.
    fn serving(&self) -> usize {
        self.workers
            .values()
            .filter(|w| w.leaving.is_none())
            .count()
    }

    /// Starts workers up to the target. Some(code) in a new worker child.
    fn fill(&mut self, py: Python<'_>) -> Option<i32> {
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        while self.serving() < self.target as usize {
            match self.spawn(py) {
                Forked::Child(c) => return Some(c),
                Forked::Master(pid) if pid < 0 => {
                    self.retry_at = Some(Instant::now() + Duration::from_secs(1));
                    break;
                }
                Forked::Master(_) => {}
            }
        }
        None
    }

    /// Marks a worker leaving and signals it.
    fn retire(&mut self, pid: libc::pid_t, sig: libc::c_int) {
        if let Some(w) = self.workers.get_mut(&pid) {
            w.leaving.get_or_insert_with(Instant::now);
        }
        kill(pid, sig);
    }

    /// HUP: new workers with freshly imported code start and answer before the old ones are
    /// told to drain; if the new code cannot load, the old workers keep serving.
    fn reload(&mut self, py: Python<'_>) -> Option<i32> {
        info!("Handling signal: hup; starting new workers");
        let old: Vec<libc::pid_t> = self
            .workers
            .iter()
            .filter(|(_, w)| w.leaving.is_none())
            .map(|(&pid, _)| pid)
            .collect();
        let first = match self.spawn(py) {
            Forked::Child(c) => return Some(c),
            Forked::Master(pid) => pid,
        };
        if first < 0 {
            error!("Reload failed: cannot start a new worker; the old workers keep serving");
            return None;
        }
        if let Err(f) = self.wait_booted(first) {
            let why = match f {
                BootFailure::Exited(status) => describe(status).0,
                BootFailure::TimedOut => {
                    format!("did not boot within {} s", BOOT_TIMEOUT.as_secs())
                }
            };
            error!("Reload failed: the new worker {why}; the old workers keep serving");
            return None;
        }
        // The new worker is answering: the old ones finish what they have and leave, and
        // `fill` starts the rest of the new generation.
        for pid in old {
            self.retire(pid, libc::SIGTERM);
        }
        info!("Reload: new workers serving; old workers draining");
        None
    }

    /// Waits until worker `pid` reports that it accepts connections.
    fn wait_booted(&mut self, pid: libc::pid_t) -> Result<(), BootFailure> {
        let Some(slot) = self.workers.get(&pid).map(|w| w.slot) else {
            return Err(BootFailure::TimedOut);
        };
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            if self.table.slot(slot).booted.load(Ordering::Acquire) == 1 {
                return Ok(());
            }
            let mut status = 0;
            // SAFETY: non-blocking waitpid on our own child, into a local int.
            if unsafe { libc::waitpid(pid, &raw mut status, libc::WNOHANG) } == pid {
                self.forget(pid);
                return Err(BootFailure::Exited(status));
            }
            if Instant::now() > deadline {
                kill(pid, libc::SIGKILL);
                // SAFETY: blocking waitpid on our own child after SIGKILL.
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                self.forget(pid);
                return Err(BootFailure::TimedOut);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn forget(&mut self, pid: libc::pid_t) {
        if let Some(w) = self.workers.remove(&pid) {
            self.table.release(w.slot);
        }
    }

    /// Collects exited workers and says how each ended.
    fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid for any child, without blocking, into a local int.
            let pid = unsafe { libc::waitpid(-1, &raw mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            let Some(w) = self.workers.get(&pid) else {
                continue;
            };
            let expected = w.leaving.is_some();
            let w_booted = self.table.slot(w.slot).booted.load(Ordering::Acquire) == 1;
            self.forget(pid);
            let (what, code) = describe(status);
            if code == Some(0) || (expected && code.is_some()) {
                info!("Worker (pid:{pid}) {what}");
            } else {
                warning!("Worker (pid:{pid}) {what}; starting a new one");
            }
            if code == Some(BOOT_ERROR) {
                // The code on disk changed under a running server: keep the workers that
                // still run, and retry without spinning.
                error!(
                    "Worker failed to boot; retrying in {} s",
                    self.backoff.as_secs()
                );
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(Duration::from_secs(30));
            } else if w_booted {
                self.backoff = Duration::from_secs(1);
            }
        }
    }

    /// Heartbeats, leaving flags, memory and lingering workers.
    fn check(&mut self) {
        let now = shared::now_ms();
        let timeout = self.cfg.timeout;
        let mut actions = Vec::new();
        for (&pid, w) in &self.workers {
            let slot = self.table.slot(w.slot);
            if let Some(since) = w.leaving {
                let limit = self.cfg.graceful_timeout + KILL_GRACE;
                if since.elapsed() > limit {
                    warning!("Worker (pid:{pid}) did not stop in time; killing it");
                    actions.push((pid, libc::SIGKILL));
                }
                continue;
            }
            if slot.leaving.load(Ordering::Acquire) == 1 {
                // It stopped accepting on its own (request timeout, max requests).
                actions.push((pid, 0));
                continue;
            }
            let booted = slot.booted.load(Ordering::Acquire) == 1;
            let beat = slot.heartbeat.load(Ordering::Acquire);
            let stale = Duration::from_millis(now.saturating_sub(beat));
            if !timeout.is_zero() && booted && stale > timeout + HEARTBEAT_GRACE {
                error!(
                    "WORKER TIMEOUT (pid:{pid}): no heartbeat for {} s (--timeout {}); killing it",
                    stale.as_secs(),
                    timeout.as_secs()
                );
                actions.push((pid, libc::SIGKILL));
                continue;
            }
            if self.cfg.max_worker_memory > 0 {
                if let Some(rss) = rss_bytes(pid).filter(|&r| r > self.cfg.max_worker_memory) {
                    info!(
                        "Worker (pid:{pid}) uses {} MiB, over --max-worker-memory {} MiB; \
                         replacing it",
                        rss >> 20,
                        self.cfg.max_worker_memory >> 20
                    );
                    actions.push((pid, libc::SIGTERM));
                }
            }
        }
        for (pid, sig) in actions {
            if sig == 0 {
                if let Some(w) = self.workers.get_mut(&pid) {
                    w.leaving.get_or_insert_with(Instant::now);
                }
            } else {
                self.retire(pid, sig);
            }
        }
    }

    /// Forks a worker. `Forked::Master(-1)` if it could not.
    fn spawn(&mut self, py: Python<'_>) -> Forked {
        let master_pid = std::process::id();
        let Some(slot) = self.table.claim() else {
            error!("cannot start a worker: all {} slots in use", shared::SLOTS);
            return Forked::Master(-1);
        };
        let pid: i32 = match py
            .import("os")
            .and_then(|os| os.call_method0("fork"))
            .and_then(|p| p.extract())
        {
            Ok(p) => p,
            Err(e) => {
                error!("fork failed: {e}");
                self.table.release(slot);
                return Forked::Master(-1);
            }
        };
        if pid == 0 {
            shared::set_mine(slot);
            let listeners = std::mem::take(&mut self.listeners);
            return Forked::Child(worker_main(py, self.cfg, listeners, master_pid));
        }
        self.table.slot(slot).pid.store(pid, Ordering::Release);
        self.workers.insert(
            pid,
            WorkerInfo {
                slot,
                started: Instant::now(),
                leaving: None,
            },
        );
        Forked::Master(pid)
    }

    /// Stops every worker with `sig`, waits up to `grace` (then SIGKILL). Returns exit code 0.
    fn stop(&mut self, sig: libc::c_int, grace: Duration) -> i32 {
        info!(
            "Shutting down: {}",
            if sig == libc::SIGTERM {
                "graceful"
            } else {
                "fast"
            }
        );
        // Shutting the listening sockets down makes new connections fail at once, even while
        // a worker busy with a long request still holds its copy of the descriptor.
        for l in self.listeners.drain(..) {
            let _ = l.socket.shutdown(std::net::Shutdown::Read);
        }
        for &pid in self.workers.keys() {
            kill(pid, sig);
        }
        let deadline = Instant::now() + grace + Duration::from_secs(1);
        while !self.workers.is_empty() && Instant::now() < deadline {
            let mut status = 0;
            // SAFETY: non-blocking waitpid into a local int.
            let pid = unsafe { libc::waitpid(-1, &raw mut status, libc::WNOHANG) };
            if pid > 0 {
                self.forget(pid);
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let left: Vec<_> = self.workers.keys().copied().collect();
        for pid in left {
            warning!("Worker (pid:{pid}) did not stop in time; killing it");
            kill(pid, libc::SIGKILL);
            // SAFETY: blocking waitpid on our own child after SIGKILL.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            self.forget(pid);
        }
        0
    }
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// `--user` / `--group`: a worker switches to them after the fork, before loading the app.
fn drop_privileges(cfg: &Config) -> Result<(), String> {
    let gid = cfg.group.or(cfg.user.map(|(_, g)| g));
    if let Some(gid) = gid {
        // SAFETY: geteuid, setgroups (one gid from our stack) and setgid only read or change
        // this process's credentials. As root, the supplementary groups go too.
        let failed = unsafe {
            (libc::geteuid() == 0 && libc::setgroups(1, &raw const gid) != 0)
                || libc::setgid(gid) != 0
        };
        if failed {
            return Err(format!(
                "cannot switch to group {gid} (--group): {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    if let Some((uid, _)) = cfg.user {
        // SAFETY: setuid only changes this process's credentials.
        if unsafe { libc::setuid(uid) } != 0 {
            return Err(format!(
                "cannot switch to user {uid} (--user): {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// The life of a worker process, from the fork to its exit code.
fn worker_main(py: Python<'_>, cfg: &Config, listeners: Vec<Listener>, master: u32) -> i32 {
    set_mask(libc::SIG_UNBLOCK);
    // HUP, TTIN and TTOU are for the master; a worker that gets one (a signal to the whole
    // process group) carries on. A handler, unlike SIG_IGN, is not inherited by programs the
    // app executes.
    for sig in [libc::SIGHUP, libc::SIGTTIN, libc::SIGTTOU] {
        // SAFETY: installs an async-signal-safe handler that does nothing.
        unsafe { libc::signal(sig, ignore_signal as *const () as libc::sighandler_t) };
    }
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
    // SAFETY: getppid has no preconditions.
    if u32::try_from(unsafe { libc::getppid() }).ok() != Some(master) {
        return 0; // the master died before we could set the death signal
    }
    let mut own = Vec::with_capacity(listeners.len());
    for l in listeners {
        let display = l.display.clone();
        match l.for_worker(cfg.backlog) {
            Ok(l) => own.push(l),
            Err(e) => {
                error!("cannot listen on {display} (--reuse-port): {e}");
                return BOOT_ERROR;
            }
        }
    }
    if let Err(e) = drop_privileges(cfg) {
        error!("{e}");
        crate::log::flush();
        return BOOT_ERROR;
    }
    let app = match wsgi::load(py, cfg) {
        Ok(app) => app,
        Err(msg) => {
            error!("{msg}");
            crate::log::flush();
            return BOOT_ERROR;
        }
    };
    if !cfg.timeout.is_zero() {
        if let Err(e) = wsgi::register_stack_dump(py, crate::log::dump_fd()) {
            warning!("cannot set up stack dumps for --timeout: {e}");
        }
    }
    info!("Booting worker with pid: {}", std::process::id());
    let code = py.detach(|| crate::server::run(cfg, own, app));
    crate::log::flush();
    if crate::server::watchdog::stuck_count() > 0 {
        // A thread is still inside the app; Python's finalisation would wait for it.
        // SAFETY: _exit ends the process at once; the logs were flushed above.
        unsafe { libc::_exit(code) };
    }
    code
}
