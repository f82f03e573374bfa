//! Ferrule's native module, `ferrule._native`: the server behind the `ferrule` command.
//!
//! Layout: `cli`/`config` read the command line; `supervisor` is the master process;
//! `server` is a worker's I/O (listeners, connections, the event loop); `wsgi` is the bridge to
//! the Python app, the only module that touches Python objects.

pub mod access;
pub mod cli;
pub mod config;
pub mod log;
pub mod metrics;
pub mod net;
pub mod proctitle;
pub mod server;
pub mod slots;
pub mod sources;
pub mod statics;
pub mod supervisor;
pub mod tls;
pub mod watchdog;
pub mod wsgi;

use pyo3::prelude::*;

/// Runs the `ferrule` command with `argv` (without the program name). Returns the exit code;
/// in a worker process it returns when the worker ends. Python calls it holding the GIL, and
/// the master never lets go of it: the supervisor's calls into Python (`wsgi::process`) attach
/// at no cost, and a forked worker starts out holding it.
#[pyfunction]
fn main(argv: Vec<String>) -> i32 {
    let args: Vec<String> = std::iter::once("ferrule".to_owned()).chain(argv).collect();
    supervisor::remember_start_dir();
    let cfg = match supervisor::configure(&args) {
        Ok(c) => c,
        Err(wsgi::config_file::LoadError::Cli(e)) => {
            let _ = e.print();
            return e.exit_code();
        }
        Err(wsgi::config_file::LoadError::Msg(msg)) => {
            eprintln!("Error: {msg}");
            return 2;
        }
    };
    if let Some(page) = cfg.cli.print_reference {
        print!("{}", sources::reference::render(page));
        return 0;
    }
    if cfg.cli.print_config {
        for w in &cfg.warnings {
            eprintln!("Warning: {w}");
        }
        print!("{}", cfg.report.render());
        return 0;
    }
    log::set_json(cfg.cli.log_json);
    let error_log = Some(cfg.cli.error_logfile.as_str());
    if let Err(e) = log::init(
        cfg.cli.log_level,
        error_log,
        cfg.cli.access_logfile.as_deref(),
    ) {
        eprintln!("Error: cannot open a log file (--error-logfile / --access-logfile): {e}");
        return 2;
    }
    access::configure(cfg.access_style.clone());
    if cfg.cli.capture_output {
        log::capture_output();
    }
    for w in &cfg.warnings {
        log::log(log::Level::Warning, w);
    }
    if cfg.cli.check_config {
        return check_config(&cfg);
    }
    supervisor::run(cfg)
}

/// `--check-config`: imports the app as a worker would; 0 when it loads, else 1.
fn check_config(cfg: &config::Config) -> i32 {
    wsgi::process::prepare();
    match wsgi::process::preload(cfg) {
        Ok(_) => {
            let app = match &cfg.app {
                _ if !cfg.mounts.is_empty() => "each mounted app",
                config::AppSource::Spec(Some(spec)) => spec,
                config::AppSource::Paste(uri) => uri,
                config::AppSource::Spec(None) => "the built-in demo app",
            };
            println!("Configuration OK; {app} loads.");
            0
        }
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}

/// Writes `msg` to the error log at `level` (`debug`, `info`, `warning`, `error`): for hooks.
#[pyfunction]
#[pyo3(name = "log")]
fn write_log(level: &str, msg: &str) {
    let level = match level {
        "debug" => log::Level::Debug,
        "warning" => log::Level::Warning,
        "error" | "critical" => log::Level::Error,
        _ => log::Level::Info,
    };
    log::log(level, msg);
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(main, m)?)?;
    m.add_function(wrap_pyfunction!(write_log, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<wsgi::file_wrapper::FileWrapper>()?;
    m.add_class::<wsgi::file_wrapper::Errors>()?;
    m.add_class::<wsgi::input::Input>()?;
    m.add_class::<wsgi::response::StartResponse>()?;
    Ok(())
}
