//! An HTTP/2 stream's response sink: the app's head and body blocks queued for the edge
//! thread, which sends them as the client's flow-control windows allow. The queue is bounded
//! ([`OUT_BUFFER`]): past it an app thread waits (the GIL released), and the inline worker
//! reports the stream congested and serves others until the edge thread has sent some.
use std::any::Any;
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use tokio::sync::Notify;

use crate::log::warning;
use crate::net::date;
use crate::server::Worker;
use crate::wsgi::sink::{Block, Gil, Head, Sink};

/// Response bytes queued for the edge thread, most, per stream.
pub const OUT_BUFFER: usize = 256 * 1024;
/// A block at least this long is kept (the app's `bytes` object, referenced) rather than
/// copied.
const KEEP_MIN: usize = 16 * 1024;

/// A piece of response body on its way.
pub enum Item {
    Data(Bytes),
    /// `count` bytes of `file` from `offset` (a duplicate of the app's descriptor).
    File {
        file: File,
        offset: u64,
        count: u64,
    },
}

#[derive(Default)]
pub struct State {
    pub head: Option<Response<()>>,
    /// The head has no body after it (HEAD, 204, 304).
    pub no_body: bool,
    pub queue: VecDeque<Item>,
    /// Bytes in `queue` (a file counts as its length, capped at [`OUT_BUFFER`]).
    pub queued: usize,
    pub finished: bool,
    /// The app failed mid-response: what is queued goes, then the stream is reset.
    pub cut: bool,
    /// Nothing more goes: the stream is reset.
    pub aborted: bool,
    /// The client reset the stream or the connection went.
    pub gone: bool,
    /// The edge thread answered 504 (`--timeout`) and wrote the access line.
    pub timed_out: bool,
    /// An app thread waits on `room` (a condvar's wake is a system call: made only then).
    waiting: bool,
}

/// What the app's side and the edge thread share of one response.
pub struct Outbound {
    state: Mutex<State>,
    /// The edge thread waits here for more to send.
    pub ready: Notify,
    /// An app thread waits here for room.
    room: Condvar,
    /// The inline worker's task waits here for room.
    pub room_async: Notify,
}

impl Outbound {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            room: Condvar::new(),
            room_async: Notify::new(),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The edge thread took `n` queued bytes (or the stream is gone): a waiting app goes on.
    pub fn made_room(&self) {
        if self.lock().waiting {
            self.room.notify_all();
        }
        self.room_async.notify_one();
    }

    /// The client is gone: the app learns it at its next block.
    pub fn client_gone(&self) {
        self.lock().gone = true;
        self.made_room();
    }

    /// Whether the queue is over its bound.
    pub fn full(&self) -> bool {
        let s = self.lock();
        s.queued >= OUT_BUFFER && !s.gone && !s.aborted
    }
}

/// The app's side of an HTTP/2 response.
pub struct H2Sink {
    out: Arc<Outbound>,
    server_header: bool,
    timeout: Duration,
    /// Announces queued blocks to the edge thread in batches (`Inline`).
    worker: Arc<Worker>,
    /// The inline worker: never wait for room, report congestion instead.
    inline: bool,
    broken: bool,
    /// Blocks queued since the edge thread was last told (it is told when the app goes back
    /// to work, on flush and at the end, not for every block).
    untold: bool,
}

impl H2Sink {
    pub fn new(
        out: Arc<Outbound>,
        server_header: bool,
        timeout: Duration,
        worker: Arc<Worker>,
        inline: bool,
    ) -> Self {
        Self {
            out,
            server_header,
            timeout,
            worker,
            inline,
            broken: false,
            untold: false,
        }
    }

    /// Wakes the edge thread for what was queued.
    fn tell(&mut self) {
        self.untold = false;
        let out = Arc::clone(&self.out);
        if self.inline {
            self.worker.h2_inline.tell(out);
        } else {
            self.worker.h2_inline.tell_shared(out);
        }
    }

    fn push(&mut self, gil: Gil<'_>, item: Item, len: usize) -> io::Result<()> {
        if self.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        {
            let mut s = self.out.lock();
            if s.gone || s.aborted {
                self.broken = true;
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            s.queue.push_back(item);
            s.queued += len.min(OUT_BUFFER);
            if s.queued < OUT_BUFFER {
                self.untold = true;
                return Ok(());
            }
        }
        // Full: the edge thread sends while the app waits (threads) or the inline loop serves
        // others (the sink is congested).
        self.tell();
        if self.inline {
            return Ok(());
        }
        // An app thread waits for room, the GIL released.
        let out = Arc::clone(&self.out);
        let timeout = self.timeout;
        let room = gil.unlocked(move || {
            let deadline = Instant::now() + timeout;
            let mut s = out.lock();
            while s.queued >= OUT_BUFFER && !s.gone && !s.aborted {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    s.waiting = false;
                    return false;
                }
                s.waiting = true;
                s = out
                    .room
                    .wait_timeout(s, left)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
            s.waiting = false;
            !s.gone && !s.aborted
        });
        if room {
            Ok(())
        } else {
            self.broken = true;
            self.out.lock().aborted = true;
            self.out.ready.notify_one();
            Err(io::ErrorKind::TimedOut.into())
        }
    }
}

/// Response header fields that HTTP/2 forbids (RFC 9113 section 8.2.2); the bridge has
/// already warned of the hop-by-hop ones an app set.
fn connection_specific(name: &[u8]) -> bool {
    const FORBIDDEN: [&[u8]; 6] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"te",
    ];
    FORBIDDEN.iter().any(|f| f.eq_ignore_ascii_case(name))
}

