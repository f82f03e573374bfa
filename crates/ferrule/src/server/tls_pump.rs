//! HTTPS/1.1 on the worker's own loop: the pump between a TLS session (whose handshake ran on
//! the edge thread) and the HTTP/1 engine's end of a socket pair. Running on the worker's
//! loop, a request costs no hop to another thread (two threads pinned to one core pay a
//! context switch each way); the pair keeps the engine unchanged (sendfile, pipelining, the
//! inline flusher, blocking body reads).
//!
//! While the inline app runs, the worker's loop does not, so its pump task cannot either: an
//! app blocking on `wsgi.input` (a streamed upload) or on a full pair (a large response) would
//! wait for bytes only the pump moves. Every blocking wait goes through `net::io::wait`, whose
//! hook ([`wait_hook`]) pumps the connection's session on the waiting thread (the worker's, an
//! app thread's or the flusher's) until the engine's descriptor is ready. The session is
//! behind a mutex, so the loop's task and a waiting thread take turns.
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::ServerConnection;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::Notify;

use crate::net::io as sio;

/// What the pump reads from the engine at once (a TLS record holds up to 16 KiB).
const PUMP_BUF: usize = 64 * 1024;
/// Plaintext taken from the session at once for the engine.
const UP_BUF: usize = 16 * 1024;

/// A session settled on the edge thread, on its way to the worker's loop.
pub struct Moved {
    pub conn: ServerConnection,
    /// The client's socket (TCP or Unix), non-blocking, out of the edge loop's reactor.
    pub socket: OwnedFd,
    /// Bytes read from the socket that the session has not taken yet.
    pub leftover: Bytes,
}

/// What the pump waits for after a step: the descriptors whose last call would have blocked.
#[derive(Clone, Copy, Default)]
struct Want {
    client_read: bool,
    client_write: bool,
    engine_read: bool,
    engine_write: bool,
    done: bool,
}

/// One connection's pump state; stepped under the mutex of [`Shared`].
struct Pump {
    conn: ServerConnection,
    client: OwnedFd,
    /// The pump's end of the pair (the engine has the other).
    ours: OwnedFd,
    /// Plaintext from the client; `up_at..up_end` is not yet taken by the engine.
    up: Box<[u8]>,
    up_at: usize,
    up_end: usize,
    /// The client sent close_notify, closed or failed: the engine was told (EOF).
    client_eof: bool,
    /// The engine closed its end: close_notify is queued.
    engine_eof: bool,
    done: bool,
    buf: Vec<u8>,
    /// Whether each descriptor may have something to read / room to write: false once a call
    /// would have blocked or came back short, true again when the loop or `poll` says so.
    /// No call is made on a descriptor known not to be ready.
    ready: Ready,
}

#[derive(Clone, Copy)]
struct Ready {
    client_r: bool,
    client_w: bool,
    engine_r: bool,
    engine_w: bool,
}

/// A raw descriptor for `AsyncFd`; the descriptor itself is owned by the [`Pump`].
struct Fd(RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// `Read`/`Write` over a non-blocking socket, for rustls; `short` tells whether the last call
/// would have blocked or moved fewer bytes than asked (the socket is drained or full).
struct SockIo {
    fd: RawFd,
    short: bool,
}

impl SockIo {
    fn new(fd: RawFd) -> Self {
        Self { fd, short: false }
    }
}

impl Read for SockIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is writable memory of `buf.len()` bytes that recv(2) writes at most.
        let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error());
        self.short = n.as_ref().map_or(true, |&n| n < buf.len());
        n
    }
}

