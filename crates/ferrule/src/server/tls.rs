//! HTTPS: a TLS bind's connections. Handshakes and encryption run on the worker's TLS thread
//! (its own event loop, so an app running inline on the worker's loop never stalls them);
//! HTTP/1.1 over the session is served by the same engine as a plain connection, through a
//! socket pair whose far end the TLS thread pumps to and from the session. The engine keeps
//! everything it does on a plain socket (keep-alive, pipelining, sendfile into the pair, the
//! inline flusher, blocking body reads in inline mode) and the bridge sees
//! `wsgi.url_scheme` `https` and mod_ssl's variables.
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{oneshot, watch};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::conn::{linger, read_proxy_header, serve_http1, Stream, READ_BUF};
use super::Worker;
use crate::config::TlsSetup;
use crate::log::debug;
use crate::net::{ConnInfo, TlsInfo};

/// The first byte of a TLS record carrying a handshake message (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;
/// What the pump reads from the engine at once (a TLS record holds up to 16 KiB).
const PUMP_BUF: usize = 64 * 1024;

/// A worker's TLS state: the configuration new connections get, the TLS thread, counters.
pub struct Tls {
    current: RwLock<Arc<ServerConfig>>,
    /// The TLS thread's event loop.
    thread: tokio::runtime::Handle,
    /// Handshakes that failed (plain HTTP, unknown CA, timeout...).
    pub failed: Arc<AtomicU64>,
}

impl Tls {
    /// Starts the worker's TLS thread (in the worker, after the fork).
    pub fn new(setup: &TlsSetup) -> io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = rt.handle().clone();
        std::thread::Builder::new()
            .name("ferrule-tls".to_owned())
            .spawn(move || rt.block_on(std::future::pending::<()>()))?;
        Ok(Self {
            current: RwLock::new(Arc::clone(&setup.server)),
            thread,
            failed: Arc::new(AtomicU64::new(0)),
        })
    }

    fn acceptor(&self) -> TlsAcceptor {
        let config = match self.current.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        TlsAcceptor::from(config)
    }
}

/// A connection on its way to the TLS thread, out of the worker loop's reactor.
enum Handoff {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

/// Serves one connection accepted on a TLS bind.
pub(super) async fn serve(
    worker: &Arc<Worker>,
    mut stream: Stream,
    mut info: ConnInfo,
    stop: watch::Receiver<bool>,
) {
    let Some(tls) = worker.tls.as_ref() else {
        return;
    };
    let mut first = BytesMut::with_capacity(READ_BUF);
    if worker.proxy_protocol.is_some()
        && !read_proxy_header(worker, &mut stream, &mut first, &mut info).await
    {
        return;
    }
    if first.is_empty() && !stream.fill(&mut first, worker.client_timeout).await {
        return;
    }
    if first.first() != Some(&TLS_HANDSHAKE) {
        tls.failed.fetch_add(1, Ordering::Relaxed);
        refuse_plain(&mut stream, &first, &info, worker.client_timeout).await;
        return;
    }
    let handoff = match stream {
        Stream::Tcp(s) => s.into_std().map(Handoff::Tcp),
        Stream::Unix(s) => s.into_std().map(Handoff::Unix),
    };
    let pair = std::os::unix::net::UnixStream::pair().and_then(|(ours, engine)| {
        ours.set_nonblocking(true)?;
        engine.set_nonblocking(true)?;
        Ok((ours, UnixStream::from_std(engine)?))
    });
    let (handoff, (ours, engine)) = match (handoff, pair) {
        (Ok(h), Ok(p)) => (h, p),
        (Err(e), _) | (_, Err(e)) => {
            debug!("cannot serve {} over TLS: {e}", info.peer_label());
            return;
        }
    };
    let (done_tx, done_rx) = oneshot::channel();
    let session = Session {
        acceptor: tls.acceptor(),
        failed: Arc::clone(&tls.failed),
        first: first.freeze(),
        ours,
        timeout: worker.client_timeout,
        peer: info.peer_label(),
        handshaken: done_tx,
    };
    tls.thread.spawn(session.run(handoff));
    // The handshake's outcome; the pump goes on on the TLS thread.
    let Ok(negotiated) = done_rx.await else {
        return;
    };
    info.tls = Some(Arc::new(negotiated));
    info.scheme = "https";
    info.fd = engine.as_raw_fd();
    serve_http1(
        worker,
        Stream::Unix(engine),
        info,
        stop,
        BytesMut::with_capacity(READ_BUF),
    )
    .await;
}

/// One connection's life on the TLS thread.
struct Session {
    acceptor: TlsAcceptor,
    failed: Arc<AtomicU64>,
    /// The bytes the worker loop already read (the start of the ClientHello).
    first: Bytes,
    /// The TLS thread's end of the socket pair to the engine.
    ours: std::os::unix::net::UnixStream,
    timeout: Duration,
    peer: String,
    /// Told what the handshake settled; dropped unsent when it failed.
    handshaken: oneshot::Sender<TlsInfo>,
}

impl Session {
    async fn run(self, conn: Handoff) {
        match conn {
            Handoff::Tcp(s) => match TcpStream::from_std(s) {
                Ok(s) => self.handshake(s).await,
                Err(e) => debug!("cannot serve {} over TLS: {e}", self.peer),
            },
            Handoff::Unix(s) => match UnixStream::from_std(s) {
                Ok(s) => self.handshake(s).await,
                Err(e) => debug!("cannot serve {} over TLS: {e}", self.peer),
            },
        }
    }

