//! The master's two metrics threads: the scrape endpoint (`--metrics-bind`) and the statsd
//! sender (`--statsd-host`). The master forks workers while they run, so they hold no lock a
//! child could need: they log nothing, use only atomics, the [`super::master`] lock (which no
//! worker takes) and their own allocations (glibc's malloc is fork-safe). A worker closes
//! their sockets after the fork ([`after_fork`]).
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd as _, RawFd};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::Duration;

use super::master::{snapshot, Snapshot, REASONS};
use super::render::{render, Format};

/// The listeners whose accept queue is reported: a name and the master's descriptor.
pub type Listeners = Vec<(String, RawFd)>;

/// The metrics threads started in this process.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// How many metrics threads run in this process (the master).
pub fn threads() -> usize {
    THREADS.load(Ordering::Acquire)
}

/// The metrics threads' sockets, closed by a worker after the fork.
static SOCKETS: [AtomicI32; 2] = [AtomicI32::new(-1), AtomicI32::new(-1)];

/// In a new worker: closes the master's metrics sockets (the threads did not follow the fork).
pub fn after_fork() {
    for s in &SOCKETS {
        let fd = s.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            // SAFETY: the descriptor was the master's metrics socket; in the child nothing
            // else owns it (the thread that held it does not exist here).
            unsafe { libc::close(fd) };
        }
    }
}