/// The response head as HTTP/2 sends it: the status and the app's fields (from the bridge's
/// `Name: value\r\n` lines), with Date and Server added as on HTTP/1.
pub fn response_head(head: &Head<'_>, server_header: bool) -> io::Result<Response<()>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let status = StatusCode::from_u16(head.code).map_err(|_| bad("status"))?;
    let mut response = Response::new(());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for line in head.fields.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or_default().trim_ascii();
        if connection_specific(name) {
            continue;
        }
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        else {
            warning!(
                "HTTP/2: dropping a response header field that cannot be sent: {}",
                String::from_utf8_lossy(line)
            );
            continue;
        };
        headers.append(name, value);
    }
    if head.state_length && !head.no_body {
        if let Some(n) = head.length {
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
        }
    }
    if !head.has_date {
        if let Ok(d) = date::with(HeaderValue::from_bytes) {
            headers.insert(http::header::DATE, d);
        }
    }
    if server_header && !head.has_server {
        headers.insert(http::header::SERVER, HeaderValue::from_static("ferrule"));
    }
    Ok(response)
}

impl Sink for H2Sink {
    fn head(&mut self, _gil: Gil<'_>, head: &Head<'_>) -> io::Result<()> {
        let response = response_head(head, self.server_header)?;
        let mut s = self.out.lock();
        s.head = Some(response);
        s.no_body = head.no_body;
        Ok(())
    }

    fn body(&mut self, gil: Gil<'_>, block: Block<'_>) -> io::Result<()> {
        let data = block.data();
        if data.is_empty() {
            return Ok(());
        }
        let bytes = match block.keep(data).filter(|_| data.len() >= KEEP_MIN) {
            Some(kept) => Bytes::from_owner(kept),
            None => Bytes::copy_from_slice(data),
        };
        let len = bytes.len();
        self.push(gil, Item::Data(bytes), len)
    }

    fn file(&mut self, gil: Gil<'_>, file: RawFd, offset: u64, count: u64) -> io::Result<()> {
        if count == 0 || self.out.lock().no_body {
            return Ok(());
        }
        // SAFETY: `file` is the app's open descriptor, valid for this call; it is duplicated
        // so that the edge thread reads it after the app closes its own.
        let file = unsafe { BorrowedFd::borrow_raw(file) }.try_clone_to_owned()?;
        let len = usize::try_from(count).unwrap_or(usize::MAX);
        self.push(
            gil,
            Item::File {
                file: File::from(file),
                offset,
                count,
            },
            len,
        )
    }

    fn flush(&mut self, _gil: Gil<'_>, _wait: bool) -> io::Result<()> {
        // Everything queued is the edge thread's to send once it is told.
        self.tell();
        if self.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        Ok(())
    }

    fn finish(&mut self, _gil: Gil<'_>) -> io::Result<()> {
        self.out.lock().finished = true;
        self.tell();
        if self.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        Ok(())
    }

    fn cut(&mut self) {
        self.out.lock().cut = true;
        self.out.ready.notify_one();
    }

    fn abort(&mut self) {
        {
            let mut s = self.out.lock();
            s.aborted = true;
            s.queue.clear();
            s.queued = 0;
        }
        self.out.ready.notify_one();
    }

    fn client_gone(&self) -> bool {
        let s = self.out.lock();
        s.gone || s.aborted
    }

    fn congested(&self) -> bool {
        self.inline && self.out.full()
    }

    fn app_busy(&mut self) {
        if self.untold {
            self.tell();
        }
    }

    fn app_back(&mut self, _gil: Gil<'_>) -> io::Result<()> {
        Ok(())
    }

    fn keep_alive(&self) -> bool {
        true
    }

    fn raw_http(&self) -> bool {
        false
    }

    fn answered_by_transport(&self) -> bool {
        self.out.lock().timed_out
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

impl Drop for H2Sink {
    fn drop(&mut self) {
        // However the exchange ended, the edge thread stops waiting for more.
        let mut s = self.out.lock();
        if s.finished || s.cut {
            // The end was announced already.
            return;
        }
        s.aborted = true;
        drop(s);
        self.out.ready.notify_one();
    }
}
