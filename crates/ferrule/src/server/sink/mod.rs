//! The response sink of a byte-stream connection: HTTP/1 to a client, the HTTP/1-style
//! response uwsgi and SCGI front servers read, and FastCGI's STDOUT records. It frames the
//! body (Content-Length, chunked, the connection's end, records) and writes it on the
//! connection's socket.
//!
//! The inline worker (`--threads 1`) never waits for a socket here: blocks from the app's
//! iterable are coalesced into one gathered write (handed to the flusher thread while the app
//! produces the next, see `flush`), what a full socket does not take stays queued
//! (`congested`) for the connection's task to send as the client reads, a small last write is
//! left to the event loop's outbox (`deferred`), and the rest of a file to the task (`tail`).
//! With app threads, a full socket is waited for, the GIL released.
use std::any::Any;
use std::io::{self, IoSlice};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use ferrule_proto::http1::response::{self as enc, Connection, ResponseHead, StatusLine};
use ferrule_proto::http1::Version;

use super::fcgi_out;

mod file;
use super::flush::{Flusher, Pending, DEADLINE};
use crate::net::{date, io as sio};
use crate::wsgi::sink::{Block, Gil, Head, Sink};

/// Most bytes of a response's last write that the inline worker leaves to the connection's
/// task; a larger one is written at once.
const DEFER_MAX: usize = 16 * 1024;

/// What the bytes on the connection are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// An HTTP/1 response (to a client, or to a uwsgi/SCGI front server: HTTP/1.0 framing).
    Http1(Version),
    /// FastCGI STDOUT records of this request id, with a CGI-style head (`Status: 200 OK`);
    /// the end of the stream ends the body.
    FastCgi(u16),
}

/// How the body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// The head is not sent yet.
    Unset,
    /// No body may be sent (HEAD, 1xx, 204, 304).
    NoBody,
    /// Content-Length with this many bytes left.
    Length(u64),
    Chunked,
    /// The body ends when the connection (or the FastCGI stream) does.
    Close,
}

/// What a connection's transport sets for each response.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub fd: RawFd,
    pub wire: Wire,
    /// The client (or front server) keeps the connection after this response.
    pub keep_alive: bool,
    pub server_header: bool,
    pub timeout: Duration,
    /// The inline worker: coalesce blocks, never wait for the socket, defer the last write.
    pub inline: bool,
    /// An app thread's HTTP/1 response: its last write, when small, is left in the outbox
    /// (`server/outbox.rs`) as the inline worker's is.
    pub outbox: bool,
}

/// A byte-stream connection's response sink (see the module doc).
pub struct StreamSink {
    set: Settings,
    /// Blocks from the app's iterable may be coalesced and a full socket left to the task.
    coalesce: bool,
    /// The response's last write, when small, is left to the connection's task.
    defer_last: bool,
    keep_alive: bool,
    framing: Framing,
    /// The encoded head, until the first body bytes go with it.
    head: Vec<u8>,
    /// The body is complete (`finish`): its last bytes may be deferred.
    finished: bool,
    /// When the app began the request (from the head).
    began: Option<Instant>,
    /// The socket failed: nothing more can be sent.
    broken: bool,
    /// FastCGI: the front server sent ABORT_REQUEST; the app's output stops.
    pub aborted: bool,
    /// The end of a file response, left for the connection's task (inline worker).
    pub tail: Option<sio::FileTail>,
    /// Framed bytes not yet written (coalescing; see `flush`).
    pending: Pending,
    /// `pending` is with the flusher thread while the app produces its next block.
    pending_out: bool,
    /// The socket did not take all of `pending` (inline worker).
    blocked: bool,
    /// The response's last bytes, complete, for the connection's task to write once the
    /// event loop has run the other requests already waiting. Clients then get their
    /// responses in bursts, as from an event loop that reads before it writes (bjoern):
    /// each wake-up of a client serves several responses, and no response waits for more
    /// than the requests that were ready with it.
    pub deferred: Option<Vec<u8>>,
}

