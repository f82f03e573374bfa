//! Request body buffering on HTTP/1, uwsgi and SCGI (HTTP/2 buffers on the edge thread with
//! the same options and spool files: `h2::body::buffer`): the event loop reads a request's body before the app is
//! called (as waitress and nginx's `proxy_request_buffering` do), so that a client sending
//! slowly holds a connection task, never an app thread or the inline worker's loop. Up to
//! `--body-buffer-size` stays in the connection's read buffer (the ordinary [`BodyReader`]
//! then reads it without waiting); a larger body is spooled to a temporary file, unlinked
//! from its creation, and read back by [`SpooledBody`]. `--no-request-buffering` and
//! `--stream-uploads PREFIX` keep the streaming `wsgi.input`, where the inline worker still
//! reads a small body ahead (see [`PREREAD_BODY`]) and runs a request whose body has not
//! arrived on a side thread (`server/side.rs`), never on its loop.
use std::any::Any;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, BytesMut};
use ferrule_proto::http1::{response::CONTINUE, BodyKind, ChunkedDecoder, RequestHead};
use ferrule_proto::ParseError;
use tokio::time::Instant;

use super::conn::{Stream, READ_BUF};
use super::head::Timer;
use super::rate::MinRate;
use super::Worker;
use crate::log::{Level, Repeated};
use crate::wsgi::sink::{BodyError, BodySource};

/// Largest request body (by its Content-Length, or as sent when chunked) the inline worker
/// (`--threads 1`) reads in the event loop before it calls the app on a streaming path
/// (`--no-request-buffering`, `--stream-uploads`): read without holding the loop, the body is
/// there, whole, when the app asks for it, and the request runs inline with no hand-off to a
/// side thread. Larger bodies and those sent after `Expect: 100-continue` (answered only when
/// the app reads) stream to the app as it reads them, on a side thread (`server/side.rs`)
/// unless they have arrived. Not configurable: buffered paths use `--body-buffer-size`
/// instead.
pub const PREREAD_BODY: usize = 64 * 1024;

/// Bytes asked of the socket per read while spooling a body: a quarter of the writes of 64
/// KiB reads (a 16 MiB upload: 35 ms alone on this machine with 64 KiB, 20 ms with 256 KiB).
const SPOOL_READ: usize = 256 * 1024;

/// How request bodies are read before the app runs (`--no-request-buffering`,
/// `--stream-uploads`, `--body-buffer-size`, `--body-spool-dir`).
pub struct Buffering {
    /// Bodies are buffered (else every path streams).
    pub enabled: bool,
    /// Most body bytes (as sent) kept in memory; a larger body goes to a spool file.
    pub memory: usize,
    /// Where spool files are created (unlinked at once).
    pub spool_dir: PathBuf,
    /// Path prefixes whose requests stream their body to the app.
    pub stream_prefixes: Vec<String>,
    /// `--body-min-rate` (bytes/s; 0: none) for buffered bodies.
    pub min_rate: u64,
    /// The same for streamed bodies: only when `--body-min-rate` is given.
    pub stream_min_rate: u64,
}

impl Buffering {
    /// Whether `head`'s body is buffered before the app runs.
    fn buffers(&self, head: &RequestHead) -> bool {
        self.buffers_path(head.target())
    }

    /// Whether the body of a request for `target` (a path, or an absolute-form target) is
    /// buffered before the app runs.
    pub(super) fn buffers_path(&self, target: &[u8]) -> bool {
        self.enabled
            && !self
                .stream_prefixes
                .iter()
                .any(|p| under(path_of(target), p))
    }
}

/// The path of a request target (origin-form or absolute-form), without its query.
fn path_of(target: &[u8]) -> &[u8] {
    let path = match target.windows(3).position(|w| w == b"://") {
        Some(i) if !target.starts_with(b"/") => {
            let rest = target.get(i + 3..).unwrap_or_default();
            rest.iter()
                .position(|&c| c == b'/')
                .and_then(|j| rest.get(j..))
                .unwrap_or(b"/")
        }
        _ => target,
    };
    let end = path.iter().position(|&c| c == b'?').unwrap_or(path.len());
    path.get(..end).unwrap_or(path)
}

