//! The loaded application: importing it (in each worker, or once with `--preload`), what
//! every request of a worker shares, and the recycled `start_response` objects.
use std::fmt;
use std::time::Duration;

use ferrule_proto::Limits;
use pyo3::prelude::*;

use super::input::Input;
use super::mounts::Mounts;
use super::response::StartResponse;
use super::sink::Sink;
use super::{environ, hooks};
use crate::config::{AppSource, Config};
use crate::log;
use crate::watchdog;

/// A loaded application and what each request needs from the worker.
pub struct App {
    /// The app's WSGI callable (None with `--mount`s: `mounts` holds the apps).
    pub callable: Py<PyAny>,
    /// `--mount`s; None (the usual case) costs nothing.
    pub mounts: Option<Box<Mounts>>,
    pub environ: environ::EnvironBase,
    pub root_path: String,
    pub limits: Limits,
    pub client_timeout: Duration,
    pub server_header: bool,
    /// `--forwarded-allow-ips`.
    pub forwarded_allow: ferrule_proto::forwarded::TrustList,
    /// `--request-id-header`, when on.
    pub request_id: Option<super::request_id::RequestIdHeader>,
    /// The app runs on the I/O thread (`--threads 1`): its blocks may be coalesced.
    pub inline: bool,
    /// `--max-queue-wait`, with app threads: longer in the queue is answered 503.
    pub max_queue_wait: Option<Duration>,
    /// `pre_request`/`post_request` from the config file; None (the usual case) costs nothing.
    pub hooks: Option<hooks::RequestHooks>,
    /// The `wsgi.input` of every request without a body: it reads as empty whoever holds
    /// it, so one object serves them all (no object built and freed per GET).
    pub(super) empty_input: Py<Input>,
    /// A `start_response` object nothing refers to any more, kept for the next request
    /// (one object less built and freed per request).
    spare_response: std::sync::Mutex<Option<Py<StartResponse>>>,
}

impl App {
    /// A `start_response` for a new request: the spare one reset, or a new one.
    pub(super) fn response(
        &self,
        py: Python<'_>,
        head_request: bool,
        sink: Box<dyn Sink>,
    ) -> PyResult<Py<StartResponse>> {
        let spare = self
            .spare_response
            .try_lock()
            .ok()
            .and_then(|mut s| s.take());
        let Some(r) = spare else {
            return Py::new(py, StartResponse::new(head_request, sink));
        };
        // Nothing else refers to it (see `recycle`): the borrow cannot fail.
        match r.try_borrow_mut(py) {
            Ok(mut this) => this.reset(head_request, sink),
            Err(_) => return Py::new(py, StartResponse::new(head_request, sink)),
        }
        Ok(r)
    }

    /// Keeps `r` for the next request if nothing else refers to it (the app kept neither
    /// start_response nor its write) and it holds nothing of its response.
    pub(super) fn recycle(&self, py: Python<'_>, r: Py<StartResponse>) {
        // SAFETY: reads the reference count of a live object we hold a reference to, with
        // the GIL held (py).
        let refs = unsafe { pyo3::ffi::Py_REFCNT(r.as_ptr()) };
        let Ok(mut this) = r.try_borrow_mut(py) else {
            return;
        };
        if refs == 1 + this.own_refs() && this.recyclable() {
            if let Ok(mut spare) = self.spare_response.try_lock() {
                if spare.is_none() {
                    drop(this);
                    *spare = Some(r);
                    return;
                }
            }
        }
        this.release_write();
    }
}

/// Formats a Python exception with its traceback, as `traceback.format_exception` does.
pub fn format_exception(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py.import("traceback").and_then(|tb| {
        // (type, value, traceback) explicitly: before 3.12 the value's __traceback__ may not
        // hold the traceback PyO3 fetched, and this form works on every supported Python.
        let lines = tb.call_method1(
            "format_exception",
            (err.get_type(py), err.value(py), err.traceback(py)),
        )?;
        let text: Vec<String> = lines.extract()?;
        Ok(text.concat())
    });
    formatted.unwrap_or_else(|_| format!("{err}"))
}

/// Why the app cannot be served; the message is the one to print, traceback included.
#[derive(Debug)]
#[non_exhaustive]
pub enum AppError {
    /// The APP argument names no usable WSGI callable (`ferrule._loader.AppLoadError`): the
    /// loader's message says why.
    NotUsable(String),
    /// Importing the app, or building what its requests share, raised: the exception with
    /// its traceback.
    Raised(String),
}

