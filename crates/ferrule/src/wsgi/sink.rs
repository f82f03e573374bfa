//! The seam between the WSGI bridge and the transports: what the bridge hands a transport
//! (a response, through a [`Sink`]) and what it takes from one (a request body, through a
//! [`BodySource`]). The bridge knows no protocol; each transport (HTTP/1, uwsgi, SCGI,
//! FastCGI, ...) implements both traits in `server/`, and encodes the response its own way.
//!
//! Every method is called on the thread that runs the app, with the GIL held; a method that
//! waits for the client releases it through the [`Gil`] it is given.
use std::any::Any;
use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

use ferrule_proto::ParseError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// The GIL, held by the caller: a transport releases it around anything that may wait.
#[derive(Clone, Copy)]
pub struct Gil<'py>(pub(super) Python<'py>);

impl Gil<'_> {
    /// Runs `f` with the GIL released (other Python threads run meanwhile), then takes it back.
    pub fn unlocked<T: Send, F: FnOnce() -> T + Send>(self, f: F) -> T {
        self.0.detach(f)
    }
}

/// A response head, as the app set it and the bridge checked it.
#[derive(Debug)]
pub struct Head<'a> {
    /// The status code.
    pub code: u16,
    /// The status as the app gave it: the code and its reason (`200 OK`).
    pub status: &'a [u8],
    /// The app's header fields, checked and encoded as `Name: value\r\n` lines, without the
    /// hop-by-hop ones (PEP 3333). A transport that needs pairs splits them back.
    pub fields: &'a [u8],
    /// The app set a `Date` field (the transport adds none of its own).
    pub has_date: bool,
    /// The app set a `Server` field.
    pub has_server: bool,
    /// The body's length, when known: the app's `Content-Length`, or the length of a body
    /// the app gave whole.
    pub length: Option<u64>,
    /// `length` is not in `fields` (the bridge learnt it from the body): the transport states
    /// it if its framing does.
    pub state_length: bool,
    /// No body follows, whatever the framing would allow: a HEAD request, 1xx, 204, 304.
    pub no_body: bool,
    /// The connection is to close after this response (the request body is left unread).
    pub close: bool,
    /// When the app was called for this request. A transport that holds a response's last
    /// bytes back, to send them with other responses, writes a slow request's at once.
    pub began: Instant,
}

/// A block of the response body, usually memory of a `bytes` object the app returned.
pub struct Block<'a> {
    data: &'a [u8],
    owner: Option<&'a Bound<'a, PyBytes>>,
}

impl<'a> Block<'a> {
    /// The app's `bytes` object, whole.
    pub(super) fn of(bytes: &'a Bound<'a, PyBytes>) -> Self {
        Self {
            data: bytes.as_bytes(),
            owner: Some(bytes),
        }
    }

    /// Bytes of the bridge's own, which a transport copies if it keeps them.
    #[must_use]
    pub fn own(data: &'a [u8]) -> Self {
        Self { data, owner: None }
    }

    /// The block's bytes.
    #[must_use]
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The block with only its first `n` bytes.
    #[must_use]
    pub fn truncated(self, n: usize) -> Self {
        Self {
            data: self.data.get(..n).unwrap_or(self.data),
            owner: self.owner,
        }
    }

    /// Keeps `part` (a subslice of [`Block::data`]) alive past the call, without copying it,
    /// when the block is an app's `bytes` object; None otherwise (copy it).
    #[must_use]
    pub fn keep(&self, part: &[u8]) -> Option<Kept> {
        let owner = self.owner?;
        let range = self.data.as_ptr_range();
        if part.is_empty() || !range.contains(&part.as_ptr()) {
            return None;
        }
        Some(Kept {
            _owner: owner.clone().unbind(),
            ptr: part.as_ptr(),
            len: part.len(),
        })
    }
}