/// `path` is `prefix` or beneath it (`/up` covers `/up` and `/up/x`, not `/upload`).
fn under(path: &[u8], prefix: &str) -> bool {
    let prefix = prefix.as_bytes();
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || prefix.ends_with(b"/") || rest.starts_with(b"/"),
        None => false,
    }
}

/// A request's body, as read before the app runs.
pub(super) enum Prepared {
    /// Nothing read ahead, or the whole body in the read buffer: the [`super::body::BodyReader`]
    /// reads it from there (`expect`: it still answers `100 Continue`).
    InBuffer { expect: bool },
    /// A streaming path: the app reads the body as it comes, from the read buffer (what was
    /// read ahead), then the socket (`expect`: it still answers `100 Continue`). The inline
    /// worker runs the request on a side thread unless the body has arrived
    /// ([`super::body::BodyReader::arrived`]).
    Streams { expect: bool },
    /// The body in a spool file; the read buffer holds what followed it.
    Spooled(SpooledBody),
    /// The body is refused (malformed framing, over `--limit-request-body`): answer this
    /// status and close.
    Refused(ParseError),
    /// The body came slower than `--body-min-rate`: answer 408 and close.
    TooSlow,
    /// The body could not be kept (a spool file failed): answer 500 and close.
    Failed,
    /// The client stopped sending (closed, failed, or silent past `--client-timeout`): close.
    Closed,
}

/// Why reading a body ended before its end.
enum Stop {
    /// The client closed, failed or went silent past `--client-timeout`.
    Closed,
    /// Below `--body-min-rate`.
    TooSlow,
}

impl From<Stop> for Prepared {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Closed => Self::Closed,
            Stop::TooSlow => Self::TooSlow,
        }
    }
}

/// Reading one request body on the connection's task: its timer and its rate check.
struct BodyRead<'a> {
    worker: &'a Worker,
    stream: &'a mut Stream,
    timer: &'a mut Timer,
    rate: Option<MinRate>,
}

