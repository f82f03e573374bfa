//! Side app threads of the inline worker (`--threads 1`): a request whose body streams to the
//! app (`--no-request-buffering`, a `--stream-uploads` prefix, FastCGI's STDIN) and has not
//! wholly arrived when the app would be called runs on one of them instead of the event loop.
//! The app's wait for the client's bytes then holds that thread, never the loop: the loop
//! goes on serving every other connection meanwhile (a body that has arrived runs inline as
//! before, without a hand-off).
//!
//! A side thread is an app thread like those of `--threads` (`wsgi::threads::app_thread`:
//! attached to Python for life, detached while it waits for a job or for the client), so the
//! request runs as it would in the pool: its response written with the GIL released while the
//! socket is full (`StreamSink::off_loop`), its result sent back to the connection's task.
//! Up to [`SIDE_THREADS`] threads are started, each on first need (a worker whose clients
//! never stream starts none); beyond them requests wait in a queue of [`SIDE_QUEUE`], and
//! past that the connection's task waits for room, without holding the loop either way.
//! The watchdog (`--timeout`) watches them as it watches app threads: a stuck side thread
//! retires the worker gracefully, where a stuck event loop makes it exit at once.
//! `--max-queue-wait` does not apply (it is an option of app threads). HTTP/2 streams on a
//! streaming path whose body is still to come are sent here too, from the edge thread.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::log::error;
use crate::wsgi::threads::{self, Job};

/// Most side threads of an inline worker: as many streamed bodies read at once.
pub const SIDE_THREADS: usize = 8;

/// Requests that may wait for a side thread before the next one's connection task waits for
/// room in the queue.
const SIDE_QUEUE: usize = 64;

/// The inline worker's side threads and their queue.
pub(super) struct Side {
    tx: async_channel::Sender<Job>,
    rx: async_channel::Receiver<Job>,
    /// Side threads started.
    started: AtomicUsize,
    /// Jobs sent and not yet finished (queued or running).
    running: Arc<AtomicUsize>,
}

/// Counts a job as running until it is done, or dropped unrun.
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Side {
    pub(super) fn new() -> Self {
        let (tx, rx) = async_channel::bounded(SIDE_QUEUE);
        Self {
            tx,
            rx,
            started: AtomicUsize::new(0),
            running: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Gives `job` to a side thread, starting one when every thread started is taken (up to
    /// [`SIDE_THREADS`]). False: no side thread could take it.
    pub(super) async fn send(&self, job: Job) -> bool {
        let running = Running(Arc::clone(&self.running));
        let wanted = self.running.fetch_add(1, Ordering::AcqRel) + 1;
        self.grow(wanted.min(SIDE_THREADS));
        if self.started.load(Ordering::Acquire) == 0 {
            return false;
        }
        let job: Job = Box::new(move || {
            let _running = running;
            job();
        });
        self.tx.send(job).await.is_ok()
    }

    /// Starts side threads until there are `wanted`. Each thread runs one job at a time, so
    /// as many threads as jobs in flight (or the most) leave none of them waiting behind a
    /// busy thread while another could start.
    fn grow(&self, wanted: usize) {
        // The worker's loop (HTTP/1, the gateways) and the edge thread (HTTP/2 streams) both
        // send jobs: a thread is started by whichever claims its number.
        loop {
            let started = self.started.load(Ordering::Acquire);
            if started >= wanted {
                return;
            }
            if self
                .started
                .compare_exchange(started, started + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            let rx = self.rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ferrule-side-{started}"))
                .spawn(move || {
                    crate::watchdog::off_loop();
                    threads::app_thread(&rx, || ());
                });
            if let Err(e) = spawned {
                error!("cannot start side app thread {started}: {e}");
                self.started.fetch_sub(1, Ordering::AcqRel);
                return;
            }
            // The loop's own thread and the side threads started.
            crate::metrics::app_threads(2 + started as u64);
        }
    }
}
