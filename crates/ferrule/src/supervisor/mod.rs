//! The master process: binds, forks workers (through Python's `os.fork`, so the interpreter's
//! fork handlers run), waits for signals with `sigtimedwait` (no handlers; no threads but the
//! metrics threads of `--metrics-bind`/`--statsd-host`, see `crate::metrics::serve`), and
//! respawns workers that die.
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::log::{error, info, warning};
use crate::metrics::master::{self as tally, Reason};
use crate::server::listener::Listener;
use crate::wsgi::config_file::LoadError;
use crate::wsgi::process as python;

mod metrics;
mod notify;
mod reexec;
mod reloader;
mod sockets;
mod worker;

pub use reexec::{remember_start_dir, start_dir};

/// Reads the command line and config file from the directory the server started in (so that
/// HUP finds a relative config file again), then changes to `--chdir`.
pub fn configure(args: &[String]) -> Result<Config, LoadError> {
    if let Some(dir) = start_dir() {
        let _ = std::env::set_current_dir(dir);
    }
    let cfg = python::read_config(args)?;
    python::set_environ(&cfg.env).map_err(|e| LoadError::Msg(format!("--env: {e}")))?;
    if let Some(dir) = &cfg.chdir {
        std::env::set_current_dir(dir)
            .map_err(|e| LoadError::Msg(format!("--chdir {}: {e}", dir.display())))?;
    }
    Ok(cfg)
}

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
    /// Its slot in the shared table; None for a worker of the previous image of a master
    /// re-executed by a `--preload` reload (its slot stayed in the old mapping).
    slot: Option<usize>,
    /// From the previous image: serving until the first new worker boots, then drained.
    old: bool,
    started: Instant,
    /// Told to stop (or stopping on its own): no longer counted, killed if it lingers.
    leaving: Option<Instant>,
}

struct Master {
    cfg: Config,
    /// `--preload`: the app's callable, imported in the master.
    app: Option<python::Preloaded>,
    /// After a `--preload` reload whose new code failed: no new workers are started; the old
    /// ones serve until the next HUP.
    dormant: bool,
    /// `--reload`: the source watches, and when the next reload is due (changes settle first).
    reloader: Option<reloader::Reloader>,
    reload_at: Option<Instant>,
    listeners: Vec<Listener>,
    workers: BTreeMap<libc::pid_t, WorkerInfo>,
    target: u32,
    table: &'static crate::slots::Table,
    /// After a worker failed to boot on a respawn, the next try waits until then.
    retry_at: Option<Instant>,
    /// The wait before the next try, doubled at each failure (up to 30 s).
    backoff: Duration,
    /// systemd's notifications (`NOTIFY_SOCKET`).
    notify: notify::Notifier,
}

