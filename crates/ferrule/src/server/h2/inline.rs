//! HTTP/2 with the inline worker (`--threads 1`): the streams' WSGI calls run in turn on the
//! worker's loop while the edge thread keeps every connection's frames moving. Both threads
//! hand work to each other in batches: the streams that became ready in one turn of the edge
//! loop go to the worker as one message, and the responses the worker finished in one turn
//! of its loop are announced to the edge as one message, so that a burst of requests costs
//! one wake-up of each thread, not one per request (pinned to one core, every wake-up of the
//! other thread is a context switch).
use std::cell::OnceCell;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::LocalKey;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::Notify;

use super::sink::Outbound;
use crate::net::ConnInfo;
use crate::server::Worker;
use crate::wsgi;

/// A stream's WSGI call for the inline worker's loop.
pub struct InlineJob {
    pub request: wsgi::Request,
    pub info: ConnInfo,
    pub sink: Box<dyn wsgi::sink::Sink>,
    pub body: Option<Box<dyn wsgi::sink::BodySource>>,
    pub out: Arc<Outbound>,
}

/// The channels between the edge thread and the inline worker's loop.
pub struct Inline {
    jobs: UnboundedSender<Vec<InlineJob>>,
    jobs_rx: Mutex<Option<UnboundedReceiver<Vec<InlineJob>>>>,
    tells: UnboundedSender<Vec<Arc<Outbound>>>,
    tells_rx: Mutex<Option<UnboundedReceiver<Vec<Arc<Outbound>>>>>,
    /// Responses announced by app threads (`--threads` > 1), gathered until the edge thread
    /// runs: the first one wakes it, the others ride along.
    shared: Arc<Batcher<Arc<Outbound>>>,
}

impl Inline {
    #[must_use]
    pub fn new() -> Self {
        let (jobs, jobs_rx) = unbounded_channel();
        let (tells, tells_rx) = unbounded_channel();
        Self {
            jobs,
            jobs_rx: Mutex::new(Some(jobs_rx)),
            tells,
            tells_rx: Mutex::new(Some(tells_rx)),
            shared: Arc::new(Batcher {
                items: Mutex::new(Vec::new()),
                wake: Notify::new(),
            }),
        }
    }

    /// On the edge thread, once: the task that passes the worker's announcements on to the
    /// streams' tasks (local wake-ups, no system call each).
    pub fn start_edge(&self) {
        let rx = self
            .tells_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut rx) = rx {
            tokio::spawn(async move {
                while let Some(outs) = rx.recv().await {
                    for out in outs {
                        out.ready.notify_one();
                    }
                }
            });
            let shared = Arc::clone(&self.shared);
            tokio::spawn(async move {
                loop {
                    shared.wake.notified().await;
                    let outs = std::mem::take(
                        &mut *shared.items.lock().unwrap_or_else(PoisonError::into_inner),
                    );
                    for out in outs {
                        out.ready.notify_one();
                    }
                }
            });
        }
    }

    /// From an app thread: the edge thread is to send what `out` has queued.
    pub fn tell_shared(&self, out: Arc<Outbound>) {
        self.shared.push(out);
    }

    /// On the edge thread: hands a stream's call to the worker with this turn's others.
    pub fn submit(&self, job: InlineJob) {
        batcher(&EDGE_JOBS, &self.jobs).push(job);
    }

    /// On the worker's loop: the edge thread is to send what `out` has queued, with the other
    /// responses of this turn.
    pub fn tell(&self, out: Arc<Outbound>) {
        batcher(&WORKER_TELLS, &self.tells).push(out);
    }
}

impl Default for Inline {
    fn default() -> Self {
        Self::new()
    }
}

/// Items gathered on one thread during a turn of its loop, sent on as one message by a task
/// that runs after the tasks already woken.
struct Batcher<T> {
    items: Mutex<Vec<T>>,
    wake: Notify,
}

impl<T> Batcher<T> {
    fn push(&self, item: T) {
        let first = {
            let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
            items.push(item);
            items.len() == 1
        };
        if first {
            self.wake.notify_one();
        }
    }
}

thread_local! {
    static EDGE_JOBS: OnceCell<Arc<Batcher<InlineJob>>> = const { OnceCell::new() };
    static WORKER_TELLS: OnceCell<Arc<Batcher<Arc<Outbound>>>> = const { OnceCell::new() };
}

/// This thread's batcher for `tx`, its sending task started (on this thread's loop) on first
/// use.
fn batcher<T: Send + 'static>(
    key: &'static LocalKey<OnceCell<Arc<Batcher<T>>>>,
    tx: &UnboundedSender<Vec<T>>,
) -> Arc<Batcher<T>> {
    key.with(|cell| {
        Arc::clone(cell.get_or_init(|| {
            let b = Arc::new(Batcher {
                items: Mutex::new(Vec::new()),
                wake: Notify::new(),
            });
            let (batch, tx) = (Arc::clone(&b), tx.clone());
            tokio::spawn(async move {
                loop {
                    batch.wake.notified().await;
                    // Behind the tasks woken before it: their items are in by now.
                    tokio::task::yield_now().await;
                    let items = std::mem::take(
                        &mut *batch.items.lock().unwrap_or_else(PoisonError::into_inner),
                    );
                    if !items.is_empty() && tx.send(items).is_err() {
                        return;
                    }
                }
            });
            b
        }))
    })
}

/// The inline worker's side of HTTP/2: runs the streams' WSGI calls in turn on its loop, each
/// as it comes (a call whose response is congested goes on in a task of its own).
pub async fn inline_loop(worker: Arc<Worker>) {
    let rx = worker
        .h2_inline
        .jobs_rx
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let Some(mut jobs) = rx else {
        return;
    };
    while let Some(batch) = jobs.recv().await {
        for job in batch {
            let InlineJob {
                request,
                info,
                sink,
                body,
                out,
            } = job;
            match wsgi::serve(&worker.app, &info, request, sink, body, None) {
                wsgi::Served::Done(_) => worker.request_done(),
                wsgi::Served::Waiting(exchange) => {
                    tokio::spawn(resume(Arc::clone(&worker), exchange, out));
                }
            }
        }
    }
}

/// A stream's queue is full: other requests are served until the edge thread has sent some
/// of it (or the client timeout passes), then the call goes on.
async fn resume(worker: Arc<Worker>, exchange: Box<wsgi::Exchange>, out: Arc<Outbound>) {
    let mut served = wsgi::Served::Waiting(exchange);
    while let wsgi::Served::Waiting(exchange) = served {
        let room = out.room_async.notified();
        let writable = !out.full()
            || tokio::time::timeout(worker.client_timeout, room)
                .await
                .is_ok();
        served = wsgi::resume(&worker.app, exchange, writable);
    }
    worker.request_done();
}
