//! The master process: binds, forks workers (through Python's `os.fork`, so the interpreter's
//! fork handlers run), waits for signals with `sigtimedwait` (no threads, no handlers), and
//! respawns workers that die.
use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::config::{BindAddr, Config};
use crate::log::{error, info, warning};
use crate::server::listener::{self, Listener};
use crate::wsgi;

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

struct Master<'a> {
    cfg: &'a Config,
    listeners: &'a [Listener],
    workers: BTreeMap<libc::pid_t, Instant>,
    target: u32,
}

/// Runs the server: returns the process exit code (in the master, or in a worker child).
pub fn run(py: Python<'_>, cfg: &Config) -> i32 {
    let mut listeners = Vec::new();
    for b in &cfg.binds {
        match listener::bind(b, cfg.backlog) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                error!("{e}");
                return 1;
            }
        }
    }
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
    set_mask(libc::SIG_BLOCK);
    let mut master = Master {
        cfg,
        listeners: &listeners,
        workers: BTreeMap::new(),
        target: cfg.workers,
    };
    let code = master.serve(py);
    if matches!(code, Forked::Master(_)) {
        remove_unix_sockets(cfg);
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

impl Master<'_> {
    /// `Forked::Master(code)` when the server stops; `Forked::Child(code)` in a worker.
    fn serve(&mut self, py: Python<'_>) -> Forked {
        // The first worker boots alone: an app that cannot load stops the server with its
        // error printed once, instead of once per worker.
        let (rd, wr) = match pipe() {
            Ok(p) => p,
            Err(e) => {
                error!("cannot create a pipe: {e}");
                return Forked::Master(1);
            }
        };
        match self.spawn(py, Some(wr)) {
            Forked::Child(c) => return Forked::Child(c),
            Forked::Master(pid) => {
                let mut f = std::fs::File::from(rd);
                let mut byte = [0u8; 1];
                if !matches!(f.read(&mut byte), Ok(1)) {
                    let status = self.reap_one(pid);
                    error!("Worker failed to boot ({})", describe(status).0);
                    return Forked::Master(BOOT_ERROR);
                }
            }
        }
        while self.workers.len() < self.target as usize {
            if let Forked::Child(c) = self.spawn(py, None) {
                return Forked::Child(c);
            }
        }
        let set = signal_set();
        loop {
            let timeout = libc::timespec {
                tv_sec: 1,
                tv_nsec: 0,
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
                    info!("Handling signal: hup; replacing workers");
                    let old: Vec<_> = self.workers.keys().copied().collect();
                    for _ in 0..self.target {
                        if let Forked::Child(c) = self.spawn(py, None) {
                            return Forked::Child(c);
                        }
                    }
                    for pid in old {
                        kill(pid, libc::SIGTERM);
                    }
                }
                libc::SIGTTIN => {
                    self.target += 1;
                    info!("Handling signal: ttin; {} workers", self.target);
                }
                libc::SIGTTOU if self.target > 1 => {
                    self.target -= 1;
                    info!("Handling signal: ttou; {} workers", self.target);
                    if let Some((&pid, _)) = self.workers.iter().min_by_key(|(_, t)| **t) {
                        kill(pid, libc::SIGTERM);
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
            if let Some(code) = self.reap() {
                return Forked::Master(code);
            }
            // Replace workers that died, up to the target count.
            while self.workers.len() < self.target as usize {
                if let Forked::Child(c) = self.spawn(py, None) {
                    return Forked::Child(c);
                }
            }
            // TTOU and HUP leave extra workers: they were told to stop and are reaped later.
        }
    }

    /// Collects exited workers. Some(code) if the server must stop.
    fn reap(&mut self) -> Option<i32> {
        loop {
            let mut status = 0;
            // SAFETY: waitpid for any child, without blocking, into a local int.
            let pid = unsafe { libc::waitpid(-1, &raw mut status, libc::WNOHANG) };
            if pid <= 0 {
                return None;
            }
            if self.workers.remove(&pid).is_none() {
                continue;
            }
            let (what, code) = describe(status);
            if code == Some(0) {
                info!("Worker (pid:{pid}) {what}");
            } else {
                warning!("Worker (pid:{pid}) {what}");
            }
            if code == Some(BOOT_ERROR) {
                error!("Worker failed to boot; shutting down");
                self.stop(libc::SIGTERM, self.cfg.graceful_timeout);
                return Some(BOOT_ERROR);
            }
        }
    }

    fn reap_one(&mut self, pid: libc::pid_t) -> libc::c_int {
        let mut status = 0;
        // SAFETY: blocking waitpid on our own child.
        unsafe { libc::waitpid(pid, &raw mut status, 0) };
        self.workers.remove(&pid);
        status
    }

    fn spawn(&mut self, py: Python<'_>, boot: Option<OwnedFd>) -> Forked {
        let master_pid = std::process::id();
        let pid: i32 = match py
            .import("os")
            .and_then(|os| os.call_method0("fork"))
            .and_then(|p| p.extract())
        {
            Ok(p) => p,
            Err(e) => {
                error!("fork failed: {e}");
                return Forked::Master(-1);
            }
        };
        if pid == 0 {
            return Forked::Child(worker_main(py, self.cfg, self.listeners, boot, master_pid));
        }
        drop(boot);
        self.workers.insert(pid, Instant::now());
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
        for &pid in self.workers.keys() {
            kill(pid, sig);
        }
        let deadline = Instant::now() + grace + Duration::from_secs(1);
        while !self.workers.is_empty() && Instant::now() < deadline {
            let mut status = 0;
            // SAFETY: non-blocking waitpid into a local int.
            let pid = unsafe { libc::waitpid(-1, &raw mut status, libc::WNOHANG) };
            if pid > 0 {
                self.workers.remove(&pid);
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for &pid in self.workers.keys() {
            warning!("Worker (pid:{pid}) did not stop in time; killing it");
            kill(pid, libc::SIGKILL);
            // SAFETY: blocking waitpid on our own child after SIGKILL.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        }
        self.workers.clear();
        0
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors into our array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The life of a worker process, from the fork to its exit code.
fn worker_main(
    py: Python<'_>,
    cfg: &Config,
    listeners: &[Listener],
    boot: Option<OwnedFd>,
    master: u32,
) -> i32 {
    set_mask(libc::SIG_UNBLOCK);
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
    // SAFETY: getppid has no preconditions.
    if u32::try_from(unsafe { libc::getppid() }).ok() != Some(master) {
        return 0; // the master died before we could set the death signal
    }
    let app = match wsgi::load(py, cfg) {
        Ok(app) => app,
        Err(msg) => {
            error!("{msg}");
            crate::log::flush();
            return BOOT_ERROR;
        }
    };
    if let Some(fd) = boot {
        let _ = std::io::Write::write_all(&mut std::fs::File::from(fd), b"1");
    }
    info!("Booting worker with pid: {}", std::process::id());
    let code = py.detach(|| crate::server::run(cfg, listeners, app));
    crate::log::flush();
    code
}