impl Write for SockIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let total: usize = bufs.iter().take(sio::MAX_IOVECS).map(|b| b.len()).sum();
        let n = sio::try_writev(self.fd, bufs);
        self.short = n.as_ref().map_or(true, |&n| n < total);
        match n {
            Ok(0) if total > 0 => Err(io::ErrorKind::WouldBlock.into()),
            other => other,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

impl Pump {
    /// Moves what it can both ways without blocking; says what it waits for.
    fn step(&mut self) -> Want {
        let mut want = Want::default();
        if self.done {
            want.done = true;
            return want;
        }
        // A few rounds: taking the client's bytes may queue TLS output (alerts, key updates).
        for _ in 0..4 {
            want = Want::default();
            if !self.down(&mut want) {
                self.finish();
                want.done = true;
                return want;
            }
            self.up_step(&mut want);
            if !self.conn.wants_write() || want.client_write {
                break;
            }
        }
        want
    }

    /// Engine to client. False: the pump is over (the engine closed and all went, or the
    /// client cannot be written to).
    fn down(&mut self, want: &mut Want) -> bool {
        loop {
            while self.conn.wants_write() {
                if !self.ready.client_w {
                    want.client_write = true;
                    return true;
                }
                let mut io = SockIo::new(self.client.as_raw_fd());
                let wrote = self.conn.write_tls(&mut io);
                self.ready.client_w = !io.short;
                match wrote {
                    Ok(_) => {}
                    Err(e) if would_block(&e) => {}
                    Err(_) => return false,
                }
            }
            if self.engine_eof {
                return false;
            }
            if !self.ready.engine_r {
                want.engine_read = true;
                return true;
            }
            let mut buf = std::mem::take(&mut self.buf);
            buf.resize(PUMP_BUF, 0);
            let mut io = SockIo::new(self.ours.as_raw_fd());
            let read = io.read(&mut buf);
            self.ready.engine_r = !io.short;
            let more = match read {
                Ok(0) => {
                    self.engine_eof = true;
                    self.conn.send_close_notify();
                    true
                }
                Ok(n) => buf
                    .get(..n)
                    .is_some_and(|b| self.conn.writer().write_all(b).is_ok()),
                Err(e) if would_block(&e) => true,
                Err(_) => {
                    self.engine_eof = true;
                    self.conn.send_close_notify();
                    true
                }
            };
            self.buf = buf;
            if !more {
                return false;
            }
        }
    }

    /// Client to engine; the engine's reads set the pace (nothing more is taken from the
    /// session while it has not taken the last plaintext).
    fn up_step(&mut self, want: &mut Want) {
        loop {
            if let Some(rest) = self
                .up
                .get(self.up_at..self.up_end)
                .filter(|r| !r.is_empty())
            {
                if !self.ready.engine_w {
                    want.engine_write = true;
                    return;
                }
                let mut io = SockIo::new(self.ours.as_raw_fd());
                let wrote = io.write(rest);
                self.ready.engine_w = !io.short;
                match wrote {
                    Ok(n) => self.up_at += n,
                    Err(e) if would_block(&e) => {}
                    // The engine is gone; its end closing ends the other direction.
                    Err(_) => {
                        (self.up_at, self.up_end) = (0, 0);
                        self.client_eof = true;
                        return;
                    }
                }
                continue;
            }
            if self.client_eof {
                return;
            }
            (self.up_at, self.up_end) = (0, 0);
            match self.conn.reader().read(&mut self.up) {
                Ok(0) => {
                    self.client_ended();
                    return;
                }
                Ok(n) => {
                    self.up_end = n.min(self.up.len());
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    self.client_ended();
                    return;
                }
            }
            if !self.ready.client_r {
                want.client_read = true;
                return;
            }
            let mut io = SockIo::new(self.client.as_raw_fd());
            let read = self.conn.read_tls(&mut io);
            self.ready.client_r = !io.short;
            match read {
                Ok(0) => {
                    self.client_ended();
                    return;
                }
                Ok(_) => {
                    if self.conn.process_new_packets().is_err() {
                        // The alert rustls queued goes out with the next write.
                        self.client_ended();
                        return;
                    }
                }
                Err(e) if would_block(&e) => {}
                Err(_) => {
                    self.client_ended();
                    return;
                }
            }
        }
    }

    /// The client stopped sending: the engine reads EOF; its answer may still go.
    fn client_ended(&mut self) {
        self.client_eof = true;
        sio::shutdown_write(self.ours.as_raw_fd());
    }

    /// The pump is over: the engine sees its end closed at once, not when the last reference
    /// to the pump goes.
    fn finish(&mut self) {
        self.done = true;
        // SAFETY: `ours` is an open socket owned by this pump.
        unsafe { libc::shutdown(self.ours.as_raw_fd(), libc::SHUT_RDWR) };
    }
}

/// A pump, shared by the loop's task and threads waiting on the engine's descriptor.
pub struct Shared {
    pump: Mutex<Pump>,
    /// A waiting thread stepped the pump: the loop's task looks again.
    nudge: Notify,
    client_fd: RawFd,
    ours_fd: RawFd,
    engine_fd: RawFd,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pump> {
        self.pump.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn step(&self) -> Want {
        self.lock().step()
    }
}

/// Pumps of this process by the engine's descriptor, for [`wait_hook`].
fn registry() -> &'static Mutex<HashMap<RawFd, Weak<Shared>>> {
    static PUMPS: OnceLock<Mutex<HashMap<RawFd, Weak<Shared>>>> = OnceLock::new();
    PUMPS.get_or_init(|| {
        sio::set_wait_hook(wait_hook);
        Mutex::new(HashMap::new())
    })
}

/// Pumps registered: the hook looks no further when there are none.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Removes a pump from the registry when its connection ends.
struct Registered(RawFd);

impl Drop for Registered {
    fn drop(&mut self) {
        let mut map = registry().lock().unwrap_or_else(PoisonError::into_inner);
        if map.remove(&self.0).is_some() {
            ACTIVE.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// `net::io::wait`'s hook: a thread about to wait on the engine's end of a TLS connection's
/// pair pumps the session until that end is ready (or `deadline`). None: not such a descriptor.
fn wait_hook(fd: RawFd, write: bool, deadline: Instant) -> Option<io::Result<()>> {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let shared = registry()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&fd)?
        .upgrade()?;
    let events = |on: bool, ev: libc::c_short| if on { ev } else { 0 };
    loop {
        let want = shared.step();
        shared.nudge.notify_one();
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [
            libc::pollfd {
                fd,
                events: if write { libc::POLLOUT } else { libc::POLLIN },
                revents: 0,
            },
            libc::pollfd {
                fd: shared.client_fd,
                events: events(want.client_read, libc::POLLIN)
                    | events(want.client_write, libc::POLLOUT),
                revents: 0,
            },
            libc::pollfd {
                fd: shared.ours_fd,
                events: events(want.engine_read, libc::POLLIN)
                    | events(want.engine_write, libc::POLLOUT),
                revents: 0,
            },
        ];
        let count: libc::nfds_t = if want.done { 1 } else { 3 };
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `fds` holds `count` (at most 3) valid pollfds on our stack.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), count, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Some(Err(e));
            }
        }
        {
            let mut pump = shared.lock();
            let (c, e) = (fds[1].revents, fds[2].revents);
            let any = libc::POLLIN | libc::POLLHUP | libc::POLLERR;
            let room = libc::POLLOUT | libc::POLLHUP | libc::POLLERR;
            pump.ready.client_r |= c & any != 0;
            pump.ready.client_w |= c & room != 0;
            pump.ready.engine_r |= e & any != 0;
            pump.ready.engine_w |= e & room != 0;
        }
        if fds[0].revents != 0 {
            shared.nudge.notify_one();
            return Some(Ok(()));
        }
        if left.is_zero() || Instant::now() >= deadline {
            return Some(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client timed out",
            )));
        }
    }
}