/// Part of an app's `bytes` object, kept alive while a transport holds it (an immutable
/// object: its memory neither moves nor changes while referenced).
pub struct Kept {
    _owner: Py<PyBytes>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: `ptr` points into the immutable buffer of the bytes object `_owner` keeps alive;
// reading it needs no GIL, and the reference (`Py`) may move between threads (a `Py` dropped
// without the GIL is released later by pyo3).
unsafe impl Send for Kept {}
// SAFETY: as for `Send`; a shared `Kept` only reads immutable memory.
unsafe impl Sync for Kept {}

impl AsRef<[u8]> for Kept {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl Kept {
    /// The kept bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: see the `Send` impl: `len` bytes at `ptr`, alive and immutable while
        // `self` holds the owner.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Where a response goes: a transport's encoding of it onto its connection.
///
/// The bridge calls [`Sink::head`] once, right before the first body bytes (or the file, or
/// the end of a response without body), then [`Sink::body`]/[`Sink::file`] any number of
/// times, then [`Sink::finish`]; or [`Sink::abort`] at any point. It never sends more body
/// than `Head::length` says. A method that fails leaves the sink broken: later ones fail too.
pub trait Sink: Send + Sync + 'static {
    /// The response head; the transport may hold it to send with the first body bytes.
    fn head(&mut self, gil: Gil<'_>, head: &Head<'_>) -> io::Result<()>;
    /// One block of body, sent or queued (a queued block goes out no later than the next
    /// [`Sink::flush`] or [`Sink::finish`]).
    fn body(&mut self, gil: Gil<'_>, block: Block<'_>) -> io::Result<()>;
    /// `count` bytes of the open file `file` from `offset`, as body.
    fn file(&mut self, gil: Gil<'_>, file: RawFd, offset: u64, count: u64) -> io::Result<()>;
    /// Sends what is queued. `wait`: it is on its way when this returns, even in a
    /// transport that otherwise leaves a full socket to its connection's task (`write()`).
    fn flush(&mut self, gil: Gil<'_>, wait: bool) -> io::Result<()>;
    /// The body is complete.
    fn finish(&mut self, gil: Gil<'_>) -> io::Result<()>;
    /// The app failed mid-response: nothing more is sent, but what is queued still goes out
    /// (later, if the connection is congested), then the connection closes.
    fn cut(&mut self);
    /// The response stops here: what is queued is dropped and the connection closes.
    fn abort(&mut self);
    /// The client (or the front server) is gone, or the response was aborted.
    fn client_gone(&self) -> bool;
    /// The connection takes no more for now: the bridge asks the app for nothing more until
    /// the transport's connection task has waited for the client and resumes the exchange.
    fn congested(&self) -> bool;
    /// The app is about to work on its next block (or its `close()`): what is queued may go
    /// out meanwhile.
    fn app_busy(&mut self);
    /// The app is back: the transport takes back what it lent in [`Sink::app_busy`].
    fn app_back(&mut self, gil: Gil<'_>) -> io::Result<()>;
    /// The connection may serve another request after this response.
    fn keep_alive(&self) -> bool;
    /// The connection's socket carries HTTP/1 to the client: the watchdog may write its own
    /// 504 answer on it when the app overruns `--timeout`.
    fn raw_http(&self) -> bool;
    /// The transport answered the request itself and wrote its access line (an HTTP/2
    /// stream's 504 past `--timeout`): the bridge writes none.
    fn answered_by_transport(&self) -> bool {
        false
    }
    /// For the transport to take back its own sink after the exchange.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

/// Why a request body could not be read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Malformed framing or over the body limit: answered with the error's status.
    Parse(ParseError),
    /// The client went away or stalled mid-body.
    Io(io::ErrorKind),
    /// The body came slower than `--body-min-rate`: answered 408.
    TooSlow,
}

/// A request body as a transport receives it. Calls that may wait for the client are made
/// with the GIL released; the others hold it.
pub trait BodySource: Send + Sync + 'static {
    /// Appends up to `max` (> 0) body bytes to `out`. `Ok(Some(0))`: the body has ended.
    /// `Ok(None)`: nothing is received yet and `block` is false.
    fn read(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
        block: bool,
    ) -> Result<Option<usize>, BodyError>;
    /// How many bytes a `read(size)` returns, when the body's length is known and nothing
    /// failed: `size` (None: all) capped at what is left.
    fn exact_len(&self, size: Option<usize>) -> Option<usize>;
    /// Body bytes received and not yet read.
    fn buffered(&self) -> usize;
    /// Fills `dst`, of at most [`BodySource::exact_len`] bytes (waiting for the client unless
    /// [`BodySource::buffered`] covers it).
    fn read_exact_into(&mut self, dst: &mut [u8]) -> Result<(), BodyError>;
    /// The body has been read to its end.
    fn is_done(&self) -> bool;
    /// The first error a read met.
    fn error(&self) -> Option<BodyError>;
    /// The response's head goes out while the body is not all read: true when the rest will
    /// be left unread and the connection closes after the response. A client still waiting
    /// for `100 Continue` gets none after this final response (RFC 9110 section 10.1.1).
    fn head_going_out(&mut self) -> bool;
    /// For the transport to take back its own reader after the exchange.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}
