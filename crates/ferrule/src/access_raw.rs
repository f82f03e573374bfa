//! Access lines for requests the server answered itself, where no parsed request is at hand:
//! what was read of a head the server refused ([`Partial`]), and a copy of a request taken
//! when it starts, for a line another thread writes later (the `--timeout` watchdog's 504,
//! [`Copied`]).
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrule_proto::http1::RequestHead;
use ferrule_proto::CgiVars;

use super::{Fields, Record};

/// The header fields of a raw HTTP/1 head (`Name: value` lines after the request line), as
/// far as whole lines came: looked up by scanning, for a line the server writes rarely.
pub struct RawFields<'a>(&'a [u8]);

impl Fields for RawFields<'_> {
    fn field(&self, name: &[u8]) -> Option<&[u8]> {
        let mut lines = self.0.split_inclusive(|&c| c == b'\n');
        // The request line.
        lines.next();
        for line in lines {
            // A line cut short is not a field yet.
            let line = line.strip_suffix(b"\n")?;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                return None;
            }
            let Some(colon) = line.iter().position(|&c| c == b':') else {
                continue;
            };
            let (n, v) = line.split_at(colon);
            if n.eq_ignore_ascii_case(name) {
                return Some(v.get(1..).unwrap_or_default().trim_ascii());
            }
        }
        None
    }
}

/// What was read of a request head the server refused (400, 414, 431, 408, 505): the request
/// line's words when the line came whole (a method alone when only it did), `-` for the rest,
/// and the header lines that came whole.
pub struct Partial<'a> {
    pub method: &'a [u8],
    pub target: &'a [u8],
    pub version: &'a [u8],
    pub fields: RawFields<'a>,
}

impl<'a> Partial<'a> {
    /// Reads `buf`, the bytes of a head as they came (nothing of it need be valid).
    #[must_use]
    pub fn parse(buf: &'a [u8]) -> Self {
        let start = buf
            .iter()
            .position(|&c| c != b'\r' && c != b'\n')
            .unwrap_or(buf.len());
        let buf = buf.get(start..).unwrap_or_default();
        let mut out = Self {
            method: b"-",
            target: b"-",
            version: b"-",
            fields: RawFields(b""),
        };
        match buf.iter().position(|&c| c == b'\n') {
            Some(end) => {
                let line = buf.get(..end).unwrap_or_default();
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let mut words = line.split(|&c| c == b' ').filter(|w| !w.is_empty());
                let mut next = |into: &mut &'a [u8]| {
                    if let Some(w) = words.next() {
                        *into = w;
                    }
                };
                next(&mut out.method);
                next(&mut out.target);
                next(&mut out.version);
                out.fields = RawFields(buf);
            }
            // The request line did not come whole (414): its method, if a space followed it.
            None => {
                if let Some(sp) = buf.iter().position(|&c| c == b' ') {
                    out.method = buf.get(..sp).unwrap_or_default();
                }
            }
        }
        out
    }

    /// The access record of the refusal (status, bytes sent and duration left to fill).
    #[must_use]
    pub fn record(&'a self, remote: String) -> Record<'a> {
        Record {
            remote,
            method: self.method,
            target: self.target,
            version: self.version,
            fields: &self.fields,
            response_headers: b"",
            status: 0,
            sent: 0,
            elapsed: Duration::ZERO,
            request_id: None,
        }
    }
}

impl Fields for CgiVars {
    fn field(&self, name: &[u8]) -> Option<&[u8]> {
        if name.eq_ignore_ascii_case(b"content-type") {
            return self.get(b"CONTENT_TYPE");
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            return self.get(b"CONTENT_LENGTH");
        }
        let mut cgi = Vec::with_capacity(name.len() + 5);
        if !ferrule_proto::cgi::cgi_header_name(name, &mut cgi) {
            return None;
        }
        self.get(&cgi)
    }

    fn cgi_var(&self, name: &[u8]) -> Option<&[u8]> {
        self.get(name)
    }
}

/// The request a [`Copied`] is made of.
pub enum Of<'a> {
    Head(&'a RequestHead),
    Cgi(&'a CgiVars),
}

/// The request part of a [`Copied`].
enum What {
    /// An HTTP/1 head: its bytes (shared, not copied) and the request line's spans.
    Head {
        buf: Bytes,
        method: Range<usize>,
        target: Range<usize>,
        version: &'static str,
    },
    /// A front server's CGI variables.
    Cgi(CgiVars),
}

/// What the access line of a running request needs, for a thread that may have to write it
/// while the request's own thread is stuck in the app (the `--timeout` watchdog).
pub struct Copied {
    peer: Option<SocketAddr>,
    what: What,
    started: Instant,
    request_id: Option<Vec<u8>>,
}

impl Copied {
    /// A copy of `of`: an HTTP/1 head's bytes are shared (a reference count), a front
    /// server's variables copied.
    #[must_use]
    pub fn new(
        of: Of<'_>,
        peer: Option<SocketAddr>,
        started: Instant,
        request_id: Option<&[u8]>,
    ) -> Self {
        let what = match of {
            Of::Head(head) => What::Head {
                buf: head.buf.clone(),
                method: head.method.clone(),
                target: head.target.clone(),
                version: head.version.as_str(),
            },
            Of::Cgi(vars) => What::Cgi(vars.clone()),
        };
        Self {
            peer,
            what,
            started,
            request_id: request_id.map(<[u8]>::to_vec),
        }
    }

    /// Writes the request's line with `status` and `sent` body bytes.
    pub fn write(&self, status: u16, sent: u64) {
        let peer = || {
            self.peer
                .map_or_else(|| "-".to_owned(), |p| p.ip().to_string())
        };
        let target;
        let (remote, method, version, fields): (_, _, _, &dyn Fields) = match &self.what {
            What::Head {
                buf,
                method,
                target: t,
                version,
            } => {
                target = std::borrow::Cow::Borrowed(buf.get(t.clone()).unwrap_or_default());
                (
                    super::remote(peer),
                    buf.get(method.clone()).unwrap_or_default(),
                    version.as_bytes(),
                    &RawFields(buf),
                )
            }
            What::Cgi(vars) => {
                target = ferrule_proto::cgi::gateway_target(vars);
                (
                    super::remote(|| {
                        vars.get(b"REMOTE_ADDR")
                            .map_or_else(peer, |a| String::from_utf8_lossy(a).into_owned())
                    }),
                    vars.get(b"REQUEST_METHOD").unwrap_or(b"GET"),
                    vars.get(b"SERVER_PROTOCOL").unwrap_or(b"HTTP/1.0"),
                    vars,
                )
            }
        };
        super::write(&Record {
            remote,
            method,
            target: &target,
            version,
            fields,
            response_headers: b"",
            status,
            sent,
            elapsed: self.started.elapsed(),
            request_id: self.request_id.as_deref(),
        });
    }
}
