//! The worker's I/O: listeners, the event loop, connection tasks, and the app thread pool.
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::cli::DEFAULT_BODY_MIN_RATE;
use crate::config::Config;
use crate::log::{error, info};
use crate::wsgi::threads::{self, Job};
use crate::wsgi::App;

pub mod body;
mod buffer;
mod compress;
pub mod conn;
mod edge;
pub mod exchange;
pub mod fcgi_out;
pub mod flush;
pub mod gateway;
mod h2;
mod handback;
mod head;
pub mod health;
pub mod listener;
pub mod outbox;
mod pressure;
pub mod rate;
mod side;
pub mod sink;
pub mod statics;
pub mod tls;

/// Everything a worker's connection tasks share.
pub struct Worker {
    pub app: App,
    pub keep_alive: Duration,
    pub client_timeout: Duration,
    /// `--header-timeout`: the longest a request head may take from its first byte; None:
    /// no limit beyond `client_timeout` between reads.
    pub header_timeout: Option<Duration>,
    /// App threads, when `--threads` > 1; None runs the app on the I/O thread.
    pub pool: Option<async_channel::Sender<Job>>,
    /// The inline worker's side threads, for requests whose streamed body is still to come
    /// (none started until one is).
    side: side::Side,
    active: AtomicUsize,
    idle: Notify,
    /// Requests served, for `--max-requests`.
    served: AtomicU64,
    /// Requests after which the worker retires (`--max-requests` plus jitter); 0: never.
    max_requests: u64,
    /// Makes the worker stop gracefully on its own (request timeout, max requests).
    retire: Notify,
    /// `--proxy-protocol`: the peers allowed to send the header.
    pub proxy_protocol: Option<ferrule_proto::forwarded::TrustList>,
    /// TLS binds' configuration, when there are any.
    pub tls: Option<tls::Tls>,
    /// `--compress`, when on.
    pub compress: Option<Arc<crate::config::Compress>>,
    /// `--timeout` (zero: none): HTTP/2 streams answer 504 past it.
    pub request_timeout: Duration,
    /// `--http`: HTTP/1.1 is served (else only HTTP/2).
    pub http1: bool,
    /// `--http`: HTTP/2's settings when it is served.
    pub http2: Option<crate::config::Http2Settings>,
    /// The edge thread (TLS, HTTP/2), started on first use.
    edge: edge::Edge,
    /// HTTP/2 streams' WSGI calls for the inline worker's loop.
    h2_inline: h2::Inline,
    /// `--static` mounts, answered before the app on HTTP connections.
    pub statics: Option<Arc<crate::statics::Statics>>,
    /// `--health-path`, answered by the worker itself.
    pub health_path: Option<String>,
    /// `--worker-connections`: the cap, and the HTTP/1 connections that may be closed to
    /// make room.
    conns: pressure::Connections,
    /// Request body buffering on HTTP/1 (`--no-request-buffering`, `--stream-uploads`,
    /// `--body-buffer-size`, `--body-spool-dir`).
    buffering: buffer::Buffering,
}

/// Counts a connection as active while it lives (and open in the metrics, by `_open`'s drop).
pub struct ActiveGuard {
    worker: Arc<Worker>,
    _open: Option<crate::metrics::Held>,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if self.worker.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.worker.idle.notify_waiters();
        }
        self.worker.conns.closed();
    }
}

impl Worker {
    /// Counts a served request; at `--max-requests` the worker retires gracefully.
    pub fn request_done(&self) {
        let n = self.served.fetch_add(1, Ordering::AcqRel) + 1;
        if self.max_requests != 0 && n == self.max_requests {
            info!("Autorestarting worker after {n} requests (--max-requests)");
            self.retire(crate::slots::LEAVING_MAX_REQUESTS);
        }
    }

    /// Stops accepting and leaves once in-flight requests are done; the master replaces it.
    /// `why`: one of `slots::LEAVING*`.
    pub fn retire(&self, why: u32) {
        crate::slots::leaving(why);
        health::drain();
        self.retire.notify_one();
    }

