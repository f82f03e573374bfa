//! The worker's edge thread: a second event loop, started on first use, for the protocol work
//! that must go on while the worker's own loop is inside the app (inline mode) or busy: TLS
//! handshakes and encryption, and HTTP/2 connections (frames, flow control, HPACK). It never
//! touches Python; requests reach the app through the worker's loop or its app threads.
use std::io;
use std::sync::OnceLock;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::runtime::Handle;

use super::conn::Stream;
use crate::log::error;

/// The edge thread's event loop, once started.
#[derive(Default)]
pub struct Edge {
    handle: OnceLock<Option<Handle>>,
}

impl Edge {
    /// The edge loop, started (in the worker, after the fork) the first time it is needed;
    /// None if the thread could not start (logged once).
    pub fn handle(&self) -> Option<&Handle> {
        self.handle
            .get_or_init(|| match start() {
                Ok(h) => Some(h),
                Err(e) => {
                    error!("cannot start the edge thread (TLS, HTTP/2): {e}");
                    None
                }
            })
            .as_ref()
    }
}

fn start() -> std::io::Result<Handle> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name("ferrule-edge".to_owned())
        .spawn(move || rt.block_on(std::future::pending::<()>()))?;
    Ok(handle)
}

/// A connection on its way to the edge thread, out of the worker loop's reactor (a socket is
/// registered with one loop; it is re-registered with the edge's when it gets there).
pub enum Handoff {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl Handoff {
    /// Takes the connection out of the worker's loop.
    pub(super) fn take(stream: Stream) -> io::Result<Self> {
        match stream {
            Stream::Tcp(s) => s.into_std().map(Self::Tcp),
            Stream::Unix(s) => s.into_std().map(Self::Unix),
        }
    }
}

/// A handed-off connection on the edge thread, with the bytes the worker loop already read of
/// it in front.
pub enum Arrived {
    Tcp(Prefixed<TcpStream>),
    Unix(Prefixed<UnixStream>),
}

impl Arrived {
    /// Registers the connection with the edge loop; to be called on the edge thread.
    pub fn new(conn: Handoff, first: Bytes) -> io::Result<Self> {
        Ok(match conn {
            Handoff::Tcp(s) => Self::Tcp(Prefixed {
                first,
                inner: TcpStream::from_std(s)?,
            }),
            Handoff::Unix(s) => Self::Unix(Prefixed {
                first,
                inner: UnixStream::from_std(s)?,
            }),
        })
    }
}

/// A stream that yields `first` (bytes already read from it) before reading on.
pub struct Prefixed<S> {
    first: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner`, with `first` read before it.
    pub fn new(first: Bytes, inner: S) -> Self {
        Self { first, inner }
    }

    /// The stream, without what is left of `first`.
    pub fn into_inner(self) -> S {
        self.inner
    }
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
