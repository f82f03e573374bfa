//! A worker process's life, from the fork to its exit code. Returning (rather than `_exit`)
//! lets Python finalise: `atexit` handlers run and the logs are flushed.
use std::fmt;

use crate::config::Config;
use crate::log::{error, info, warning};
use crate::server::listener::Listener;
use crate::wsgi::process as python;

extern "C" fn ignore_signal(_: libc::c_int) {}

extern "C" fn note_stop(sig: libc::c_int) {
    crate::slots::note_early_stop(sig);
}

/// Why a worker could not switch to `--user` / `--group`.
#[derive(Debug)]
enum PrivilegeError {
    Group { gid: u32, error: std::io::Error },
    User { uid: u32, error: std::io::Error },
}

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Group { gid, error } => {
                write!(f, "cannot switch to group {gid} (--group): {error}")
            }
            Self::User { uid, error } => write!(f, "cannot switch to user {uid} (--user): {error}"),
        }
    }
}

/// The message includes the OS error's, so it is not also given as the source.
impl std::error::Error for PrivilegeError {}

/// `--user` / `--group`: a worker switches to them after the fork, before loading the app.
fn drop_privileges(cfg: &Config) -> Result<(), PrivilegeError> {
    let gid = cfg.group.or(cfg.user.map(|(_, g)| g));
    if let Some(gid) = gid {
        // SAFETY: geteuid, setgroups (one gid from our stack) and setgid only read or change
        // this process's credentials. As root, the supplementary groups go too.
        let failed = unsafe {
            (libc::geteuid() == 0 && libc::setgroups(1, &raw const gid) != 0)
                || libc::setgid(gid) != 0
        };
        if failed {
            return Err(PrivilegeError::Group {
                gid,
                error: std::io::Error::last_os_error(),
            });
        }
    }
    if let Some((uid, _)) = cfg.user {
        // SAFETY: setuid only changes this process's credentials.
        if unsafe { libc::setuid(uid) } != 0 {
            return Err(PrivilegeError::User {
                uid,
                error: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

/// The life of a worker process, from the fork to its exit code.
pub(super) fn worker_main(
    cfg: &Config,
    listeners: Vec<Listener>,
    master: u32,
    preloaded: Option<python::Preloaded>,
) -> i32 {
    // HUP, TTIN and TTOU are for the master; a worker that gets one (a signal to the whole
    // process group) carries on. A handler, unlike SIG_IGN, is not inherited by programs the
    // app executes.
    for sig in [libc::SIGHUP, libc::SIGTTIN, libc::SIGTTOU] {
        // SAFETY: installs an async-signal-safe handler that does nothing.
        unsafe { libc::signal(sig, ignore_signal as *const () as libc::sighandler_t) };
    }
    // A stop signal before the event loop handles them is kept for it, so that the worker
    // still stops through Python's shutdown (atexit handlers) rather than dying at once.
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT] {
        // SAFETY: installs an async-signal-safe handler that stores into an atomic.
        unsafe { libc::signal(sig, note_stop as *const () as libc::sighandler_t) };
    }
    super::set_mask(libc::SIG_UNBLOCK);
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
    // SAFETY: getppid has no preconditions.
    if u32::try_from(unsafe { libc::getppid() }).ok() != Some(master) {
        return 0; // the master died before we could set the death signal
    }
    let nofile = crate::net::io::raise_nofile();
    crate::net::io::reserve_fd_table();
    let mut own = Vec::with_capacity(listeners.len());
    for l in listeners {
        let display = l.display.clone();
        match l.for_worker(cfg.backlog) {
            Ok(l) => own.push(l),
            Err(e) => {
                error!("cannot listen on {display} (--reuse-port): {e}");
                return super::BOOT_ERROR;
            }
        }
    }
    if let Err(e) = drop_privileges(cfg) {
        error!("{e}");
        crate::log::flush();
        return super::BOOT_ERROR;
    }
    crate::proctitle::set("worker", &crate::proctitle::name(cfg));
    python::post_fork();
    let app = match python::load_app(cfg, preloaded) {
        Ok(app) => app,
        Err(msg) => {
            error!("{msg}");
            crate::log::flush();
            return super::BOOT_ERROR;
        }
    };
    if !cfg.timeout.is_zero() {
        if let Err(e) = python::register_stack_dump(crate::log::dump_fd()) {
            warning!("cannot set up stack dumps for --timeout: {e}");
        }
    }
    info!("Booting worker with pid: {}", std::process::id());
    match nofile {
        Some((before, after)) if after > before => {
            info!("File descriptor limit: {after} (raised from {before})");
        }
        Some((_, limit)) => info!("File descriptor limit: {limit}"),
        None => {}
    }
    // The worker holds the GIL here (the master's, across the fork). Inline, the event loop
    // keeps it except while it waits (see server::run); with app threads it runs without.
    let code = if cfg.threads == 1 {
        crate::server::run(cfg, own, app)
    } else {
        python::without_gil(|| crate::server::run(cfg, own, app))
    };
    python::worker_exit();
    crate::log::flush();
    if crate::watchdog::stuck_count() > 0 {
        // A thread is still inside the app; Python's finalisation would wait for it.
        // SAFETY: _exit ends the process at once; the logs were flushed above.
        unsafe { libc::_exit(code) };
    }
    code
}
