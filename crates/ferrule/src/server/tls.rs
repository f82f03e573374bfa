//! HTTPS: a TLS bind's connections. Handshakes and encryption run on the worker's edge thread
//! (its own event loop, so an app running inline on the worker's loop never stalls them);
//! HTTP/1.1 over the session is served by the same engine as a plain connection, through a
//! socket pair whose far end the TLS thread pumps to and from the session. The engine keeps
//! everything it does on a plain socket (keep-alive, pipelining, sendfile into the pair, the
//! inline flusher, blocking body reads in inline mode) and the bridge sees
//! `wsgi.url_scheme` `https` and mod_ssl's variables.
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{oneshot, watch};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::conn::{linger, read_proxy_header, serve_http1, Stream, READ_BUF};
use super::edge::{Arrived, Handoff};
use super::statics::Asked;
use super::Worker;
use crate::config::TlsSetup;
use crate::log::{debug, info, warning};
use crate::net::{ConnInfo, TlsInfo};
use crate::tls::CertStore;

/// The first byte of a TLS record carrying a handshake message (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;
/// Bytes of HTTP/2 frames gathered into one write to the TLS session (records of up to 16 KiB).
const TLS_WRITE_BUF: usize = 32 * 1024;
/// What the pump reads from the engine at once (a TLS record holds up to 16 KiB).
const PUMP_BUF: usize = 64 * 1024;

/// How often `--reload-certs` looks at the certificate files.
const RELOAD_POLL: Duration = Duration::from_secs(2);

/// A worker's TLS state: the configuration new connections get, and counters.
pub struct Tls {
    store: Arc<CertStore>,
    /// Handshakes that failed (plain HTTP, unknown CA, timeout...).
    pub failed: Arc<AtomicU64>,
}

impl Tls {
    pub fn new(setup: &TlsSetup) -> Self {
        Self {
            store: Arc::clone(&setup.store),
            failed: Arc::new(AtomicU64::new(0)),
        }
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.store.current())
    }
}

/// `--reload-certs`: re-reads the certificates when their files change (a certbot or
/// cert-manager renewal); new connections get the new ones, open ones keep theirs, and a
/// renewal that does not load is logged once and the working certificates kept.
pub async fn watch_certs(store: Arc<CertStore>) {
    let mut tick = tokio::time::interval(RELOAD_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !store.changed_since_load() {
            continue;
        }
        match store.reload() {
            Ok(true) => {
                info!("TLS certificates changed on disk: re-read; new connections use them");
                for w in store.warnings() {
                    warning!("{w}");
                }
            }
            Ok(false) => {}
            Err(e) => warning!(
                "TLS certificates changed on disk but do not load; keeping the current ones: {e}"
            ),
        }
    }
}

impl Tls {
    /// The certificates, for `--reload-certs`.
    pub fn store(&self) -> Arc<CertStore> {
        Arc::clone(&self.store)
    }
}

/// What the handshake settled, for the worker's loop.
enum Negotiated {
    /// HTTP/1.1, for the worker's engine through the socket pair.
    Http1(TlsInfo),
    /// HTTP/2, served on the edge thread; the sender is dropped when the connection ends.
    Http2(oneshot::Receiver<()>),
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
    let Some(edge) = worker.edge.handle() else {
        return;
    };
    let pair = std::os::unix::net::UnixStream::pair().and_then(|(ours, engine)| {
        ours.set_nonblocking(true)?;
        engine.set_nonblocking(true)?;
        Ok((ours, UnixStream::from_std(engine)?))
    });
    let (handoff, (ours, engine)) = match (Handoff::take(stream), pair) {
        (Ok(h), Ok(p)) => (h, p),
        (Err(e), _) | (_, Err(e)) => {
            debug!("cannot serve {} over TLS: {e}", info.peer_label());
            return;
        }
    };
    let (done_tx, done_rx) = oneshot::channel();
    let session = Session {
        worker: Arc::clone(worker),
        acceptor: tls.acceptor(),
        failed: Arc::clone(&tls.failed),
        ours,
        info: info.clone(),
        stop: stop.clone(),
        handshaken: done_tx,
    };
    edge.spawn(session.run(handoff, first.freeze()));
    // The handshake's outcome; the session goes on on the edge thread.
    match done_rx.await {
        Ok(Negotiated::Http1(negotiated)) => {
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
        // The connection counts as active (for a graceful stop) while it lasts.
        Ok(Negotiated::Http2(ended)) => {
            let _ = ended.await;
        }
        Err(_) => {}
    }
}

/// One connection's life on the edge thread.
struct Session {
    worker: Arc<Worker>,
    acceptor: TlsAcceptor,
    failed: Arc<AtomicU64>,
    /// The edge's end of the socket pair to the engine (HTTP/1.1).
    ours: std::os::unix::net::UnixStream,
    info: ConnInfo,
    stop: watch::Receiver<bool>,
    /// Told what the handshake settled; dropped unsent when it failed.
    handshaken: oneshot::Sender<Negotiated>,
}

impl Session {
    async fn run(self, conn: Handoff, first: Bytes) {
        match Arrived::new(conn, first) {
            Ok(Arrived::Tcp(io)) => self.handshake(io).await,
            Ok(Arrived::Unix(io)) => self.handshake(io).await,
            Err(e) => debug!("cannot serve {} over TLS: {e}", self.info.peer_label()),
        }
    }

    /// The TLS handshake, then HTTP/2 here or the pump to the engine until either side closes.
    async fn handshake<S>(self, io: S)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let timeout = self.worker.client_timeout;
        let peer = self.info.peer_label();
        let handshake = self.acceptor.accept(io);
        let session = match tokio::time::timeout(timeout, handshake).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                debug!("TLS handshake with {peer} failed: {e}");
                return;
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                debug!("TLS handshake with {peer} timed out (--client-timeout)");
                return;
            }
        };
        let negotiated = crate::tls::handshake_info(session.get_ref().1);
        if session.get_ref().1.alpn_protocol() == Some(b"h2") {
            let (_ended_tx, ended_rx) = oneshot::channel();
            if self.handshaken.send(Negotiated::Http2(ended_rx)).is_err() {
                return;
            }
            let mut info = self.info;
            info.tls = Some(Arc::new(negotiated));
            info.scheme = "https";
            // The watchdog never writes on an HTTP/2 connection (its streams share it).
            info.fd = -1;
            // h2 writes a frame's head and payload apart; the session encrypts each write as a
            // record of its own unless they are gathered first (h2 flushes after each batch).
            let session = tokio::io::BufWriter::with_capacity(TLS_WRITE_BUF, session);
            super::h2::serve(self.worker, session, info, self.stop).await;
            return;
        }
        let ours = match UnixStream::from_std(self.ours) {
            Ok(s) => s,
            Err(e) => {
                debug!("cannot serve {peer} over TLS: {e}");
                return;
            }
        };
        if self.handshaken.send(Negotiated::Http1(negotiated)).is_err() {
            return;
        }
        pump(session, ours, timeout).await;
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
    let began = std::time::Instant::now();
    let written = stream.write_all(&reply, timeout).await;
    let sent = if written { body.len() as u64 } else { 0 };
    super::statics::log_refused(info, Asked::Raw(first), 400, sent, Some(began));
    if written {
        linger(stream).await;
    }
}

/// Moves bytes between the TLS session and the engine's end of the socket pair until the
/// engine closes its end (after its last response) or the client goes.
async fn pump<S>(session: TlsStream<S>, ours: UnixStream, timeout: Duration)
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
