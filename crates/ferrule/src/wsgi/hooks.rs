//! Server hooks from the config file (`-c`), run through `ferrule._hooks`, which logs a hook's
//! exception with its traceback and carries on. The Python side documents the arguments.
use std::path::Path;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::log::error;

use super::format_exception;

/// A config file's settings (see [`super::config_file::RawSetting`]).
pub type Settings = Vec<super::config_file::RawSetting>;

/// Runs the config file; its settings, and its hooks to [`install`] once the settings are
/// known to be good.
pub fn read_config(py: Python<'_>, path: &Path) -> Result<(Settings, Py<PyAny>), String> {
    let module = py
        .import("ferrule._config")
        .map_err(|e| format_exception(py, &e))?;
    let read = module
        .call_method1("read", (path.to_string_lossy().into_owned(),))
        .map_err(|e| {
            let is_config_error = module
                .getattr("ConfigError")
                .is_ok_and(|cls| e.get_type(py).is(&cls));
            if is_config_error {
                e.value(py).to_string()
            } else {
                format_exception(py, &e)
            }
        })?;
    read.extract::<(Settings, Py<PyAny>)>()
        .map_err(|e| format!("config file {}: {e}", path.display()))
}

/// A value of `cfg`, as hooks see the options.
pub enum CfgValue {
    Flag(bool),
    One(String),
    Many(Vec<String>),
    Unset,
}

/// Makes `hooks` (a dict from [`read_config`], or None for none) the hooks in force, with
/// `cfg` as the options they see.
pub fn install(py: Python<'_>, hooks: Option<Py<PyAny>>, cfg: Vec<(String, CfgValue)>) {
    let installed = (|| -> PyResult<()> {
        let dict = PyDict::new(py);
        for (name, value) in cfg {
            match value {
                CfgValue::Flag(b) => dict.set_item(name, b)?,
                CfgValue::One(s) => match s.parse::<i64>() {
                    Ok(n) => dict.set_item(name, n)?,
                    Err(_) => dict.set_item(name, s)?,
                },
                CfgValue::Many(v) => dict.set_item(name, PyList::new(py, v)?)?,
                CfgValue::Unset => dict.set_item(name, py.None())?,
            }
        }
        let hooks = hooks.unwrap_or_else(|| PyDict::new(py).into_any().unbind());
        py.import("ferrule._hooks")?
            .call_method1("install", (hooks, dict))?;
        Ok(())
    })();
    if let Err(e) = installed {
        error!(
            "cannot install the config file's hooks: {}",
            format_exception(py, &e)
        );
    }
}

/// Runs `ferrule._hooks.<func>(*args)`: the wrapper that calls the user's hook, if set.
fn run<'py>(py: Python<'py>, func: &str, args: impl pyo3::call::PyCallArgs<'py>) {
    let called = py
        .import("ferrule._hooks")
        .and_then(|m| m.call_method1(func, args));
    if let Err(e) = called {
        error!("hook wrapper {func} failed: {}", format_exception(py, &e));
    }
}

/// Whether the config file set hook `name`.
pub fn has(py: Python<'_>, name: &str) -> bool {
    py.import("ferrule._hooks")
        .and_then(|m| m.call_method1("has", (name,)))
        .and_then(|r| r.extract::<bool>())
        .unwrap_or(false)
}

/// `on_starting`, `when_ready`, `on_exit`: in the master, with `server`.
pub fn master(py: Python<'_>, name: &str) {
    if has(py, name) {
        run(py, "master_hook", (name,));
    }
}

/// `post_fork`: in a new worker.
pub fn post_fork(py: Python<'_>) {
    run(py, "post_fork", ());
}

/// `worker_exit`: in a worker about to exit.
pub fn worker_exit(py: Python<'_>) {
    if has(py, "worker_exit") {
        run(py, "worker_exit", ());
    }
}

/// `child_exit`: in the master, after it collected worker `pid`.
pub fn child_exit(py: Python<'_>, pid: libc::pid_t, exitcode: Option<i32>, status: &str) {
    if has(py, "child_exit") {
        run(py, "child_exit", (pid, exitcode, status));
    }
}

/// The per-request hooks, looked up once when the worker builds its app.
pub struct RequestHooks {
    pub pre: Option<Py<PyAny>>,
    pub post: Option<Py<PyAny>>,
}

impl RequestHooks {
    /// None when neither `pre_request` nor `post_request` is set: requests pay nothing.
    pub fn load(py: Python<'_>) -> Option<Self> {
        let get = |name: &str| -> Option<Py<PyAny>> {
            if !has(py, name) {
                return None;
            }
            py.import("ferrule._hooks")
                .and_then(|m| m.getattr(name))
                .ok()
                .map(Bound::unbind)
        };
        let hooks = Self {
            pre: get("pre_request"),
            post: get("post_request"),
        };
        (hooks.pre.is_some() || hooks.post.is_some()).then_some(hooks)
    }
}