impl BodyRead<'_> {
    /// One more read into `rbuf` within the client timeout (and the rate window).
    async fn more(&mut self, rbuf: &mut BytesMut) -> Result<(), Stop> {
        // The rate is checked as bytes arrive (a drip is caught at its next byte past the
        // window); a client that sends nothing is closed by the client timeout. The read's
        // deadline stays the client timeout's, so the connection's timer is not re-armed for
        // every read.
        let now = Instant::now();
        let began = self.rate.is_some().then_some(now);
        let deadline = now + self.worker.client_timeout;
        let n = match self
            .timer
            .within(deadline, self.stream.read_buf(rbuf))
            .await
        {
            Some(Ok(n)) if n > 0 => n,
            _ => return Err(Stop::Closed),
        };
        if let (Some(r), Some(began)) = (self.rate.as_mut(), began) {
            if !r.record(n, began.elapsed()) {
                return Err(Stop::TooSlow);
            }
        }
        Ok(())
    }

    /// Reads the `left` bytes still to come of a body into `rbuf`.
    async fn len(&mut self, left: usize, rbuf: &mut BytesMut) -> Result<(), Stop> {
        let want = rbuf.len() + left;
        // With the room each read asks for: the buffer is not grown (copied) on the last one.
        rbuf.reserve(left + READ_BUF);
        while rbuf.len() < want {
            self.more(rbuf).await?;
        }
        Ok(())
    }

    /// Reads a chunked body into `rbuf` while it stays within `memory` bytes as sent. Only
    /// the framing is scanned: the reader decodes the body from the start.
    async fn scan_chunked(&mut self, rbuf: &mut BytesMut, memory: usize) -> Scanned {
        let limits = &self.worker.app.limits;
        let mut scan = ChunkedDecoder::new(limits.max_head(), limits.request_body);
        let mut scanned = 0;
        loop {
            while let Some(rest) = rbuf.get(scanned..).filter(|r| !r.is_empty()) {
                match scan.decode(rest, usize::MAX) {
                    Ok((0, _)) => break,
                    Ok((used, _)) => scanned += used,
                    Err(e) => return Scanned::Refused(e),
                }
                if scan.is_done() {
                    return Scanned::Whole;
                }
            }
            if scan.is_done() {
                return Scanned::Whole;
            }
            if rbuf.len() >= memory {
                return Scanned::Large;
            }
            if let Err(stop) = self.more(rbuf).await {
                return Scanned::Stopped(stop);
            }
        }
    }

    /// Spools a body of `n` bytes (the first of them in `rbuf`) to a file.
    async fn spool_length(&mut self, n: u64, rbuf: &mut BytesMut) -> Prepared {
        let Some(mut file) = open_spool(self.worker) else {
            return Prepared::Failed;
        };
        let mut left = n;
        loop {
            let take = usize::try_from(left).unwrap_or(usize::MAX).min(rbuf.len());
            if take > 0 {
                if let Err(e) = file.write_all(rbuf.get(..take).unwrap_or_default()) {
                    return spool_failed(self.worker, &e);
                }
                rbuf.advance(take);
                left -= take as u64;
            }
            if left == 0 {
                return Prepared::Spooled(SpooledBody::new(file, n));
            }
            rbuf.reserve(SPOOL_READ);
            if let Err(stop) = self.more(rbuf).await {
                return stop.into();
            }
        }
    }

    /// Spools a chunked body (from its start in `rbuf`) to a file, decoded.
    async fn spool_chunked(&mut self, rbuf: &mut BytesMut) -> Prepared {
        let Some(mut file) = open_spool(self.worker) else {
            return Prepared::Failed;
        };
        let limits = &self.worker.app.limits;
        let mut dec = ChunkedDecoder::new(limits.max_head(), limits.request_body);
        let mut len = 0u64;
        loop {
            while !rbuf.is_empty() && !dec.is_done() {
                let (used, data) = match dec.decode(rbuf, usize::MAX) {
                    Ok(r) => r,
                    Err(e) => return Prepared::Refused(e),
                };
                if let Some(data) = data {
                    if let Err(e) = file.write_all(rbuf.get(data.clone()).unwrap_or_default()) {
                        return spool_failed(self.worker, &e);
                    }
                    len += data.len() as u64;
                }
                rbuf.advance(used);
                if used == 0 {
                    break;
                }
            }
            if dec.is_done() {
                return Prepared::Spooled(SpooledBody::new(file, len));
            }
            rbuf.reserve(SPOOL_READ);
            if let Err(stop) = self.more(rbuf).await {
                return stop.into();
            }
        }
    }
}

/// Reads `head`'s body before the app runs, as `worker`'s buffering says; `rbuf` holds what
/// followed the head.
pub(super) async fn prepare(
    worker: &Worker,
    stream: &mut Stream,
    head: &RequestHead,
    rbuf: &mut BytesMut,
    timer: &mut Timer,
) -> Prepared {
    if matches!(head.body, BodyKind::Empty) {
        return Prepared::InBuffer { expect: false };
    }
    let buffers = worker.buffering.buffers(head);
    let rate = if buffers {
        worker.buffering.min_rate
    } else {
        worker.buffering.stream_min_rate
    };
    let mut read = BodyRead {
        worker,
        stream,
        timer,
        rate: MinRate::start(rate),
    };
    if !buffers {
        return read.stream_ahead(head, rbuf).await;
    }
    if head.expect_continue && !read.stream.write_all(CONTINUE, worker.client_timeout).await {
        return Prepared::Closed;
    }
    read.whole(head.body, rbuf).await
}

/// A uwsgi or SCGI request's body (`n` bytes after the head, `n` from CONTENT_LENGTH), read
/// before the app runs as on HTTP/1: `path` (the request's REQUEST_URI or PATH_INFO) picks
/// out `--stream-uploads` prefixes, which stream. A body over `--limit-request-body` is
/// refused (413) before any of it is read.
pub(super) async fn prepare_gateway(
    worker: &Worker,
    stream: &mut Stream,
    n: u64,
    path: &[u8],
    rbuf: &mut BytesMut,
) -> Prepared {
    let limit = worker.app.limits.request_body;
    if limit > 0 && n > limit {
        return Prepared::Refused(ParseError::BodyTooLarge);
    }
    if n == 0 {
        return Prepared::InBuffer { expect: false };
    }
    if !worker.buffering.buffers_path(path) {
        return Prepared::Streams { expect: false };
    }
    let mut timer = Timer::new(Instant::now() + worker.client_timeout);
    let mut read = BodyRead {
        worker,
        stream,
        timer: &mut timer,
        rate: MinRate::start(worker.buffering.min_rate),
    };
    read.whole(BodyKind::Length(n), rbuf).await
}