/// A scrape's request head may be this large; a larger one is cut off and answered anyway.
const MAX_HEAD: usize = 8 * 1024;
/// How long a scraper may take to send its request or read the answer.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the scrape thread on a bound listener.
///
/// # Errors
/// The thread could not start.
pub fn start_scrapes(listener: TcpListener, listeners: Listeners) -> std::io::Result<()> {
    SOCKETS[0].store(listener.as_raw_fd(), Ordering::Release);
    std::thread::Builder::new()
        .name("ferrule-metrics".to_owned())
        .spawn(move || loop {
            match listener.accept() {
                Ok((stream, _)) => answer(stream, &listeners),
                // Out of descriptors, say: try again a little later, without logging.
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        })?;
    THREADS.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

/// Reads a scrape's head and answers it; errors end the connection silently.
fn answer(mut stream: TcpStream, listeners: &Listeners) {
    let _ = stream.set_read_timeout(Some(SCRAPE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(SCRAPE_TIMEOUT));
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let method = lines
        .next()
        .and_then(|l| l.split(' ').next())
        .unwrap_or_default();
    let accept = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("accept")
            .then(|| value.trim())
    });
    let response = respond(method, accept, listeners);
    let _ = stream.write_all(&response);
}

/// The whole response to a scrape.
fn respond(method: &str, accept: Option<&str>, listeners: &Listeners) -> Vec<u8> {
    if method != "GET" && method != "HEAD" {
        return b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\n\
                 Connection: close\r\n\r\n"
            .to_vec();
    }
    let format = Format::for_accept(accept);
    let body = render(&snapshot(listeners), format);
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        format.content_type(),
        body.len()
    )
    .into_bytes();
    if method == "GET" {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// `--statsd-host`'s settings.
#[derive(Debug, Clone)]
pub struct Statsd {
    pub host: SocketAddr,
    /// `--statsd-prefix`, with a dot added when it lacks one (as gunicorn does).
    pub prefix: String,
    pub interval: Duration,
}

/// Starts the statsd thread: every `interval`, the figures as statsd lines in one datagram
/// (or a few, each under 1432 bytes) to `host`.
///
/// # Errors
/// The UDP socket or the thread could not be made.
pub fn start_statsd(statsd: Statsd, listeners: Listeners) -> std::io::Result<()> {
    let bind: SocketAddr = if statsd.host.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind)?;
    SOCKETS[1].store(socket.as_raw_fd(), Ordering::Release);
    std::thread::Builder::new()
        .name("ferrule-statsd".to_owned())
        .spawn(move || {
            let mut last = Snapshot::default();
            loop {
                std::thread::sleep(statsd.interval);
                let now = snapshot(&listeners);
                for datagram in statsd_lines(&statsd.prefix, &last, &now) {
                    let _ = socket.send_to(datagram.as_bytes(), statsd.host);
                }
                last = now;
            }
        })?;
    THREADS.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

/// The statsd lines between two snapshots, packed into datagrams. Gunicorn's names where
/// gunicorn has the figure (`gunicorn.requests`, `gunicorn.request.duration`,
/// `gunicorn.request.status.N`, `gunicorn.workers`), `ferrule.*` for the rest.
#[must_use]
pub fn statsd_lines(prefix: &str, last: &Snapshot, now: &Snapshot) -> Vec<String> {
    let mut lines = Vec::new();
    let (mut n, mut sum) = (0, 0);
    let mut by_status = std::collections::BTreeMap::<u16, u64>::new();
    for (key, h) in &now.totals.series {
        let before = last.totals.series.get(key);
        let dn = h.count.saturating_sub(before.map_or(0, |b| b.count));
        n += dn;
        sum += h.sum_us.saturating_sub(before.map_or(0, |b| b.sum_us));
        *by_status.entry(super::parts(*key).2).or_default() += dn;
    }
    lines.push(format!("{prefix}gunicorn.requests:{n}|c"));
    if n > 0 {
        #[expect(clippy::cast_precision_loss, reason = "a mean in milliseconds")]
        let mean = sum as f64 / n as f64 / 1000.0;
        lines.push(format!("{prefix}gunicorn.request.duration:{mean:.3}|ms"));
    }
    for (status, dn) in by_status.into_iter().filter(|&(_, d)| d > 0) {
        lines.push(format!("{prefix}gunicorn.request.status.{status}:{dn}|c"));
    }
    lines.push(format!("{prefix}gunicorn.workers:{}|g", now.workers.len()));
    let counters = [
        (
            "request.body_bytes",
            last.totals.request_bytes,
            now.totals.request_bytes,
        ),
        (
            "response.body_bytes",
            last.totals.response_bytes,
            now.totals.response_bytes,
        ),
        (
            "connections.accepted",
            last.totals.accepted,
            now.totals.accepted,
        ),
    ];
    for (name, a, b) in counters {
        lines.push(format!("{prefix}ferrule.{name}:{}|c", b.saturating_sub(a)));
    }
    for ((reason, a), b) in REASONS.iter().zip(last.restarts).zip(now.restarts) {
        lines.push(format!(
            "{prefix}ferrule.worker.restarts.{reason}:{}|c",
            b.saturating_sub(a)
        ));
    }
    let gauges = [
        ("active_requests", now.active),
        ("connections.open", now.open),
        ("app_threads.busy", now.busy),
        ("app_threads.idle", now.threads.saturating_sub(now.busy)),
        ("requests.queued", now.queued),
        ("queue.longest_wait_ms", now.wait_max_us / 1000),
        (
            "listen_backlog",
            now.backlog.iter().map(|b| b.queued).sum::<u64>(),
        ),
    ];
    for (name, v) in gauges {
        lines.push(format!("{prefix}ferrule.{name}:{v}|g"));
    }
    for (pid, rss) in &now.workers {
        if let Some(rss) = rss {
            lines.push(format!("{prefix}ferrule.worker.{pid}.rss_bytes:{rss}|g"));
        }
    }
    pack(&lines)
}

/// Lines joined by newlines into datagrams of at most 1432 bytes (safe under common MTUs).
fn pack(lines: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for l in lines {
        if !cur.is_empty() && cur.len() + 1 + l.len() > 1432 {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push('\n');
        }
        let _ = write!(cur, "{l}");
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `--statsd-prefix` as gunicorn uses it: with one trailing dot, or empty.
#[must_use]
pub fn normalize_prefix(p: &str) -> String {
    let p = p.trim_end_matches('.');
    if p.is_empty() {
        String::new()
    } else {
        format!("{p}.")
    }
}