impl AppError {
    fn raised(py: Python<'_>, e: &PyErr) -> Self {
        Self::Raised(format_exception(py, e))
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotUsable(msg) | Self::Raised(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for AppError {}

/// Imports the app named on the command line (in the worker, after the fork) and builds what
/// every request shares.
pub fn load(py: Python<'_>, cfg: &Config) -> Result<App, AppError> {
    let loaded = import_app(py, cfg)?;
    build_app(py, cfg, loaded)
}

/// What importing gave: the app's callable, and each `--mount`'s prefix and callable.
pub struct Loaded {
    pub callable: Py<PyAny>,
    pub mounts: Vec<(String, Py<PyAny>)>,
}

impl From<Py<PyAny>> for Loaded {
    fn from(callable: Py<PyAny>) -> Self {
        Self {
            callable,
            mounts: Vec::new(),
        }
    }
}

/// Imports the app, or each mounted app once (in a worker, or with `--preload` in the
/// master): their WSGI callables.
pub fn import_app(py: Python<'_>, cfg: &Config) -> Result<Loaded, AppError> {
    if cfg.mounts.is_empty() {
        return import_one(py, cfg, &cfg.app).map(Loaded::from);
    }
    let mut done: Vec<(&AppSource, Py<PyAny>)> = Vec::new();
    let mut mounts = Vec::with_capacity(cfg.mounts.len());
    for m in &cfg.mounts {
        let callable = if let Some((_, c)) = done.iter().find(|(s, _)| *s == &m.source) {
            c.clone_ref(py)
        } else {
            let c = import_one(py, cfg, &m.source)?;
            done.push((&m.source, c.clone_ref(py)));
            c
        };
        mounts.push((m.prefix.clone(), callable));
    }
    Ok(Loaded {
        callable: py.None(),
        mounts,
    })
}

/// Imports one app through `ferrule._loader`.
fn import_one(py: Python<'_>, cfg: &Config, source: &AppSource) -> Result<Py<PyAny>, AppError> {
    let loaded = py.import("ferrule._loader").and_then(|m| match source {
        AppSource::Spec(spec) => m.call_method1("load", (spec.as_deref(), cfg.pythonpath.clone())),
        AppSource::Paste(uri) => m.call_method1("load_paste", (uri, cfg.pythonpath.clone())),
    });
    let callable = match loaded {
        Ok(c) => c.unbind(),
        Err(e) => {
            let is_load_error = py
                .import("ferrule._loader")
                .and_then(|m| m.getattr("AppLoadError"))
                .is_ok_and(|cls| e.get_type(py).is(&cls));
            return Err(if is_load_error {
                AppError::NotUsable(e.value(py).to_string())
            } else {
                AppError::raised(py, &e)
            });
        }
    };
    Ok(callable)
}

/// What every request of a worker shares, around the app's callable.
pub fn build_app(py: Python<'_>, cfg: &Config, loaded: Loaded) -> Result<App, AppError> {
    let Loaded { callable, mounts } = loaded;
    let mounts = (!mounts.is_empty()).then(|| Box::new(Mounts::new(py, &cfg.root_path, mounts)));
    let settings = environ::BaseSettings {
        root_path: &cfg.root_path,
        // App threads, or the inline worker's side threads for streamed bodies.
        multithread: cfg.threads > 1 || cfg.side_threads(),
        multiprocess: cfg.workers > 1,
    };
    let environ = environ::EnvironBase::new(py, &settings).map_err(|e| AppError::raised(py, &e))?;
    let empty_input = Py::new(py, Input::empty()).map_err(|e| AppError::raised(py, &e))?;
    Ok(App {
        callable,
        mounts,
        environ,
        root_path: cfg.root_path.clone(),
        limits: cfg.limits,
        client_timeout: cfg.client_timeout,
        server_header: cfg.server_header,
        forwarded_allow: cfg.forwarded_allow.clone(),
        request_id: cfg
            .cli
            .request_id_header
            .as_deref()
            .map(super::request_id::RequestIdHeader::new),
        inline: cfg.threads == 1,
        max_queue_wait: (cfg.threads > 1 && cfg.cli.max_queue_wait > 0.0)
            .then(|| Duration::from_secs_f64(cfg.cli.max_queue_wait)),
        hooks: hooks::RequestHooks::load(py),
        empty_input,
        spare_response: std::sync::Mutex::new(None),
    })
}

/// `--reload`: the directory holding the app's source (its top-level package's, or the
/// module's own), found without importing the app.
/// With `--mount`s: the app at `/`'s, else the first mount's; none for `--paste`.
pub fn source_dir(py: Python<'_>, cfg: &Config) -> Option<std::path::PathBuf> {
    let source = cfg.mounts.last().map_or(&cfg.app, |m| &m.source);
    let AppSource::Spec(spec) = source else {
        return None;
    };
    py.import("ferrule._loader")
        .and_then(|m| m.call_method1("source_dir", (spec.as_deref(), cfg.pythonpath.clone())))
        .and_then(|d| d.extract::<Option<String>>())
        .map_err(|e| log::warning!("--reload: cannot find the app's directory: {e}"))
        .ok()
        .flatten()
        .map(std::path::PathBuf::from)
}

/// In the master, before any fork: imports what workers need to load and report on an app,
/// so that a worker running as `--user` need not read the interpreter's own files. (The app
/// itself is not imported: without `--preload` each worker does that.)
pub fn prepare(py: Python<'_>) {
    for module in ["ferrule._loader", "traceback", "faulthandler"] {
        if let Err(e) = py.import(module) {
            log::warning!("cannot import {module}: {e}");
        }
    }
}

/// Has `faulthandler` dump every thread's stack to the error log on the watchdog's signal:
/// the C handler needs no GIL, so it works while a stuck thread holds it.
pub fn register_stack_dump(py: Python<'_>, fd: std::os::fd::RawFd) -> PyResult<()> {
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("file", fd)?;
    kwargs.set_item("all_threads", true)?;
    kwargs.set_item("chain", false)?;
    py.import("faulthandler")?
        .getattr("register")?
        .call((watchdog::DUMP_SIGNAL,), Some(&kwargs))?;
    Ok(())
}