/// Starts the pump of a session moved from the edge thread; `engine_fd` is the engine's end
/// of the pair whose other end is `ours`. Runs on the worker's loop until the engine closes
/// its end (after its last response) and the rest went out, or the client cannot be written
/// to within `timeout`.
pub async fn run(
    moved: Moved,
    ours: std::os::unix::net::UnixStream,
    engine_fd: RawFd,
    timeout: Duration,
) {
    let Moved {
        mut conn,
        socket,
        leftover,
    } = moved;
    // The pump reads from the engine only once the session's output went: at most one read's
    // worth is held.
    conn.set_buffer_limit(None);
    let mut rest = &leftover[..];
    while !rest.is_empty() {
        if !matches!(conn.read_tls(&mut rest), Ok(n) if n > 0)
            || conn.process_new_packets().is_err()
        {
            return;
        }
    }
    let shared = Arc::new(Shared {
        client_fd: socket.as_raw_fd(),
        ours_fd: ours.as_raw_fd(),
        engine_fd,
        nudge: Notify::new(),
        pump: Mutex::new(Pump {
            conn,
            client: socket,
            ours: OwnedFd::from(ours),
            up: vec![0; UP_BUF].into_boxed_slice(),
            up_at: 0,
            up_end: 0,
            client_eof: false,
            engine_eof: false,
            done: false,
            buf: Vec::new(),
            ready: Ready {
                client_r: true,
                client_w: true,
                engine_r: true,
                engine_w: true,
            },
        }),
    });
    let interest = Interest::READABLE | Interest::WRITABLE;
    // SAFETY: both descriptors are owned by the pump in `shared`, which this function holds
    // until the two `AsyncFd`s are dropped below (and `finish` only shuts `ours` down, never
    // closes it): they stay open and the same for the registrations' whole life.
    let registered = unsafe {
        (
            AsyncFd::register_with_interest(Fd(shared.client_fd), interest),
            AsyncFd::register_with_interest(Fd(shared.ours_fd), interest),
        )
    };
    let (Ok(client), Ok(engine)) = registered else {
        shared.lock().finish();
        return;
    };
    {
        let mut map = registry().lock().unwrap_or_else(PoisonError::into_inner);
        if map
            .insert(shared.engine_fd, Arc::downgrade(&shared))
            .is_none()
        {
            ACTIVE.fetch_add(1, Ordering::Relaxed);
        }
    }
    let registered = Registered(shared.engine_fd);
    drive(&shared, &client, &engine, timeout).await;
    shared.lock().finish();
    drop(registered);
    // The registrations go before the descriptors (owned by the pump) close.
    drop((client, engine));
}