    /// The response settings of a request on connection `fd`.
    pub(crate) fn sink_settings(
        &self,
        fd: std::os::fd::RawFd,
        wire: sink::Wire,
        keep_alive: bool,
    ) -> sink::Settings {
        sink::Settings {
            fd,
            wire,
            keep_alive,
            server_header: self.app.server_header,
            timeout: self.client_timeout,
            inline: self.pool.is_none(),
            outbox: false,
        }
    }

    /// Connections open now (all protocols).
    fn open_connections(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    fn enter(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        ActiveGuard {
            worker: Arc::clone(self),
            _open: crate::metrics::connection(),
        }
    }

    /// Gives `job` to the app threads. False: the worker has no app threads, or they are
    /// gone.
    pub async fn send_job(&self, job: Job) -> bool {
        match &self.pool {
            Some(tx) => tx.send(job).await.is_ok(),
            None => false,
        }
    }
}

/// How the worker was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// TERM: finish in-flight requests within the graceful timeout.
    Graceful,
    /// INT or QUIT: stop now.
    Fast,
}

/// `--max-requests` plus a jitter in `0..=jitter` that differs between workers.
fn retire_after(max: u64, jitter: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    let seed = u64::from(std::process::id())
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(crate::slots::now_ms());
    max + seed % (jitter + 1)
}

