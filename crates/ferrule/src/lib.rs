//! Ferrule's native module, `ferrule._native`: the server behind the `ferrule` command.
//!
//! Layout: `cli`/`config` read the command line; `supervisor` is the master process;
//! `server` is a worker's I/O (listeners, connections, the event loop); `wsgi` is the bridge to
//! the Python app, the only module that touches Python objects.

pub mod cli;
pub mod config;
pub mod log;
pub mod server;
pub mod supervisor;
pub mod wsgi;

use clap::Parser;
use pyo3::prelude::*;

/// Runs the `ferrule` command with `argv` (without the program name). Returns the exit code;
/// in a worker process it returns when the worker ends.
#[pyfunction]
fn main(py: Python<'_>, argv: Vec<String>) -> i32 {
    let args = std::iter::once("ferrule".to_owned()).chain(argv);
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    if let Some(dir) = &cli.chdir {
        if let Err(e) = std::env::set_current_dir(dir) {
            eprintln!("Error: --chdir {}: {e}", dir.display());
            return 2;
        }
    }
    let cfg = match config::Config::from_cli(cli) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("Error: {msg}");
            return 2;
        }
    };
    let error_log = Some(cfg.cli.error_logfile.as_str());
    if let Err(e) = log::init(
        cfg.cli.log_level,
        error_log,
        cfg.cli.access_logfile.as_deref(),
    ) {
        eprintln!("Error: cannot open a log file (--error-logfile / --access-logfile): {e}");
        return 2;
    }
    supervisor::run(py, &cfg)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(main, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<wsgi::file_wrapper::FileWrapper>()?;
    m.add_class::<wsgi::file_wrapper::Errors>()?;
    m.add_class::<wsgi::input::Input>()?;
    m.add_class::<wsgi::response::Response>()?;
    Ok(())
}