impl StreamSink {
    #[must_use]
    pub fn new(set: Settings) -> Self {
        let fastcgi = matches!(set.wire, Wire::FastCgi(_));
        Self {
            set,
            coalesce: set.inline && !fastcgi,
            defer_last: (set.inline || set.outbox) && !fastcgi,
            keep_alive: set.keep_alive,
            framing: Framing::Unset,
            head: Vec::new(),
            finished: false,
            began: None,
            broken: false,
            aborted: false,
            tail: None,
            pending: Pending::default(),
            pending_out: false,
            blocked: false,
            deferred: None,
        }
    }

    /// The state of a new response with `set`, keeping this one's buffers. Every field is
    /// named, so that a new one cannot be left out.
    pub fn reset(&mut self, set: Settings) {
        let Self {
            set: this_set,
            coalesce,
            defer_last,
            keep_alive,
            framing,
            head,
            finished,
            began,
            broken,
            aborted,
            tail,
            pending,
            pending_out,
            blocked,
            deferred,
        } = self;
        let fastcgi = matches!(set.wire, Wire::FastCgi(_));
        *this_set = set;
        *coalesce = set.inline && !fastcgi;
        *defer_last = (set.inline || set.outbox) && !fastcgi;
        *keep_alive = set.keep_alive;
        *framing = Framing::Unset;
        head.clear();
        *finished = false;
        *began = None;
        *broken = false;
        *aborted = false;
        *tail = None;
        pending.clear();
        *pending_out = false;
        *blocked = false;
        *deferred = None;
    }

    /// The response is made on a side thread of the inline worker (`server/side.rs`): it is
    /// written as on an app thread, waiting for the socket with the GIL released, nothing
    /// left to the loop. Call after `new` or `reset`, before the response.
    pub fn off_loop(&mut self) {
        self.set.inline = false;
        self.coalesce = false;
        self.defer_last = false;
    }

    /// When the app began the request (once the head is out).
    #[must_use]
    pub fn began(&self) -> Option<Instant> {
        self.began
    }

    /// The connection's descriptor.
    #[must_use]
    pub fn fd(&self) -> RawFd {
        self.set.fd
    }

    /// The socket failed, or the response was cut short: the front server must see it so
    /// (FastCGI: no END_REQUEST). After ABORT_REQUEST the request still ends properly.
    #[must_use]
    pub fn failed(&self) -> bool {
        self.broken && !self.aborted
    }

    /// FastCGI: the request id whose STDOUT records carry the response.
    #[must_use]
    pub fn fastcgi_id(&self) -> Option<u16> {
        self.fastcgi()
    }

    fn fastcgi(&self) -> Option<u16> {
        match self.set.wire {
            Wire::FastCgi(id) => Some(id),
            Wire::Http1(_) => None,
        }
    }

    /// Nothing more of the body can be sent.
    fn complete(&self) -> bool {
        self.finished || matches!(self.framing, Framing::Length(0) | Framing::NoBody)
    }

    /// Whether `more` bytes, the response's last, may join what is deferred. A request that
    /// took [`DEADLINE`] or more defers nothing: sent with the next responses it would save
    /// nothing worth the wait, and its `close()` would keep the flusher ticking for it.
    fn may_defer(&self, more: usize) -> bool {
        self.defer_last
            && !self.broken
            && !self.blocked
            && self.complete()
            && self.deferred.as_ref().map_or(0, Vec::len) + more <= DEFER_MAX
            && self.began.is_some_and(|b| b.elapsed() < DEADLINE)
    }

    /// Leaves `parts` (the response's last bytes) to the connection's task, after what is
    /// already deferred, if the worker defers and they are small. False: write them now.
    fn defer(&mut self, parts: &[&[u8]]) -> bool {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        self.defer_with(total, |out| {
            for p in parts {
                out.extend_from_slice(p);
            }
        })
    }