/// Runs the worker's event loop until a stop signal. With app threads (`--threads` > 1),
/// call with the GIL released. Inline (`--threads 1`), call with it held: the loop keeps it
/// while it runs and lets go of it only while it waits for events, so a request does not
/// take and drop the GIL (about 600 instructions each), and the app's own threads still run
/// whenever the worker is idle or inside the app's Python code.
pub fn run(cfg: &Config, listeners: Vec<listener::Listener>, app: App) -> i32 {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    if cfg.threads == 1 {
        builder
            .on_thread_park(|| {
                // The responses the loop served, then the GIL, before it waits for events.
                outbox::flush_all();
                threads::release_gil();
            })
            .on_thread_unpark(threads::reacquire_gil);
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the event loop: {e}");
            return 1;
        }
    };
    let pool = (cfg.threads > 1).then(|| {
        // One queue, strictly first come first served: a bounded channel let a request read
        // later take the room a waiting one was woken for (the woken sender went back to
        // the end of the line), which made the slowest requests several times the median.
        // Its length is bounded by the connections (`--worker-connections`): an HTTP/1 or
        // gateway connection has one request here at most, an HTTP/2 one its open streams.
        let (tx, rx) = async_channel::unbounded::<Job>();
        for i in 0..cfg.threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ferrule-app-{i}"))
                .spawn(move || threads::app_thread(&rx, outbox::flush_all));
            if let Err(e) = spawned {
                error!("cannot start app thread {i}: {e}");
            }
        }
        tx
    });
    let inline = cfg.threads == 1;
    crate::metrics::app_threads(u64::from(cfg.threads));
    let server_header = app.server_header;
    let worker = Arc::new(Worker {
        app,
        keep_alive: cfg.keep_alive,
        client_timeout: cfg.client_timeout,
        header_timeout: (cfg.cli.header_timeout > 0)
            .then(|| Duration::from_secs(cfg.cli.header_timeout)),
        pool,
        side: side::Side::new(),
        active: AtomicUsize::new(0),
        idle: Notify::new(),
        served: AtomicU64::new(0),
        max_requests: retire_after(cfg.max_requests, cfg.max_requests_jitter),
        retire: Notify::new(),
        proxy_protocol: cfg.proxy_protocol.clone(),
        tls: cfg.tls.as_ref().map(tls::Tls::new),
        compress: cfg.compress.clone(),
        request_timeout: cfg.timeout,
        http1: cfg.http1,
        http2: cfg.http2,
        edge: edge::Edge::default(),
        h2_inline: h2::Inline::new(),
        statics: cfg.statics.clone(),
        health_path: cfg.cli.health_path.clone(),
        conns: pressure::Connections::new(
            usize::try_from(cfg.cli.worker_connections).unwrap_or(usize::MAX),
        ),
        buffering: buffer::Buffering {
            enabled: !cfg.cli.no_request_buffering,
            memory: usize::try_from(cfg.cli.body_buffer_size).unwrap_or(usize::MAX),
            spool_dir: cfg
                .cli
                .body_spool_dir
                .clone()
                .unwrap_or_else(std::env::temp_dir),
            stream_prefixes: cfg.cli.stream_uploads.clone(),
            min_rate: cfg.cli.body_min_rate.unwrap_or(DEFAULT_BODY_MIN_RATE),
            stream_min_rate: cfg.cli.body_min_rate.unwrap_or(0),
        },
    });
    if !cfg.timeout.is_zero() {
        let w = Arc::clone(&worker);
        crate::watchdog::spawn(
            crate::watchdog::Settings {
                timeout: cfg.timeout,
                graceful: cfg.graceful_timeout,
                inline,
                server_header,
            },
            Box::new(move || w.retire(crate::slots::LEAVING_TIMEOUT)),
        );
    }
    let graceful = cfg.graceful_timeout;
    let reload_certs = cfg.tls.as_ref().is_some_and(|t| t.reload_certs);
    rt.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        for l in listeners {
            let display = l.display.clone();
            if let Err(e) = conn::spawn_acceptor(l, Arc::clone(&worker), stop_rx.clone()) {
                error!("cannot use listener {display}: {e}");
                return 1;
            }
        }
        if inline {
            tokio::spawn(h2::inline_loop(Arc::clone(&worker)));
        }
        let certs = match (&worker.tls, reload_certs) {
            (Some(t), true) => Some(tokio::spawn(tls::watch_certs(t.store()))),
            _ => None,
        };
        let beat = tokio::spawn(heartbeat());
        crate::slots::booted();
        let stop = tokio::select! {
            s = wait_for_stop() => s,
            () = worker.retire.notified() => Stop::Graceful,
        };
        crate::slots::leaving(crate::slots::LEAVING);
        health::drain();
        let _ = stop_tx.send(true);
        if stop == Stop::Graceful {
            // Requests the watchdog gave up on never finish: do not wait for them.
            let drained = async {
                loop {
                    let notified = worker.idle.notified();
                    if worker.active.load(Ordering::Acquire) <= crate::watchdog::stuck_count() {
                        break;
                    }
                    let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
                }
            };
            if tokio::time::timeout(graceful, drained).await.is_err() {
                info!(
                    "graceful timeout: {} connection(s) still open",
                    worker.active.load(Ordering::Acquire)
                );
            }
        }
        beat.abort();
        if let Some(c) = certs {
            c.abort();
        }
        0
    })
}

/// Tells the master the worker is alive, once a second. It takes the GIL for a moment (the
/// inline loop takes it back after each wait), so a thread that never releases it (a wedged C
/// extension) stops the heartbeat too.
async fn heartbeat() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        threads::probe_gil();
        crate::slots::heartbeat();
    }
}

/// Waits for TERM (graceful), INT or QUIT (fast); USR1 reopens the log files meanwhile.
async fn wait_for_stop() -> Stop {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut quit), Ok(mut usr1)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::quit()),
        signal(SignalKind::user_defined1()),
    ) else {
        error!("cannot install signal handlers");
        return Stop::Fast;
    };
    // A stop signal that came while the worker was starting (see supervisor::early_stop).
    match crate::slots::early_stop() {
        Some(libc::SIGTERM) => return Stop::Graceful,
        Some(_) => return Stop::Fast,
        None => {}
    }
    loop {
        tokio::select! {
            _ = term.recv() => return Stop::Graceful,
            _ = int.recv() => return Stop::Fast,
            _ = quit.recv() => return Stop::Fast,
            _ = usr1.recv() => crate::log::reopen(),
        }
    }
}