impl BodyRead<'_> {
    /// Reads a whole body of `kind` (its first bytes in `rbuf`): in memory up to
    /// `--body-buffer-size`, else into a spool file.
    async fn whole(&mut self, kind: BodyKind, rbuf: &mut BytesMut) -> Prepared {
        let memory = self.worker.buffering.memory;
        match kind {
            BodyKind::Length(n) if n <= memory as u64 => {
                // At most `memory`: fits.
                let left = (n as usize).saturating_sub(rbuf.len());
                match self.len(left, rbuf).await {
                    Ok(()) => Prepared::InBuffer { expect: false },
                    Err(stop) => stop.into(),
                }
            }
            BodyKind::Length(n) => self.spool_length(n, rbuf).await,
            BodyKind::Chunked => match self.scan_chunked(rbuf, memory).await {
                Scanned::Whole => Prepared::InBuffer { expect: false },
                Scanned::Large => self.spool_chunked(rbuf).await,
                Scanned::Refused(e) => Prepared::Refused(e),
                Scanned::Stopped(stop) => stop.into(),
            },
            BodyKind::Empty => Prepared::InBuffer { expect: false },
        }
    }
}

impl BodyRead<'_> {
    /// A streaming path: the inline worker reads a small body ahead (see [`PREREAD_BODY`]),
    /// never after `Expect: 100-continue`; with app threads nothing is read ahead.
    async fn stream_ahead(&mut self, head: &RequestHead, rbuf: &mut BytesMut) -> Prepared {
        let expect = head.expect_continue;
        if self.worker.pool.is_some() || expect {
            return Prepared::Streams { expect };
        }
        let read = match head.body {
            BodyKind::Length(n) if n <= PREREAD_BODY as u64 => {
                let left = (n as usize).saturating_sub(rbuf.len());
                self.len(left, rbuf).await
            }
            // Malformed or large framing is left for the app's reader.
            BodyKind::Chunked => match self.scan_chunked(rbuf, PREREAD_BODY).await {
                Scanned::Stopped(stop) => Err(stop),
                _ => Ok(()),
            },
            _ => Ok(()),
        };
        match read {
            Ok(()) => Prepared::Streams { expect },
            Err(stop) => stop.into(),
        }
    }
}

/// What a scan of a chunked body in the read buffer found.
enum Scanned {
    /// The whole body is in the buffer.
    Whole,
    /// The body passed the memory limit before its end.
    Large,
    Refused(ParseError),
    Stopped(Stop),
}

fn spool_failed(worker: &Worker, e: &io::Error) -> Prepared {
    log_spool_failure(worker, e);
    Prepared::Failed
}

/// Logs (without repeating itself) that a spool file could not be created or written.
pub(super) fn log_spool_failure(worker: &Worker, e: &io::Error) {
    static FAILED: Repeated = Repeated::new();
    FAILED.log(Level::Error, || {
        format!(
            "cannot write a request body to a spool file in {} (--body-spool-dir): {e}",
            worker.buffering.spool_dir.display()
        )
    });
}

/// A new spool file in `--body-spool-dir`; None (logged) if it cannot be created.
pub(super) fn open_spool(worker: &Worker) -> Option<File> {
    match spool_file(&worker.buffering.spool_dir) {
        Ok(f) => Some(f),
        Err(e) => {
            log_spool_failure(worker, &e);
            None
        }
    }
}

/// Numbers the names of spool files created where `O_TMPFILE` is not supported.
static SPOOL_SEQ: AtomicU64 = AtomicU64::new(0);