/// How long a new worker may take to import the app and start accepting.
const BOOT_TIMEOUT: Duration = Duration::from_mins(2);
/// Beyond `--timeout`, how stale a heartbeat may be before the master kills the worker (the
/// worker's own watchdog acts at `--timeout`; this is for a loop that is wedged).
const HEARTBEAT_GRACE: Duration = Duration::from_secs(2);
/// Beyond `--graceful-timeout`, how long a leaving worker may linger before SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Runs the server: returns the process exit code (in the master, or in a worker child).
pub fn run(cfg: Config) -> i32 {
    // From here on signals wait for the master's loop (a TERM during start-up included).
    set_mask(libc::SIG_BLOCK);
    python::master_hook("on_starting");
    if let Some(tls) = &cfg.tls {
        for w in tls.warnings() {
            warning!("{w}");
        }
    }
    if let Some(mask) = cfg.umask {
        // SAFETY: umask only sets the process's file mode creation mask.
        unsafe { libc::umask(mask as libc::mode_t) };
    }
    let handoff = reexec::take_handoff();
    let listeners = match &handoff {
        Some(h) => sockets::adopt(&cfg, h),
        None => sockets::bind_all(&cfg),
    };
    let Some(listeners) = listeners else {
        return 1;
    };
    let table = match crate::slots::table() {
        Ok(t) => t,
        Err(e) => {
            error!("cannot map the worker table: {e}");
            return 1;
        }
    };
    let pid = std::process::id();
    info!("Starting ferrule {}", env!("CARGO_PKG_VERSION"));
    crate::proctitle::set("master", &crate::proctitle::name(&cfg));
    for l in &listeners {
        info!("Listening at: {} ({pid})", l.display);
    }
    if !metrics::start(&cfg, &listeners) {
        return 1;
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
    python::prepare();
    let reloader = cfg.reload.then(|| {
        let tree = python::source_dir(&cfg);
        reloader::Reloader::new(tree.as_deref(), &cfg.reload_extra_files)
            .map_err(|e| error!("--reload: cannot watch the source files: {e}"))
            .ok()
    });
    let mut workers = BTreeMap::new();
    for pid in handoff.map(|h| h.workers).unwrap_or_default() {
        workers.insert(
            pid,
            WorkerInfo {
                slot: None,
                old: true,
                started: Instant::now(),
                leaving: None,
            },
        );
    }
    let target = cfg.workers;
    let mut master = Master {
        cfg,
        app: None,
        dormant: false,
        reloader: reloader.flatten(),
        reload_at: None,
        listeners,
        workers,
        target,
        table,
        retry_at: None,
        backoff: Duration::from_secs(1),
        notify: notify::Notifier::from_env(),
    };
    let code = master.serve();
    if matches!(code, Forked::Master(_)) {
        sockets::remove_unix_sockets(&master.cfg);
        if let Some(p) = &master.cfg.pidfile {
            let _ = std::fs::remove_file(p);
        }
        python::master_hook("on_exit");
    }
    match code {
        Forked::Master(c) | Forked::Child(c) => c,
    }
}

/// The restart reason of a worker that left on its own, from its slot's `leaving`.
fn left_on_its_own(leaving: u32) -> Option<Reason> {
    match leaving {
        crate::slots::LEAVING_TIMEOUT => Some(Reason::Timeout),
        crate::slots::LEAVING_MAX_REQUESTS => Some(Reason::MaxRequests),
        _ => None,
    }
}

/// Why a new worker did not come up.
enum BootFailure {
    Exited(libc::c_int),
    TimedOut,
}

impl BootFailure {
    fn describe(&self) -> String {
        match self {
            Self::Exited(status) => describe(*status).0,
            Self::TimedOut => format!("did not boot within {} s", BOOT_TIMEOUT.as_secs()),
        }
    }
}

impl Master {
    /// `Forked::Master(code)` when the server stops; `Forked::Child(code)` in a worker.
    fn serve(&mut self) -> Forked {
        let has_old = self.workers.values().any(|w| w.old);
        if self.cfg.preload {
            match python::preload(&self.cfg) {
                Ok(app) => self.app = Some(app),
                Err(msg) => {
                    error!("{msg}");
                    if !has_old {
                        return Forked::Master(BOOT_ERROR);
                    }
                    error!(
                        "Reload failed: the new code cannot be imported; the old workers keep \
                         serving (fix it and send HUP)"
                    );
                    self.dormant = true;
                }
            }
        }
        if !self.dormant {
            if let Some(c) = self.boot_first(has_old) {
                return c;
            }
        }
        let set = signal_set();
        loop {
            if let Some(c) = self.fill() {
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
                    let grace = self.cfg.graceful_timeout;
                    return Forked::Master(self.stop(libc::SIGTERM, grace));
                }
                libc::SIGINT | libc::SIGQUIT => {
                    return Forked::Master(self.stop(libc::SIGINT, Duration::from_secs(5)))
                }
                libc::SIGHUP => {
                    if let Some(c) = self.restart("Handling signal: hup") {
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
            if let Some(c) = self.watch_sources() {
                return Forked::Child(c);
            }
            self.reap();
            self.check();
            self.notify.tick();
        }
    }

    /// The first worker boots alone: an app that cannot load stops the server with its error
    /// printed once, instead of once per worker. After a `--preload` reload (old workers
    /// present), a failure keeps the old workers serving instead. Some(code) to return.
    fn boot_first(&mut self, has_old: bool) -> Option<Forked> {
        let first = match self.spawn() {
            Forked::Child(c) => return Some(Forked::Child(c)),
            Forked::Master(pid) => pid,
        };
        let failure = if first < 0 {
            Err(BootFailure::TimedOut)
        } else {
            self.wait_booted(first)
        };
        match failure {
            Ok(()) => {
                if has_old {
                    self.drain_old();
                }
                python::master_hook("when_ready");
                self.notify.ready();
                return None;
            }
            Err(f) if has_old => {
                error!(
                    "Reload failed: the new worker {}; the old workers keep serving",
                    f.describe()
                );
                self.dormant = true;
                return None;
            }
            // Killed from outside while it booted: start another, as after any crash.
            Err(BootFailure::Exited(status)) if describe(status).1 != Some(BOOT_ERROR) => {
                warning!("Worker (pid:{first}) {} while booting", describe(status).0);
                return None;
            }
            Err(BootFailure::Exited(status)) => {
                error!("Worker failed to boot ({})", describe(status).0);
            }
            Err(BootFailure::TimedOut) if first < 0 => {}
            Err(BootFailure::TimedOut) => {
                error!("Worker did not boot within {} s", BOOT_TIMEOUT.as_secs());
            }
        }
        self.stop(libc::SIGTERM, self.cfg.graceful_timeout);
        Some(Forked::Master(BOOT_ERROR))
    }

    /// After a `--preload` reload: the previous image's workers finish and leave.
    fn drain_old(&mut self) {
        let old: Vec<libc::pid_t> = self
            .workers
            .iter()
            .filter(|(_, w)| w.old && w.leaving.is_none())
            .map(|(&pid, _)| pid)
            .collect();
        for pid in old {
            tally::restart(Reason::Reload);
            self.retire(pid, libc::SIGTERM);
        }
        info!("Reload: new workers serving; old workers draining");
    }

    /// HUP (or a source change with --reload): re-reads the configuration, then reloads the
    /// workers, or with `--preload` re-executes the master. Some(code) in a new worker.
    fn restart(&mut self, why: &str) -> Option<i32> {
        self.notify.reloading();
        match configure(&self.cfg.argv) {
            Ok(cfg) => {
                if cfg.binds != self.cfg.binds {
                    warning!("the binds changed; they take effect at the next full restart");
                }
                if let Some(tls) = &cfg.tls {
                    for w in tls.warnings() {
                        warning!("{w}");
                    }
                }
                for w in &cfg.warnings {
                    warning!("{w}");
                }
                self.target = cfg.workers;
                self.cfg = cfg;
            }
            Err(LoadError::Msg(msg)) => {
                error!("cannot re-read the configuration; keeping the current one: {msg}");
            }
            Err(LoadError::Cli(e)) => {
                error!("cannot re-read the configuration; keeping the current one: {e}");
            }
        }
        if self.cfg.preload {
            info!("{why}; re-executing the master (--preload)");
            let pids: Vec<libc::pid_t> = self.workers.keys().copied().collect();
            let why = reexec::exec(&self.listeners, &pids);
            error!(
                "Reload failed: cannot re-execute the master: {why}; the old workers keep serving"
            );
            return None;
        }
        self.dormant = false;
        info!("{why}; starting new workers");
        let r = self.reload();
        if r.is_none() {
            // The master serves again, with the new workers or (when they failed) the old ones.
            self.notify.ready();
        }
        r
    }

    /// `--reload`: notes source changes; once they settle (300 ms), restarts.
    fn watch_sources(&mut self) -> Option<i32> {
        let r = self.reloader.as_mut()?;
        if let Some(path) = r.changed() {
            if self.reload_at.is_none() {
                info!("{} changed; reloading", path.display());
            }
            self.reload_at = Some(Instant::now() + Duration::from_millis(300));
        }
        if self.reload_at.is_some_and(|t| Instant::now() >= t) {
            self.reload_at = None;
            return self.restart("Reloading (--reload)");
        }
        None
    }

    /// Workers counted toward the target: those not leaving.
    fn serving(&self) -> usize {
        self.workers
            .values()
            .filter(|w| w.leaving.is_none() && !w.old)
            .count()
    }

    /// Starts workers up to the target. Some(code) in a new worker child.
    fn fill(&mut self) -> Option<i32> {
        if self.dormant || self.retry_at.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        while self.serving() < self.target as usize {
            match self.spawn() {
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
    fn reload(&mut self) -> Option<i32> {
        let old: Vec<libc::pid_t> = self
            .workers
            .iter()
            .filter(|(_, w)| w.leaving.is_none())
            .map(|(&pid, _)| pid)
            .collect();
        let first = match self.spawn() {
            Forked::Child(c) => return Some(c),
            Forked::Master(pid) => pid,
        };
        if first < 0 {
            error!("Reload failed: cannot start a new worker; the old workers keep serving");
            return None;
        }
        if let Err(f) = self.wait_booted(first) {
            error!(
                "Reload failed: the new worker {}; the old workers keep serving",
                f.describe()
            );
            return None;
        }
        // The new worker is answering: the old ones finish what they have and leave, and
        // `fill` starts the rest of the new generation.
        for pid in old {
            tally::restart(Reason::Reload);
            self.retire(pid, libc::SIGTERM);
        }
        info!("Reload: new workers serving; old workers draining");
        None
    }

    /// Waits until worker `pid` reports that it accepts connections.
    fn wait_booted(&mut self, pid: libc::pid_t) -> Result<(), BootFailure> {
        let Some(slot) = self.workers.get(&pid).and_then(|w| w.slot) else {
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
        if let Some(slot) = self.workers.remove(&pid).and_then(|w| w.slot) {
            tally::fold(slot);
            self.table.release(slot);
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
            let w_booted = w
                .slot
                .is_some_and(|s| self.table.slot(s).booted.load(Ordering::Acquire) == 1);
            // Set when it left on its own and exited before `check` saw it.
            let left = w
                .slot
                .map_or(0, |s| self.table.slot(s).leaving.load(Ordering::Acquire));
            self.forget(pid);
            let (what, code) = describe(status);
            python::child_exit(pid, code, &what);
            if self.dormant && self.workers.is_empty() {
                error!("No worker left: the new code could not be imported; fix it and send HUP");
            }
            if !expected {
                tally::restart(left_on_its_own(left).unwrap_or(Reason::Crash));
            }
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
        let now = crate::slots::now_ms();
        let timeout = self.cfg.timeout;
        let mut actions = Vec::new();
        for (&pid, w) in &self.workers {
            if let Some(since) = w.leaving {
                let limit = self.cfg.graceful_timeout + KILL_GRACE;
                if since.elapsed() > limit {
                    warning!("Worker (pid:{pid}) did not stop in time; killing it");
                    actions.push((pid, libc::SIGKILL));
                }
                continue;
            }
            let Some(slot) = w.slot.map(|s| self.table.slot(s)) else {
                continue;
            };
            let leaving = slot.leaving.load(Ordering::Acquire);
            if leaving != 0 {
                // It stopped accepting on its own (request timeout, max requests).
                if let Some(why) = left_on_its_own(leaving) {
                    tally::restart(why);
                }
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
                tally::restart(Reason::Timeout);
                actions.push((pid, libc::SIGKILL));
                continue;
            }
            if self.cfg.max_worker_memory > 0 {
                if let Some(rss) = tally::rss_bytes(pid).filter(|&r| r > self.cfg.max_worker_memory)
                {
                    info!(
                        "Worker (pid:{pid}) uses {} MiB, over --max-worker-memory {} MiB; \
                         replacing it",
                        rss >> 20,
                        self.cfg.max_worker_memory >> 20
                    );
                    tally::restart(Reason::Memory);
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
    fn spawn(&mut self) -> Forked {
        let master_pid = std::process::id();
        let Some(slot) = self.table.claim() else {
            error!(
                "cannot start a worker: all {} slots in use",
                crate::slots::SLOTS
            );
            return Forked::Master(-1);
        };
        let pid = match python::fork(crate::metrics::serve::threads()) {
            Ok(p) => p,
            Err(e) => {
                error!("fork failed: {e}");
                self.table.release(slot);
                return Forked::Master(-1);
            }
        };
        if pid == 0 {
            crate::slots::set_mine(slot);
            crate::metrics::set_mine(slot);
            crate::metrics::serve::after_fork();
            self.reloader = None;
            let listeners = std::mem::take(&mut self.listeners);
            let app = self.app.take();
            return Forked::Child(worker::worker_main(&self.cfg, listeners, master_pid, app));
        }
        self.table.slot(slot).pid.store(pid, Ordering::Release);
        self.workers.insert(
            pid,
            WorkerInfo {
                slot: Some(slot),
                old: false,
                started: Instant::now(),
                leaving: None,
            },
        );
        Forked::Master(pid)
    }

    /// Stops every worker with `sig`, waits up to `grace` (then SIGKILL). Returns exit code 0.
    fn stop(&mut self, sig: libc::c_int, grace: Duration) -> i32 {
        self.notify.stopping();
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
                let (what, code) = describe(status);
                python::child_exit(pid, code, &what);
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
