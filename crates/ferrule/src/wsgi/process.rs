//! What the supervisor asks of Python, for the master and for a worker process's life: reading
//! the configuration, the server hooks, importing the app (`--preload`) and building it,
//! forking through `os.fork` (so that the interpreter's fork handlers run), re-executing the
//! master, stack dumps. Each function attaches to Python itself, which costs next to nothing
//! where the thread already holds the GIL: the master runs inside `ferrule._native.main`, and
//! a worker is the master's thread after the fork.
use std::fmt;
use std::path::PathBuf;

use pyo3::prelude::*;

use super::app::{self, AppError};
use super::config_file::{self, LoadError};
use super::{hooks, App};
use crate::config::Config;

/// A Python call that raised: the exception as `str(type): str(value)` reads it.
#[derive(Debug)]
pub struct PythonError(String);

impl fmt::Display for PythonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PythonError {}

impl From<PyErr> for PythonError {
    fn from(e: PyErr) -> Self {
        Self(e.to_string())
    }
}

/// The app's callable, imported in the master (`--preload`) for the workers it forks.
pub struct Preloaded(app::Loaded);

/// Parses `args` (program name first) and the config file they name (run in Python); installs
/// the file's hooks.
pub fn read_config(args: &[String]) -> Result<Config, LoadError> {
    Python::attach(|py| config_file::load(py, args))
}

/// `--env`: sets each variable in `os.environ` (and so the process's environment, which the
/// workers inherit).
pub fn set_environ(vars: &[(String, String)]) -> Result<(), PythonError> {
    if vars.is_empty() {
        return Ok(());
    }
    Python::attach(|py| -> PyResult<()> {
        let environ = py.import("os")?.getattr("environ")?;
        for (k, v) in vars {
            environ.set_item(k, v)?;
        }
        Ok(())
    })
    .map_err(PythonError::from)
}

/// `on_starting`, `when_ready`, `on_exit`: the master's hooks.
pub fn master_hook(name: &str) {
    Python::attach(|py| hooks::master(py, name));
}

/// `child_exit`: in the master, after it collected worker `pid`.
pub fn child_exit(pid: libc::pid_t, exitcode: Option<i32>, status: &str) {
    Python::attach(|py| hooks::child_exit(py, pid, exitcode, status));
}

/// `post_fork`: in a new worker.
pub fn post_fork() {
    Python::attach(hooks::post_fork);
}

/// `worker_exit`: in a worker about to exit.
pub fn worker_exit() {
    Python::attach(hooks::worker_exit);
}

/// In the master, before any fork: imports what workers need to load and report on an app
/// (see [`app::prepare`]).
pub fn prepare() {
    Python::attach(app::prepare);
}

/// `--reload`: the directory holding the app's source, found without importing the app.
pub fn source_dir(cfg: &Config) -> Option<PathBuf> {
    Python::attach(|py| app::source_dir(py, cfg))
}

/// `--preload`: imports the app in the master.
pub fn preload(cfg: &Config) -> Result<Preloaded, AppError> {
    Python::attach(|py| app::import_app(py, cfg).map(Preloaded))
}

/// In a worker: the app, built around the callable the master preloaded, or imported here.
pub fn load_app(cfg: &Config, preloaded: Option<Preloaded>) -> Result<App, AppError> {
    Python::attach(|py| match preloaded {
        Some(Preloaded(loaded)) => app::build_app(py, cfg, loaded),
        None => app::load(py, cfg),
    })
}

/// Has `faulthandler` dump every thread's stack to `fd` on the watchdog's signal.
pub fn register_stack_dump(fd: std::os::fd::RawFd) -> Result<(), PythonError> {
    Python::attach(|py| app::register_stack_dump(py, fd)).map_err(PythonError::from)
}

/// Forks through Python's `os.fork`, so that the interpreter (and the app, after
/// `--preload`) runs its fork handlers: the child's pid in the parent, 0 in the child.
/// `own_threads`: the master's own threads (the metrics threads), which are safe across a
/// fork; when they are the only ones besides the main thread, Python 3.12's warning that the
/// process is multi-threaded is silenced for this fork (threads the app started still get it).
pub fn fork(own_threads: usize) -> Result<libc::pid_t, PythonError> {
    Python::attach(|py| {
        let os = py.import("os")?;
        if own_threads == 0 || threads_now().is_none_or(|n| n > own_threads + 1) {
            return os.call_method0("fork")?.extract();
        }
        let warnings = py.import("warnings")?;
        let guard = warnings.call_method0("catch_warnings")?;
        guard.call_method0("__enter__")?;
        let ignored = warnings.call_method1(
            "filterwarnings",
            (
                "ignore",
                ".*multi-threaded.*fork",
                py.get_type::<pyo3::exceptions::PyDeprecationWarning>(),
            ),
        );
        let forked = ignored.and_then(|_| os.call_method0("fork"));
        guard.call_method1("__exit__", (py.None(), py.None(), py.None()))?;
        forked?.extract()
    })
    .map_err(PythonError::from)
}

/// The threads of this process, from /proc.
fn threads_now() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// Replaces this process's image with `sys.executable` run with `sys.orig_argv` (`os.execv`).
/// Returns only if that failed (`Ok` if `execv` returned, which it should not).
pub fn exec_self() -> Result<(), PythonError> {
    Python::attach(|py| -> PyResult<()> {
        let sys = py.import("sys")?;
        let exe = sys.getattr("executable")?;
        let argv = sys.getattr("orig_argv")?;
        py.import("os")?.call_method1("execv", (exe, argv))?;
        Ok(())
    })
    .map_err(PythonError::from)
}

pub use super::threads::without_gil;