    /// [`StreamSink::defer`] of `total` bytes that `fill` appends.
    fn defer_with(&mut self, total: usize, fill: impl FnOnce(&mut Vec<u8>)) -> bool {
        if !self.may_defer(total) {
            return false;
        }
        fill(
            self.deferred
                .get_or_insert_with(|| Vec::with_capacity(total)),
        );
        true
    }

    /// Encodes the head into `self.head`, choosing the framing.
    fn encode_head(&mut self, h: &Head<'_>) {
        self.began = Some(h.began);
        if h.close {
            self.keep_alive = false;
        }
        self.framing = if h.no_body {
            Framing::NoBody
        } else if let Some(n) = h.length {
            Framing::Length(n)
        } else {
            match self.set.wire {
                Wire::FastCgi(_) => Framing::Close,
                Wire::Http1(Version::Http11 | Version::Http2) => Framing::Chunked,
                Wire::Http1(Version::Http10) => {
                    self.keep_alive = false;
                    Framing::Close
                }
            }
        };
        // Room for the lines added below and, when the whole body is small and known, for the
        // body too (a deferred response is then the head's buffer, extended).
        let body_room = match h.length {
            Some(n) if self.defer_last && n <= DEFER_MAX as u64 => n as usize,
            _ => 0,
        };
        let fastcgi = self.fastcgi().is_some();
        let connection = if fastcgi {
            // The connection is the front server's business, not the client's.
            Connection::Default
        } else if !self.keep_alive {
            Connection::Close
        } else if self.set.wire == Wire::Http1(Version::Http10) {
            Connection::KeepAlive
        } else {
            Connection::Default
        };
        date::with(|d| {
            let encoder = ResponseHead {
                line: if fastcgi {
                    StatusLine::Cgi
                } else {
                    StatusLine::Http11
                },
                status: h.status,
                fields: h.fields,
                server: (self.set.server_header && !h.has_server).then_some(&b"ferrule"[..]),
                date: (!h.has_date).then_some(d),
                content_length: h.length.filter(|_| h.state_length),
                framing: match self.framing {
                    Framing::NoBody => enc::Framing::NoBody,
                    Framing::Length(n) => enc::Framing::Length(n),
                    Framing::Chunked => enc::Framing::Chunked,
                    Framing::Close | Framing::Unset => enc::Framing::Close,
                },
                connection,
            };
            let mut head = sio::take_buf(encoder.max_len() + body_room);
            encoder.encode(&mut head);
            sio::give_back(std::mem::replace(&mut self.head, head));
        });
    }

    /// Writes `parts`: first without waiting, holding the GIL; the rest with the GIL released,
    /// or, in the inline worker, kept pending for the connection's task (`blocked`).
    fn send(&mut self, gil: Gil<'_>, parts: &[&[u8]]) -> io::Result<()> {
        self.send_from(gil, parts, None)
    }