async fn drive(shared: &Shared, client: &AsyncFd<Fd>, engine: &AsyncFd<Fd>, timeout: Duration) {
    loop {
        let want = shared.step();
        if want.done {
            return;
        }
        let woke = tokio::select! {
            biased;
            () = shared.nudge.notified() => Woke::Nudged,
            r = client.readable(), if want.client_read => {
                r.map_or(Woke::Failed, |mut g| { g.clear_ready(); Woke::ClientRead })
            }
            r = client.writable(), if want.client_write => {
                r.map_or(Woke::Failed, |mut g| { g.clear_ready(); Woke::ClientWrite })
            }
            r = engine.readable(), if want.engine_read => {
                r.map_or(Woke::Failed, |mut g| { g.clear_ready(); Woke::EngineRead })
            }
            r = engine.writable(), if want.engine_write => {
                r.map_or(Woke::Failed, |mut g| { g.clear_ready(); Woke::EngineWrite })
            }
            // The client read nothing of our answer in time.
            () = tokio::time::sleep(timeout), if want.client_write => return,
        };
        let mut pump = shared.lock();
        match woke {
            Woke::ClientRead => pump.ready.client_r = true,
            Woke::ClientWrite => pump.ready.client_w = true,
            Woke::EngineRead => pump.ready.engine_r = true,
            Woke::EngineWrite => pump.ready.engine_w = true,
            Woke::Nudged => {}
            // The loop's reactor is gone.
            Woke::Failed => return,
        }
    }
}

/// What woke the loop's task.
enum Woke {
    /// A waiting thread stepped the pump.
    Nudged,
    Failed,
    ClientRead,
    ClientWrite,
    EngineRead,
    EngineWrite,
}
