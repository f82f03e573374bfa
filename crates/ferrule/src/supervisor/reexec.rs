//! `--preload` reloads: the master re-executes itself in place (same pid, so systemd and
//! pidfiles stay right), as gunicorn's USR2 upgrade does but without a second master. The
//! listening sockets survive the `execv` (close-on-exec cleared) and their descriptors go to
//! the new image in an environment variable, in bind order, with the old workers' pids; the
//! new master adopts the sockets instead of binding, and drains the old workers (still its
//! children) once its own first worker has booted.
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::config::Protocol;
use crate::server::listener::Listener;
use crate::wsgi::process as python;

/// `scheme:fd,...`: the listening sockets handed to the new image, in bind order.
const LISTENERS_VAR: &str = "FERRULE_REEXEC_LISTENERS";
/// `pid,...`: the workers of the previous image, to drain.
const WORKERS_VAR: &str = "FERRULE_REEXEC_WORKERS";
/// The pid that set the variables: they count only in that same process.
const MASTER_VAR: &str = "FERRULE_REEXEC_MASTER";

static START_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Remembers the directory the server started in (before `--chdir`), to exec from there.
pub fn remember_start_dir() {
    if let Ok(dir) = std::env::current_dir() {
        let _ = START_DIR.set(dir);
    }
}

/// The directory the server started in.
pub fn start_dir() -> Option<&'static PathBuf> {
    START_DIR.get()
}

/// What the previous image of this master handed over.
pub struct Handoff {
    pub listeners: Vec<(Protocol, RawFd)>,
    pub workers: Vec<libc::pid_t>,
}

fn protocol(scheme: &str) -> Option<Protocol> {
    [
        Protocol::Http,
        Protocol::Uwsgi,
        Protocol::Scgi,
        Protocol::FastCgi,
    ]
    .into_iter()
    .find(|p| p.scheme() == scheme)
}

/// In a re-executed master: the sockets and workers of the previous image (the variables are
/// removed, so that the app's own children do not see them).
pub fn take_handoff() -> Option<Handoff> {
    let ours = std::env::var(MASTER_VAR).ok()?.parse::<u32>().ok() == Some(std::process::id());
    let listeners = std::env::var(LISTENERS_VAR).unwrap_or_default();
    let workers = std::env::var(WORKERS_VAR).unwrap_or_default();
    for var in [MASTER_VAR, LISTENERS_VAR, WORKERS_VAR] {
        // The master is single-threaded here.
        std::env::remove_var(var);
    }
    if !ours {
        return None;
    }
    let listeners = listeners
        .split(',')
        .filter_map(|item| {
            let (scheme, fd) = item.split_once(':')?;
            Some((protocol(scheme)?, fd.parse().ok()?))
        })
        .collect();
    let workers = workers.split(',').filter_map(|p| p.parse().ok()).collect();
    Some(Handoff { listeners, workers })
}

fn set_cloexec(fd: RawFd, on: bool) -> std::io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD on a descriptor we own only change its close-on-exec flag.
    let ok = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        flags >= 0
            && libc::fcntl(
                fd,
                libc::F_SETFD,
                if on {
                    flags | libc::FD_CLOEXEC
                } else {
                    flags & !libc::FD_CLOEXEC
                },
            ) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Re-executes this process (`sys.executable` with `sys.orig_argv`) handing over `listeners`
/// and `workers`. Returns only if the exec failed, with everything put back.
pub fn exec(listeners: &[Listener], workers: &[libc::pid_t]) -> String {
    let fds: Vec<RawFd> = listeners.iter().map(|l| l.socket.as_raw_fd()).collect();
    let undo = || {
        for &fd in &fds {
            let _ = set_cloexec(fd, true);
        }
        for var in [MASTER_VAR, LISTENERS_VAR, WORKERS_VAR] {
            std::env::remove_var(var);
        }
    };
    for &fd in &fds {
        if let Err(e) = set_cloexec(fd, false) {
            undo();
            return format!("cannot pass listening socket {fd} on: {e}");
        }
    }
    let shown: Vec<String> = listeners
        .iter()
        .map(|l| format!("{}:{}", l.bind.protocol.scheme(), l.socket.as_raw_fd()))
        .collect();
    let pids: Vec<String> = workers.iter().map(ToString::to_string).collect();
    // The master is single-threaded: nothing reads the environment concurrently.
    std::env::set_var(LISTENERS_VAR, shown.join(","));
    std::env::set_var(WORKERS_VAR, pids.join(","));
    std::env::set_var(MASTER_VAR, std::process::id().to_string());
    let here = std::env::current_dir().ok();
    if let Some(dir) = start_dir() {
        let _ = std::env::set_current_dir(dir);
    }
    crate::log::flush();
    let result = python::exec_self();
    // Only reached when execv failed.
    undo();
    if let Some(dir) = here {
        let _ = std::env::set_current_dir(dir);
    }
    match result {
        Err(e) => e.to_string(),
        Ok(()) => "execv returned".to_owned(),
    }
}