    /// Writes `parts`, some of which may lie in the app's block `owner` (kept, not copied, if
    /// the socket does not take them at once).
    fn send_from(
        &mut self,
        gil: Gil<'_>,
        parts: &[&[u8]],
        owner: Option<&Block<'_>>,
    ) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connection already failed",
            ));
        }
        if self.defer(parts) {
            return Ok(());
        }
        if let Some(held) = self.deferred.take() {
            // What no longer fits after the deferred bytes goes out with them, in order.
            let all: Vec<&[u8]> = std::iter::once(&held[..])
                .chain(parts.iter().copied())
                .collect();
            return self.send_from(gil, &all, owner);
        }
        if self.coalesce && !self.pending.is_empty() {
            // Bytes the socket has not taken yet go first.
            self.keep_unsent(parts, 0, owner);
            return self.flush_pending(gil);
        }
        let mut headers = Vec::new();
        let framed;
        let parts = match self.fastcgi() {
            Some(id) => {
                framed = ferrule_proto::fastcgi::records(id, parts, &mut headers);
                &framed[..]
            }
            None => parts,
        };
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let iov: Vec<IoSlice<'_>> = parts
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| IoSlice::new(p))
            .collect();
        let res = match sio::try_writev(self.set.fd, &iov) {
            Ok(n) if n == total => Ok(()),
            Ok(n) if self.coalesce => {
                self.keep_unsent(parts, n, owner);
                self.blocked = true;
                Ok(())
            }
            Ok(n) => {
                let (fd, timeout) = (self.set.fd, self.set.timeout);
                gil.unlocked(|| sio::write_all(fd, parts, n, timeout))
            }
            Err(e) => Err(e),
        };
        if res.is_err() {
            self.abort();
        } else if let Some(id) = self.fastcgi() {
            if fcgi_out::aborted(self.set.fd, id) {
                self.aborted = true;
                self.broken = true;
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the front server aborted the request (FCGI_ABORT_REQUEST)",
                ));
            }
        }
        res
    }

    /// Keeps what the socket did not take of `parts` (after `skip` bytes) for later: pieces of
    /// the app's block `owner` by reference, others copied.
    fn keep_unsent(&mut self, parts: &[&[u8]], mut skip: usize, owner: Option<&Block<'_>>) {
        for p in parts {
            let done = skip.min(p.len());
            skip -= done;
            let Some(rest) = p.get(done..).filter(|r| !r.is_empty()) else {
                continue;
            };
            match owner.and_then(|o| o.keep(rest)) {
                Some(kept) => self.pending.push_kept(kept),
                None => self.pending.push_own(rest),
            }
        }
    }

    /// Takes the head to send with `len` body bytes and applies the framing to them: the
    /// head (empty if sent before) and how many of the bytes to send.
    fn frame(&mut self, len: usize) -> (Vec<u8>, usize) {
        let head = std::mem::take(&mut self.head);
        let n = match self.framing {
            Framing::NoBody => 0,
            Framing::Length(left) => {
                let n = (len as u64).min(left) as usize;
                self.framing = Framing::Length(left - n as u64);
                n
            }
            _ => len,
        };
        (head, n)
    }

    /// Sends one block of body now.
    fn send_body(&mut self, gil: Gil<'_>, block: &Block<'_>) -> io::Result<()> {
        self.flush_pending(gil)?;
        let (head, n) = self.frame(block.data().len());
        let data = block.data().get(..n).unwrap_or_default();
        let r = if self.framing == Framing::Chunked && !data.is_empty() {
            let mut size = Vec::with_capacity(18);
            enc::push_chunk_size(&mut size, data.len());
            self.send_from(gil, &[&head, &size, data, b"\r\n"], Some(block))
        } else if head.is_empty() && data.is_empty() {
            Ok(())
        } else if !head.is_empty()
            && self.deferred.is_none()
            && self.may_defer(head.len() + data.len())
        {
            // The whole response at once (a one-block body): deferred in the head's buffer.
            let mut head = head;
            head.extend_from_slice(data);
            self.deferred = Some(head);
            return Ok(());
        } else {
            self.send_from(gil, &[&head, data], Some(block))
        };
        sio::give_back(head);
        r
    }

    /// Queues one block of the app's iterable for a coalesced write; writes when enough is
    /// pending.
    fn queue_body(&mut self, gil: Gil<'_>, block: &Block<'_>) -> io::Result<()> {
        let len = block.data().len();
        if len == 0 {
            return Ok(());
        }
        self.app_back(gil)?;
        if self.pending.is_full() {
            // What is held reached the cap: it goes out before this block joins it. Checked
            // before queueing, not after: a full batch that turns out to be the response's
            // last goes out with the response's end in one write, not followed by a write
            // of its own for the last chunk.
            self.flush_pending(gil)?;
        }
        let (head, n) = self.frame(len);
        if !head.is_empty() {
            self.pending.push_own(&head);
        }
        sio::give_back(head);
        let data = block.data().get(..n).unwrap_or_default();
        let kept = block.keep(data);
        let push = |pending: &mut Pending| match kept {
            Some(k) => pending.push_kept(k),
            None => pending.push_own(data),
        };
        if self.framing == Framing::Chunked && n > 0 {
            self.pending
                .push_own_with(|own| enc::push_chunk_size(own, n));
            push(&mut self.pending);
            self.pending.push_static(b"\r\n");
        } else {
            push(&mut self.pending);
        }
        Ok(())
    }

    /// Writes everything pending (the GIL released while the socket is full), or, in the
    /// inline worker, what the socket takes now.
    fn flush_pending(&mut self, gil: Gil<'_>) -> io::Result<()> {
        self.app_back(gil)?;
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.broken {
            self.pending.clear();
            self.blocked = false;
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connection already failed",
            ));
        }
        let mut pending = std::mem::take(&mut self.pending);
        if self.defer_with(pending.unwritten(), |out| pending.copy_into(out)) {
            pending.clear();
            self.pending = pending;
            return Ok(());
        }
        if let Some(held) = self.deferred.take() {
            // Deferred bytes go first, in order.
            pending.push_front_own(&held);
            sio::give_back(held);
        }
        let (fd, timeout) = (self.set.fd, self.set.timeout);
        let res = if self.coalesce {
            match pending.write_now(fd) {
                Ok(false) => {
                    self.pending = pending;
                    self.blocked = true;
                    return Ok(());
                }
                Ok(true) => {
                    self.blocked = false;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else {
            gil.unlocked(|| pending.write(fd, timeout))
        };
        pending.clear();
        self.pending = pending;
        if res.is_err() {
            self.abort();
        }
        res
    }

    /// Writes what is pending and deferred, waiting (the GIL released) while the socket is
    /// full: for `write()`, which PEP 3333 has return only once its bytes are on their way.
    fn flush_waiting(&mut self, gil: Gil<'_>) -> io::Result<()> {
        self.app_back(gil)?;
        let mut pending = std::mem::take(&mut self.pending);
        if let Some(held) = self.deferred.take() {
            pending.push_front_own(&held);
            sio::give_back(held);
        }
        if pending.is_empty() {
            self.pending = pending;
            return Ok(());
        }
        if self.broken {
            pending.clear();
            self.pending = pending;
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connection already failed",
            ));
        }
        let (fd, timeout) = (self.set.fd, self.set.timeout);
        let res = gil.unlocked(|| pending.write(fd, timeout));
        pending.clear();
        self.pending = pending;
        self.blocked = false;
        if res.is_err() {
            self.abort();
        }
        res
    }
}

