//! How a worker's threads hold Python: the inline event loop's GIL around its waits, the app
//! threads that attach once and detach while they wait for jobs, and the heartbeat's probe.
//! `server/` calls these plain functions; only this file knows they are about the GIL.
use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::marker::Ungil;
use pyo3::Python;

use crate::log::error;

/// A request for an app thread: it runs attached to Python.
pub type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    /// The inline loop's thread state saved while it waits; null while it holds the GIL.
    static SAVED: Cell<*mut pyo3::ffi::PyThreadState> = const { Cell::new(std::ptr::null_mut()) };
}

/// The inline worker's event loop, before it waits for events: releases the GIL the thread
/// holds (the loop runs with it held, see `server::run`). Call `reacquire_gil` after the wait.
#[inline]
pub fn release_gil() {
    if SAVED.with(Cell::get).is_null() {
        // SAFETY: called on the loop's thread, which holds the GIL whenever it is not
        // waiting (the worker calls `server::run` with it held, and `reacquire_gil` takes it
        // back after each wait); no Python object is touched until `reacquire_gil`.
        let state = unsafe { pyo3::ffi::PyEval_SaveThread() };
        SAVED.with(|s| s.set(state));
    }
}

/// After the inline loop's wait: takes the GIL back.
#[inline]
pub fn reacquire_gil() {
    let state = SAVED.with(|s| s.replace(std::ptr::null_mut()));
    if !state.is_null() {
        // SAFETY: `state` is this thread's state, saved by `release_gil` on this thread.
        unsafe { pyo3::ffi::PyEval_RestoreThread(state) };
    }
}

/// The life of an app thread (`--threads` > 1): runs the jobs from `jobs` until the channel
/// closes. It attaches to Python once for its whole life and detaches while it waits: a
/// thread state made per request (and torn down after) would cost every request a fresh frame
/// stack. When no job is waiting it calls `idle` (detached: the worker writes what its
/// outbox holds), then sleeps until one comes. Call it with the GIL released (a thread of
/// its own).
pub fn app_thread(jobs: &async_channel::Receiver<Job>, idle: fn()) {
    Python::attach(|py| {
        let next = || match jobs.try_recv() {
            Ok(job) => Ok(job),
            Err(_) => {
                idle();
                jobs.recv_blocking()
            }
        };
        while let Ok(job) = py.detach(next) {
            run_job(job);
        }
    });
}

/// Runs one job; a panic in it is logged and the thread goes on with the next job. The job's
/// captures (its result's sender among them) are dropped while it unwinds, so whoever waits
/// for the result sees it will never come (the connection's task closes the connection).
fn run_job(job: Job) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(job)) {
        // The request is over for the watchdog too (its clock already stopped as the panic
        // unwound): this thread's slot forgets the connection.
        crate::watchdog::request_end();
        let thread = std::thread::current();
        error!(
            "app thread {} panicked: {}; it goes on with the next request",
            thread.name().unwrap_or("?"),
            panic_message(&*panic)
        );
    }
}

/// The message a panic was raised with (`panic!("...")` gives a `&str` or a `String`).
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Runs `f` with the GIL released, from a thread that holds it: the worker with app threads
/// runs its event loop so (the loop's thread never waits for the GIL), and an app or side
/// thread drains a request body the app left unread so.
pub fn without_gil<T: Ungil>(f: impl FnOnce() -> T + Ungil) -> T {
    Python::attach(|py| py.detach(f))
}

/// Waits until this thread can take the GIL, and lets go of it at once: the heartbeat's proof
/// that no thread holds it forever (a wedged C extension stops the heartbeat too).
pub fn probe_gil() {
    Python::attach(|_| ());
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyo3::types::PyAnyMethods;

    #[test]
    fn a_panicking_job_closes_its_result_channel_and_the_next_job_runs() {
        let (tx, rx) = std::sync::mpsc::channel::<u32>();
        let job: Job = Box::new(move || {
            let _keep = &tx;
            panic!("boom");
        });
        run_job(job);
        assert!(rx.recv().is_err(), "the sender went with the panicking job");
        let (tx, rx) = std::sync::mpsc::channel::<u32>();
        run_job(Box::new(move || tx.send(7).expect("send")));
        assert_eq!(rx.recv().ok(), Some(7));
    }

    #[test]
    fn an_app_thread_survives_a_panicking_job() {
        Python::initialize();
        let (jobs_tx, jobs_rx) = async_channel::bounded::<Job>(4);
        let thread = std::thread::spawn(move || app_thread(&jobs_rx, || ()));
        let (tx, first) = std::sync::mpsc::channel::<u32>();
        let job: Job = Box::new(move || {
            let _keep = &tx;
            panic!("inside the app");
        });
        jobs_tx.send_blocking(job).expect("queued");
        let (tx, second) = std::sync::mpsc::channel::<u32>();
        let job: Job = Box::new(move || {
            let n = Python::attach(|py| py.eval(c"6 * 7", None, None)?.extract::<u32>());
            tx.send(n.expect("python runs")).expect("send");
        });
        jobs_tx.send_blocking(job).expect("queued");
        assert!(
            first.recv().is_err(),
            "the panicking job's result never comes"
        );
        assert_eq!(second.recv().ok(), Some(42));
        drop(jobs_tx);
        thread
            .join()
            .expect("the app thread ends when the queue closes");
    }

    #[test]
    fn panic_messages() {
        let p = catch_unwind(|| panic!("plain")).expect_err("panics");
        assert_eq!(panic_message(&*p), "plain");
        let n = 3;
        let p = catch_unwind(|| panic!("formatted {n}")).expect_err("panics");
        assert_eq!(panic_message(&*p), "formatted 3");
    }
}