/// A new temporary file in `dir`, with no name: `O_TMPFILE`, or where the file system lacks
/// it a file created and unlinked at once. Either way nothing is left behind, even by a
/// crash.
pub fn spool_file(dir: &Path) -> io::Result<File> {
    let unnamed = OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(dir);
    match unnamed {
        Ok(f) => return Ok(f),
        Err(e)
            if !matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL | libc::ENOENT)
            ) || !dir.is_dir() =>
        {
            return Err(e);
        }
        Err(_) => {}
    }
    loop {
        let name = dir.join(format!(
            ".ferrule-body-{}-{}",
            std::process::id(),
            SPOOL_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&name)
        {
            Ok(f) => {
                std::fs::remove_file(&name)?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
}

/// A request body spooled to a file before the app runs: `wsgi.input` reads it back with
/// `pread`, never waiting for the client.
pub struct SpooledBody {
    file: File,
    len: u64,
    pos: u64,
    error: Option<BodyError>,
}

impl SpooledBody {
    #[must_use]
    pub fn new(file: File, len: u64) -> Self {
        Self {
            file,
            len,
            pos: 0,
            error: None,
        }
    }

    fn left(&self) -> usize {
        usize::try_from(self.len - self.pos).unwrap_or(usize::MAX)
    }

    fn read_at(&mut self, dst: &mut [u8]) -> Result<(), BodyError> {
        match self.file.read_exact_at(dst, self.pos) {
            Ok(()) => {
                self.pos += dst.len() as u64;
                Ok(())
            }
            Err(e) => Err(*self.error.insert(BodyError::Io(e.kind()))),
        }
    }
}

impl BodySource for SpooledBody {
    fn read(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
        _block: bool,
    ) -> Result<Option<usize>, BodyError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let n = max.min(self.left());
        let start = out.len();
        out.resize(start + n, 0);
        let filled = self.read_at(out.get_mut(start..).unwrap_or_default());
        if filled.is_err() {
            out.truncate(start);
        }
        filled.map(|()| Some(n))
    }

    fn exact_len(&self, size: Option<usize>) -> Option<usize> {
        if self.error.is_some() {
            return None;
        }
        let left = self.left();
        Some(size.map_or(left, |s| s.min(left)))
    }

    fn buffered(&self) -> usize {
        self.left()
    }

    fn read_exact_into(&mut self, dst: &mut [u8]) -> Result<(), BodyError> {
        if dst.len() > self.left() {
            return Err(BodyError::Io(io::ErrorKind::InvalidInput));
        }
        self.read_at(dst)
    }

    fn is_done(&self) -> bool {
        self.pos == self.len
    }

    fn error(&self) -> Option<BodyError> {
        self.error
    }

    fn head_going_out(&mut self) -> bool {
        // The body was all received: nothing is left on the connection.
        false
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_a_prefix() {
        assert!(under(path_of(b"/up"), "/up"));
        assert!(under(path_of(b"/up/x?y=1"), "/up"));
        assert!(under(path_of(b"/up/x"), "/up/"));
        assert!(!under(path_of(b"/upload"), "/up"));
        assert!(under(path_of(b"http://h:1/up/a"), "/up"));
        assert!(!under(path_of(b"http://h:1"), "/up"));
        assert!(under(path_of(b"/anything"), "/"));
    }

    #[test]
    fn spooled_body_reads_back_and_leaves_no_name() {
        let dir = std::env::temp_dir().join(format!("ferrule-spool-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut f = spool_file(&dir).expect("spool file");
        f.write_all(b"hello world\n").expect("write");
        assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 0);
        let mut body = SpooledBody::new(f, 12);
        assert_eq!(body.exact_len(None), Some(12));
        let mut out = Vec::new();
        assert_eq!(body.read(&mut out, 5, false), Ok(Some(5)));
        let mut rest = [0u8; 7];
        body.read_exact_into(&mut rest).expect("rest");
        assert_eq!(out, b"hello");
        assert_eq!(&rest, b" world\n");
        assert!(body.is_done());
        assert_eq!(body.read(&mut out, 5, false), Ok(Some(0)));
        std::fs::remove_dir(&dir).expect("clean");
    }
}