    /// The TLS handshake, then the pump until the engine or the client closes.
    async fn handshake<S>(self, inner: S)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let io = Prefixed {
            first: self.first,
            inner,
        };
        let handshake = self.acceptor.accept(io);
        let session = match tokio::time::timeout(self.timeout, handshake).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                debug!("TLS handshake with {} failed: {e}", self.peer);
                return;
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                debug!(
                    "TLS handshake with {} timed out (--client-timeout)",
                    self.peer
                );
                return;
            }
        };
        let ours = match UnixStream::from_std(self.ours) {
            Ok(s) => s,
            Err(e) => {
                debug!("cannot serve {} over TLS: {e}", self.peer);
                return;
            }
        };
        let negotiated = crate::tls::handshake_info(session.get_ref().1);
        if self.handshaken.send(negotiated).is_err() {
            return;
        }
        pump(session, ours, self.timeout).await;
    }
}

/// Answers a client that spoke plain HTTP to a TLS port, as nginx does: a 400 in clear text
/// saying so. Anything else that is not a TLS handshake is closed without a word.
async fn refuse_plain(stream: &mut Stream, first: &[u8], info: &ConnInfo, timeout: Duration) {
    if !first.first().is_some_and(u8::is_ascii_uppercase) {
        debug!(
            "closing a connection from {} to a TLS port: not a TLS handshake",
            info.peer_label()
        );
        return;
    }
    debug!(
        "plain HTTP from {} to a TLS port: answered 400",
        info.peer_label()
    );
    let body = b"400 Bad Request: this port speaks HTTPS; the plain HTTP request was sent to an \
                 HTTPS port. Use https://.\n";
    let mut reply = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    reply.extend_from_slice(body);
    if stream.write_all(&reply, timeout).await {
        linger(stream).await;
    }
}

/// Moves bytes between the TLS session and the engine's end of the socket pair until the
/// engine closes its end (after its last response) or the client goes.
async fn pump<S>(session: TlsStream<Prefixed<S>>, ours: UnixStream, timeout: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut tls_r, mut tls_w) = tokio::io::split(session);
    let (mut eng_r, mut eng_w) = ours.into_split();
    // Client to engine: when the client stops sending, the engine reads EOF. Its writes need
    // no timeout of their own: the engine reads on its own schedule and closes on its own
    // timeouts, which ends the other direction.
    let up = async {
        let mut buf = vec![0u8; READ_BUF * 2];
        loop {
            match tls_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if eng_w.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = eng_w.shutdown().await;
        // The engine's answer may still be on its way: only the other direction ends the pump.
        std::future::pending::<()>().await;
    };
    // Engine to client: each block is encrypted and written within the client timeout; the
    // engine closing its end sends close_notify.
    let down = async {
        let mut buf = vec![0u8; PUMP_BUF];
        loop {
            let n = match eng_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let sent = async {
                tls_w.write_all(&buf[..n]).await?;
                tls_w.flush().await
            };
            if !matches!(tokio::time::timeout(timeout, sent).await, Ok(Ok(()))) {
                return;
            }
        }
        let _ = tokio::time::timeout(timeout, tls_w.shutdown()).await;
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

/// A stream that yields `first` (bytes already read from it) before reading on.
pub(super) struct Prefixed<S> {
    first: Bytes,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        if !self.first.is_empty() {
            let n = self.first.len().min(buf.remaining());
            buf.put_slice(&self.first[..n]);
            self.first.advance(n);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