impl Sink for StreamSink {
    fn head(&mut self, _gil: Gil<'_>, head: &Head<'_>) -> io::Result<()> {
        self.encode_head(head);
        Ok(())
    }

    fn body(&mut self, gil: Gil<'_>, block: Block<'_>) -> io::Result<()> {
        // A whole body in one block (the head goes with it) is sent (or deferred) at once;
        // the blocks of an iterable are coalesced.
        let whole = !self.head.is_empty()
            && match self.framing {
                Framing::NoBody => true,
                Framing::Length(n) => n == block.data().len() as u64,
                _ => false,
            };
        if self.coalesce && !whole {
            self.queue_body(gil, &block)
        } else {
            self.send_body(gil, &block)
        }
    }

    fn file(&mut self, gil: Gil<'_>, file: RawFd, offset: u64, count: u64) -> io::Result<()> {
        if !self.head.is_empty() {
            let head = std::mem::take(&mut self.head);
            let r = self.send(gil, &[&head]);
            sio::give_back(head);
            r?;
        }
        let count = match self.framing {
            Framing::NoBody => return Ok(()),
            Framing::Length(left) => count.min(left),
            _ => count,
        };
        if count == 0 {
            return Ok(());
        }
        if self.fastcgi().is_some() {
            return self.send_file_copied(gil, file, offset, count);
        }
        sio::set_notsent_lowat(self.set.fd, Some(sio::FILE_NOTSENT_LOWAT));
        if self.coalesce
            && self.framing != Framing::Chunked
            && (self.pending.is_empty() || self.blocked)
            && !self.pending_out
        {
            let r = self.send_file_or_defer(file, offset, count);
            if self.tail.is_none() {
                // Otherwise the connection's task uncaps it once the tail is sent.
                sio::set_notsent_lowat(self.set.fd, None);
            }
            return r;
        }
        let r = self.send_file_sync(gil, file, offset, count);
        sio::set_notsent_lowat(self.set.fd, None);
        r
    }

