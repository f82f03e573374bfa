//! Accepting connections and serving requests on each: read a head in the event loop, hand the
//! request to the app (inline or on an app thread), repeat while keep-alive allows.
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::Buf;
use bytes::BytesMut;
use ferrule_proto::h2c;
use ferrule_proto::http1::response as enc;
use ferrule_proto::parse_proxy_header;
use socket2::Socket;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::watch;

use super::body::BodyReader;
use super::buffer::{self, Prepared};
use super::exchange::{on_pool, on_pool_quiet, on_side, start, until_done, Ready, Turn};
use super::handback::Handback;
use super::head::{read_head, HeadRead, StopWatch, Timer};
use super::health;
use super::listener::Listener;
use super::pressure::ConnSlot;
use super::sink::{StreamSink, Wire};
use super::statics::{self, Answered, Asked};
use super::{gateway, outbox, Worker};
use crate::config::Protocol;
use crate::log::{debug, warning};
use crate::net::{date, io as sio, ConnInfo};
use crate::wsgi;

/// Initial read buffer per connection.
pub(super) const READ_BUF: usize = 8 * 1024;
/// How long a closing connection reads (and discards) what the client still sends, so that
/// our last response is not lost to a reset.
const LINGER: Duration = Duration::from_secs(1);

pub(super) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    pub(super) async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        buf.reserve(READ_BUF);
        match self {
            Self::Tcp(s) => s.read_buf(buf).await,
            Self::Unix(s) => s.read_buf(buf).await,
        }
    }

    /// Sends the rest of a file response as the client reads it. False if the connection
    /// failed or stalled past `timeout`.
    pub(super) async fn send_tail(&self, mut tail: sio::FileTail, timeout: Duration) -> bool {
        use std::os::fd::AsRawFd as _;
        let fd = self.fd();
        let file = tail.file.as_raw_fd();
        while tail.count > 0 {
            let ready = match self {
                Self::Tcp(s) => tokio::time::timeout(timeout, s.writable()).await,
                Self::Unix(s) => tokio::time::timeout(timeout, s.writable()).await,
            };
            if !matches!(ready, Ok(Ok(()))) {
                return false;
            }
            let attempt = || match sio::try_sendfile(fd, file, tail.offset, tail.count) {
                Ok(sio::Sent::Some(0)) => Err(io::ErrorKind::WouldBlock.into()),
                other => other,
            };
            let r = match self {
                Self::Tcp(s) => s.try_io(tokio::io::Interest::WRITABLE, attempt),
                Self::Unix(s) => s.try_io(tokio::io::Interest::WRITABLE, attempt),
            };
            match r {
                Ok(sio::Sent::Some(n)) => {
                    tail.offset += n;
                    tail.count -= n.min(tail.count);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Ok(sio::Sent::FileEnded(_)) | Err(_) => return false,
            }
        }
        sio::set_notsent_lowat(fd, None);
        true
    }

    /// Sends what the inline worker left of a response to the connection's task: its last
    /// bytes (`StreamSink::deferred`), written once the event loop has run the other tasks
    /// already woken so that responses leave in bursts, or a file's tail. False if the
    /// connection failed.
    pub(super) async fn send_rest(&self, sink: &mut StreamSink, timeout: Duration) -> bool {
        if let Some(bytes) = sink.deferred.take() {
            tokio::task::yield_now().await;
            let written = self.write_all(&bytes, timeout).await;
            sio::give_back(bytes);
            if !written {
                return false;
            }
        }
        match sink.tail.take() {
            Some(tail) => self.send_tail(tail, timeout).await,
            None => true,
        }
    }

    /// Waits, up to `timeout`, until the socket takes more bytes; to be called right after a
    /// write to it would have blocked. False on timeout or error.
    pub(super) async fn writable_within(&self, timeout: Duration) -> bool {
        // The loop's readiness may predate the write that found the socket full: it is
        // cleared (without a syscall), and the kernel reports the socket's next room as a new
        // event. Nothing runs the loop's driver between that write and this, on this thread.
        let full = || Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock));
        let wait = async {
            match self {
                Self::Tcp(s) => {
                    let _ = s.try_io(tokio::io::Interest::WRITABLE, full);
                    s.writable().await.is_ok()
                }
                Self::Unix(s) => {
                    let _ = s.try_io(tokio::io::Interest::WRITABLE, full);
                    s.writable().await.is_ok()
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    /// Writes all of `bytes`, waiting for the socket in the event loop (never blocking its
    /// thread). False if the connection failed or the client read nothing within `timeout`.
    pub(super) async fn write_all(&self, bytes: &[u8], timeout: Duration) -> bool {
        let mut done = 0;
        while let Some(rest) = bytes.get(done..).filter(|r| !r.is_empty()) {
            match sio::try_write_parts(self.fd(), &[rest]) {
                Ok(0) => {
                    if !self.writable_within(timeout).await {
                        return false;
                    }
                }
                Ok(n) => done += n,
                Err(_) => return false,
            }
        }
        true
    }

    /// Writes what the outbox still holds for this connection. False if that failed.
    pub(super) async fn write_own(&self, timeout: Duration) -> bool {
        let Some(bytes) = outbox::take_own(self.fd()) else {
            return true;
        };
        let written = self.write_all(&bytes, timeout).await;
        sio::give_back(bytes);
        written
    }

    /// Reads more into `buf` within `timeout`. False when the peer closed, failed or stalled.
    pub(super) async fn fill(&mut self, buf: &mut BytesMut, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.read_buf(buf)).await,
            Ok(Ok(n)) if n > 0
        )
    }

    /// Whether the client sent something nobody has read yet (bytes or its end). When not,
    /// the loop's readiness for reading is cleared, so that `readable` waits for new bytes.
    pub(super) fn has_unread(&self) -> bool {
        let fd = self.fd();
        let peek = || sio::peek_pending(fd);
        let r = match self {
            Self::Tcp(s) => s.try_io(tokio::io::Interest::READABLE, peek),
            Self::Unix(s) => s.try_io(tokio::io::Interest::READABLE, peek),
        };
        !matches!(r, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Completes when the client sends something (or fails).
    pub(super) async fn readable(&self) {
        let _ = match self {
            Self::Tcp(s) => s.readable().await,
            Self::Unix(s) => s.readable().await,
        };
    }

    pub(super) fn fd(&self) -> i32 {
        match self {
            Self::Tcp(s) => s.as_raw_fd(),
            Self::Unix(s) => s.as_raw_fd(),
        }
    }
}

enum AnyListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl AnyListener {
    async fn accept(
        &self,
        scheme: &'static str,
        local: Option<std::net::SocketAddr>,
    ) -> io::Result<(Stream, ConnInfo)> {
        match self {
            Self::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                let info = ConnInfo {
                    fd: s.as_raw_fd(),
                    peer: Some(peer),
                    local: s.local_addr().ok().or(local),
                    scheme,
                    tls: None,
                };
                Ok((Stream::Tcp(s), info))
            }
            Self::Unix(l) => {
                let (s, _) = l.accept().await?;
                let info = ConnInfo {
                    fd: s.as_raw_fd(),
                    peer: None,
                    local: None,
                    scheme,
                    tls: None,
                };
                Ok((Stream::Unix(s), info))
            }
        }
    }
}

/// Starts the accept loop for one listener on the current runtime.
pub fn spawn_acceptor(
    l: Listener,
    worker: Arc<Worker>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let socket: Socket = l.socket;
    socket.set_nonblocking(true)?;
    // Behind a front server the scheme comes with each request (HTTPS=on).
    let scheme = "http";
    let protocol = l.bind.protocol;
    let tls = l.bind.tls;
    let local = l.local;
    let listener = if local.is_some() {
        AnyListener::Tcp(TcpListener::from_std(std::net::TcpListener::from(socket))?)
    } else {
        AnyListener::Unix(UnixListener::from_std(
            std::os::unix::net::UnixListener::from(socket),
        )?)
    };
    tokio::spawn(async move {
        loop {
            // At --worker-connections: make room first (new connections wait in the backlog).
            tokio::select! {
                () = worker.conns.before_accept(|| worker.open_connections()) => {}
                _ = stop.changed() => return,
            }
            tokio::select! {
                r = listener.accept(scheme, local) => match r {
                    Ok((stream, info)) => {
                        let guard = worker.enter();
                        let worker = Arc::clone(&worker);
                        let stop = stop.clone();
                        tokio::spawn(async move {
                            match (protocol, stream) {
                                (Protocol::Http, stream) if tls => {
                                    super::tls::serve(&worker, stream, info, stop).await;
                                }
                                (Protocol::Http, stream) => serve_connection(&worker, stream, info, stop).await,
                                (Protocol::Uwsgi | Protocol::Scgi, stream) => {
                                    gateway::serve_one(&worker, stream, info, protocol).await;
                                }
                                (Protocol::FastCgi, stream) => {
                                    gateway::serve_fastcgi(&worker, stream, info, stop).await;
                                }
                            }
                            drop(guard);
                        });
                    }
                    // The master shut the listening socket down: the server is stopping.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return,
                    // EMFILE and friends: make room, or back off instead of spinning.
                    Err(e) => tokio::select! {
                        () = worker.conns.accept_failed(&e, worker.open_connections()) => {}
                        _ = stop.changed() => return,
                    },
                },
                // Dropping the listener closes this worker's copy of the socket.
                _ = stop.changed() => return,
            }
        }
    });
    Ok(())
}

/// Answers `status` with the server's own response, writes its access line (`asked`: what
/// was read of the request; `began`: when it began, if known) and closes the connection.
pub(super) async fn refuse(
    worker: &Worker,
    stream: &mut Stream,
    status: u16,
    info: &ConnInfo,
    asked: Asked<'_>,
    began: Option<std::time::Instant>,
) {
    let resp = date::with(|d| {
        enc::simple_response(
            enc::StatusLine::Http11,
            status,
            true,
            d,
            worker.app.server_header.then_some(&b"ferrule"[..]),
            false,
        )
    });
    let written = stream.write_all(&resp, worker.client_timeout).await;
    // The body of a simple response: its reason and a newline.
    let sent = if written {
        enc::reason(status).len() as u64 + 1
    } else {
        0
    };
    statics::log_refused(info, asked, status, sent, began);
    linger(stream).await;
}

/// `--proxy-protocol`: reads the PROXY header (v1 or v2) the load balancer sends first; its
/// source address becomes the client's. False: the connection must be closed.
pub(super) async fn read_proxy_header(
    worker: &Worker,
    stream: &mut Stream,
    rbuf: &mut BytesMut,
    info: &mut ConnInfo,
) -> bool {
    if let (Some(trust), Some(peer)) = (&worker.proxy_protocol, info.peer) {
        if !trust.contains(peer.ip()) {
            warning!(
                "closing a connection from {peer}: not allowed to send a PROXY protocol header \
                 (--proxy-allow-from)"
            );
            return false;
        }
    }
    loop {
        match parse_proxy_header(rbuf) {
            Ok(Some(h)) => {
                rbuf.advance(h.len);
                if let Some((src, dst)) = h.addrs {
                    info.peer = Some(src);
                    info.local = Some(dst);
                }
                return true;
            }
            Ok(None) => {
                if !stream.fill(rbuf, worker.client_timeout).await {
                    return false;
                }
            }
            Err(e) => {
                warning!(
                    "closing a connection from {}: {e} (--proxy-protocol expects one on every \
                     connection)",
                    info.peer_label()
                );
                return false;
            }
        }
    }
}

async fn serve_connection(
    worker: &Arc<Worker>,
    mut stream: Stream,
    mut info: ConnInfo,
    stop: watch::Receiver<bool>,
) {
    // In the table from the start: a connection that sends nothing may be closed to make
    // room (--worker-connections), here as in `read_head`.
    let reg = worker.conns.register();
    let mut rbuf = BytesMut::with_capacity(READ_BUF);
    if worker.proxy_protocol.is_some() {
        let read = tokio::select! {
            biased;
            ok = read_proxy_header(worker, &mut stream, &mut rbuf, &mut info) => ok,
            () = reg.slot.evicted() => false,
        };
        if !read {
            return;
        }
    }
    if worker.http2.is_some() {
        let sniffed = tokio::select! {
            biased;
            s = super::h2::sniff_preface(worker, &mut stream, &mut rbuf) => s,
            () = reg.slot.evicted() => super::h2::Sniffed::Closed,
        };
        match sniffed {
            super::h2::Sniffed::Http2 => {
                drop(reg);
                super::h2::serve_plain(worker, stream, info, stop, rbuf.freeze()).await;
                return;
            }
            super::h2::Sniffed::Closed => return,
            super::h2::Sniffed::Http1 if !worker.http1 => {
                debug!(
                    "HTTP/1 request from {} refused: --http 2",
                    info.peer_label()
                );
                let now = Some(std::time::Instant::now());
                refuse(worker, &mut stream, 505, &info, Asked::Raw(&rbuf[..]), now).await;
                return;
            }
            super::h2::Sniffed::Http1 => {}
        }
    }
    serve_http1_on(worker, stream, info, stop, rbuf, &reg.slot).await;
}

/// Serves HTTP/1 on a connection whose PROXY header (if any) was read; `rbuf` holds what was
/// read beyond it.
pub(super) async fn serve_http1(
    worker: &Arc<Worker>,
    stream: Stream,
    info: ConnInfo,
    stop: watch::Receiver<bool>,
    rbuf: BytesMut,
) {
    let reg = worker.conns.register();
    serve_http1_on(worker, stream, info, stop, rbuf, &reg.slot).await;
}

async fn serve_http1_on(
    worker: &Arc<Worker>,
    mut stream: Stream,
    info: ConnInfo,
    stop: watch::Receiver<bool>,
    rbuf: BytesMut,
    slot: &Arc<ConnSlot>,
) {
    let mut stop = StopWatch::new(stop);
    // This connection's bytes in the outbox leave before its socket closes (see below; the
    // guard, if the task is dropped).
    let outbox_guard = outbox::Guard(stream.fd());
    let upgrade = serve_requests(worker, &mut stream, info.clone(), &mut stop, rbuf, slot).await;
    if !stream.write_own(worker.client_timeout).await {
        return;
    }
    if let Some(up) = upgrade {
        drop(outbox_guard);
        if stream
            .write_all(h2c::SWITCHING_PROTOCOLS, worker.client_timeout)
            .await
        {
            super::h2::serve_upgraded(worker, stream, info, stop.into_inner(), up).await;
        }
    }
}

/// An HTTP/1.1 request that upgrades its connection to HTTP/2 (`Upgrade: h2c`).
pub(super) struct Upgrade {
    /// The request as the HEADERS frame of stream 1.
    pub stream_one: Vec<u8>,
    /// What the client sent after it (usually nothing yet).
    pub rest: BytesMut,
}

/// The requests of one HTTP connection, until it is to close.
async fn serve_requests(
    worker: &Arc<Worker>,
    stream: &mut Stream,
    info: ConnInfo,
    stop: &mut StopWatch,
    mut rbuf: BytesMut,
    slot: &Arc<ConnSlot>,
) -> Option<Upgrade> {
    // The first request may take the client timeout to arrive; later ones the keep-alive time.
    let mut idle = worker.client_timeout;
    let mut timer = Timer::new(tokio::time::Instant::now() + idle);
    // The task's waker, for the outbox to wake it when its bytes get stuck.
    let task = std::future::poll_fn(|cx| std::task::Poll::Ready(cx.waker().clone())).await;
    let fd = stream.fd();
    let mut queued = None;
    // With app threads: where they leave the connection's results, and the keep-alive time
    // left when the next request is read.
    let mut back: Option<Arc<Handback>> = None;
    let mut keep_alive = worker.keep_alive;
    // One sink for the connection's life, reset for each request (its buffers kept).
    let mut sink = Box::new(StreamSink::new(worker.sink_settings(
        fd,
        Wire::Http1(ferrule_proto::http1::Version::Http11),
        true,
    )));
    loop {
        let read = read_head(stream, &mut rbuf, worker, idle, stop, &mut timer, slot).await;
        // The last response leaves before anything else is written (a pipelined request
        // can be read before the loop writes the outbox).
        if queued.take().is_some_and(|t| outbox::waiting(fd, t))
            && !stream.write_own(worker.client_timeout).await
        {
            return None;
        }
        let mut head = match read {
            HeadRead::Head(h) => h,
            HeadRead::Closed => return None,
            HeadRead::TimedOut(began) => {
                debug!(
                    "{} did not send a whole request head in time (--client-timeout, \
                     --header-timeout); 408",
                    info.peer_label()
                );
                refuse(
                    worker,
                    stream,
                    408,
                    &info,
                    Asked::Raw(&rbuf[..]),
                    Some(began),
                )
                .await;
                return None;
            }
            HeadRead::Refused(e, began) => {
                debug!("refused request from {}: {e}", info.peer_label());
                let began = began.or_else(|| Some(std::time::Instant::now()));
                refuse(
                    worker,
                    stream,
                    e.status(),
                    &info,
                    Asked::Raw(&rbuf[..]),
                    began,
                )
                .await;
                return None;
            }
        };
        // When this is the connection's last request (keep-alive off, or the worker stopping),
        // the response says so with `Connection: close`.
        if worker.keep_alive.is_zero() || stop.stopping() {
            head.keep_alive = false;
        }
        if head.keep_alive
            && worker.http2.is_some()
            && info.tls.is_none()
            && h2c::wants_upgrade(&head)
        {
            if let Some(stream_one) = h2c::stream_one(&head) {
                return Some(Upgrade {
                    stream_one,
                    rest: std::mem::take(&mut rbuf),
                });
            }
        }
        {
            match health::answer_first(worker, stream, &info, &head, stop.stopping()).await {
                Answered::Pass => {}
                Answered::KeepAlive(left) => {
                    if let Some(bytes) = left {
                        queued = Some(outbox::push(fd, bytes, &task));
                    }
                    idle = worker.keep_alive;
                    slot.idle();
                    continue;
                }
                Answered::Close => {
                    linger(stream).await;
                    return None;
                }
                Answered::Failed => return None,
            }
        }
        // When the body began, for the access line of a body refused or too slow (a clock
        // read only for a request with a body, and only when a line or metrics want it).
        let began = (head.body != ferrule_proto::http1::BodyKind::Empty && crate::access::wanted())
            .then(std::time::Instant::now);
        let (expect, spooled, streams) =
            match buffer::prepare(worker, stream, &head, &mut rbuf, &mut timer).await {
                Prepared::InBuffer { expect } => (expect, None, false),
                Prepared::Streams { expect } => (expect, None, true),
                Prepared::Spooled(body) => (false, Some(body), false),
                Prepared::Refused(e) => {
                    debug!("refused request body from {}: {e}", info.peer_label());
                    let status = e.status();
                    refuse(worker, stream, status, &info, Asked::Head(&head), began).await;
                    return None;
                }
                Prepared::TooSlow => {
                    debug!(
                        "{} sent its request body slower than --body-min-rate; 408",
                        info.peer_label()
                    );
                    refuse(worker, stream, 408, &info, Asked::Head(&head), began).await;
                    return None;
                }
                Prepared::Failed => {
                    refuse(worker, stream, 500, &info, Asked::Head(&head), began).await;
                    return None;
                }
                Prepared::Closed => {
                    debug!(
                        "{} stopped sending its request body; closing",
                        info.peer_label()
                    );
                    return None;
                }
            };
        let reader = BodyReader::new(
            fd,
            std::mem::take(&mut rbuf),
            head.body,
            expect,
            &worker.app.limits,
            worker.client_timeout,
        )
        .with_min_rate(worker.buffering.stream_min_rate);
        let mut set = worker.sink_settings(fd, Wire::Http1(head.version), head.keep_alive);
        // App threads leave a response's small last bytes in the outbox, as the loop does.
        set.outbox = worker.pool.is_some();
        sink.reset(set);
        let request = wsgi::Request::Fields(head);
        let side = streams && on_side(worker, &reader);
        let turn = if side {
            on_pool(worker, Ready::new(&info, request, sink, reader, spooled)).await?
        } else if worker.pool.is_none() {
            // Inline: no closure, no hand-off.
            start(worker, &info, request, sink, reader, spooled, None)
        } else {
            let back =
                back.get_or_insert_with(|| Arc::new(Handback::new(Arc::clone(slot), task.clone())));
            let ready = Ready::new(&info, request, sink, reader, spooled);
            if !on_pool_quiet(worker, ready, back).await {
                return None;
            }
            let (turn, done_at) = back.wait(stream, stop, worker.keep_alive).await;
            // The keep-alive time runs from the end of the response.
            keep_alive = worker.keep_alive.saturating_sub(done_at.elapsed());
            turn
        };
        let mut finished = match turn {
            Turn::Done(finished) => finished,
            // The response waits for the client (or the exchange failed).
            turn => match until_done(worker, stream, &info, turn).await {
                Some(finished) => finished,
                None => return None,
            },
        };
        worker.request_done();
        if let Some(ticket) = finished.queued.take() {
            // An app thread left its last bytes in the outbox.
            queued = Some(ticket);
        }
        let stays_open = finished.keep_alive && !worker.keep_alive.is_zero();
        if finished.may_queue(worker) {
            if let Some(bytes) = finished.sink.deferred.take() {
                queued = Some(outbox::push(fd, bytes, &task));
            }
        }
        if !stream
            .send_rest(&mut finished.sink, worker.client_timeout)
            .await
        {
            return None;
        }
        sink = finished.sink;
        rbuf = finished.rbuf;
        // A stop that came while the request was served does not close a connection its
        // response kept open: the next request on it may be on its way; `read_head` waits
        // a moment for it (answered with `Connection: close`), then closes.
        if !stays_open {
            linger(stream).await;
            return None;
        }
        idle = keep_alive;
        slot.idle();
    }
}

/// Half-closes and discards what the client still sends for a moment, so that it reads our
/// last response before seeing the connection close.
pub(super) async fn linger(stream: &mut Stream) {
    sio::shutdown_write(stream.fd());
    let mut sink = BytesMut::with_capacity(READ_BUF);
    let _ = tokio::time::timeout(LINGER, async {
        loop {
            sink.clear();
            match stream.read_buf(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}