    fn flush(&mut self, gil: Gil<'_>, wait: bool) -> io::Result<()> {
        if wait {
            self.flush_waiting(gil)
        } else {
            self.flush_pending(gil)
        }
    }

    fn finish(&mut self, gil: Gil<'_>) -> io::Result<()> {
        self.finished = true;
        if !self.head.is_empty() {
            // A response without body bytes: the head alone.
            self.send_body(gil, &Block::own(b""))?;
        }
        match self.framing {
            Framing::Chunked if self.coalesce => {
                self.app_back(gil)?;
                self.pending.push_static(enc::LAST_CHUNK);
                self.flush_pending(gil)
            }
            Framing::Chunked => {
                self.flush_pending(gil)?;
                self.send(gil, &[enc::LAST_CHUNK])
            }
            Framing::Length(left) if left > 0 => {
                // The bridge logged the short body; the connection cannot serve another.
                self.keep_alive = false;
                self.flush_pending(gil)
            }
            _ => self.flush_pending(gil),
        }
    }

    fn cut(&mut self) {
        self.keep_alive = false;
        if !self.blocked {
            self.broken = true;
        }
    }

    fn abort(&mut self) {
        self.pending.clear();
        self.blocked = false;
        self.tail = None;
        self.broken = true;
        self.keep_alive = false;
    }

    fn client_gone(&self) -> bool {
        self.broken
    }

    fn congested(&self) -> bool {
        self.blocked
    }

    fn app_busy(&mut self) {
        if let Some(d) = self.deferred.take() {
            // The deferred response goes to the flusher like a pending block, so that a slow
            // `close()` does not hold it back.
            self.pending.push_own(&d);
            sio::give_back(d);
        }
        if self.pending.is_empty() || self.broken || self.blocked {
            return;
        }
        if let Some(f) = Flusher::get() {
            f.arm(self.set.fd, std::mem::take(&mut self.pending));
            self.pending_out = true;
        }
    }

    fn app_back(&mut self, gil: Gil<'_>) -> io::Result<()> {
        if !self.pending_out {
            return Ok(());
        }
        self.pending_out = false;
        let Some(f) = Flusher::get() else {
            return Ok(());
        };
        let fd = self.set.fd;
        let (mut pending, result) = match f.disarm_now(fd) {
            Some(taken) => taken,
            None => gil.unlocked(|| f.disarm(fd)),
        };
        let r = match result {
            None => {
                self.pending = pending;
                Ok(())
            }
            Some(Ok(true)) => {
                pending.clear();
                self.pending = pending;
                Ok(())
            }
            Some(Ok(false)) if self.coalesce || self.finished => {
                // The socket took part: the rest waits for the client (inline), or is
                // deferred again (below).
                self.pending = pending;
                self.blocked = true;
                Ok(())
            }
            Some(Ok(false)) => {
                // An app thread waits for the client, the GIL released, as for any write.
                let timeout = self.set.timeout;
                let res = gil.unlocked(|| pending.write(fd, timeout));
                pending.clear();
                self.pending = pending;
                if res.is_err() {
                    self.abort();
                }
                res
            }
            Some(Err(e)) => {
                self.abort();
                Err(e)
            }
        };
        if r.is_ok() && self.finished && !self.pending.is_empty() {
            // Back from the iterable's `close()`: what the flusher did not send is deferred
            // again.
            let mut held = Vec::new();
            self.pending.copy_into(&mut held);
            self.pending.clear();
            self.blocked = false;
            self.deferred = Some(held);
        }
        r
    }

    fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    fn raw_http(&self) -> bool {
        matches!(self.set.wire, Wire::Http1(_))
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}
