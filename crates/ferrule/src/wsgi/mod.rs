//! The WSGI bridge: the only place that touches Python objects. A transport (in `server/`)
//! hands it a [`Request`], a response [`Sink`](sink::Sink) and the request's
//! [`BodySource`](sink::BodySource); [`serve`] runs the request through the app and sends its
//! response through the sink, without knowing which protocol carries either.
use ferrule_proto::cgi::{percent_decode, split_target, strip_root_path};
use ferrule_proto::http1::RequestHead;
use pyo3::prelude::*;

use crate::access::{Fields, Record};
use crate::net::ConnInfo;

pub mod app;
pub mod cgi;
pub mod config_file;
pub mod environ;
mod exchange;
pub mod file_wrapper;
pub mod forwarded;
pub mod hooks;
pub mod input;
mod known_headers;
pub mod mounts;
pub mod process;
pub mod request_id;
pub mod response;
pub mod sink;
#[cfg(test)]
mod sink_tests;
pub mod threads;
mod writer;

pub use app::{
    build_app, format_exception, import_app, load, prepare, register_stack_dump, source_dir, App,
    Loaded,
};
use cgi::CgiRequest;
pub use exchange::{resume, serve, Exchange, Outcome, Served};

/// A request as its transport delivered it.
pub enum Request {
    /// A request head of header fields (HTTP/1): method, target, version and fields as sent.
    Fields(RequestHead),
    /// CGI variables from a front server (uwsgi, SCGI, FastCGI).
    Cgi(CgiRequest),
}

impl Request {
    /// The request method.
    #[must_use]
    pub fn method(&self) -> &[u8] {
        match self {
            Self::Fields(h) => h.method(),
            Self::Cgi(c) => c.method(),
        }
    }

    /// A HEAD request: its response has no body.
    #[must_use]
    pub fn is_head(&self) -> bool {
        self.method() == b"HEAD"
    }

    /// The request's `Accept-Encoding`, if it sent one.
    #[must_use]
    pub fn accept_encoding(&self) -> Option<&[u8]> {
        match self {
            Self::Fields(h) => h
                .fields()
                .find(|(n, _)| n.eq_ignore_ascii_case(b"accept-encoding"))
                .map(|(_, v)| v),
            Self::Cgi(c) => c.header(b"HTTP_ACCEPT_ENCODING"),
        }
    }

    /// The request target as the client sent it.
    #[must_use]
    pub fn target(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Self::Fields(h) => std::borrow::Cow::Borrowed(h.target()),
            Self::Cgi(c) => c.target(),
        }
    }

    /// A copy of what the request's access line needs, for the watchdog (its head's bytes
    /// shared, not copied; a front server's variables copied).
    fn copied(
        &self,
        conn: &ConnInfo,
        started: std::time::Instant,
        request_id: Option<&[u8]>,
    ) -> crate::access::Copied {
        let of = match self {
            Self::Fields(h) => crate::access::Of::Head(h),
            Self::Cgi(c) => crate::access::Of::Cgi(&c.vars),
        };
        crate::access::Copied::new(of, conn.peer, started, request_id)
    }

    /// What the access log says of the request; `target` holds the target.
    fn access_record<'a>(
        &'a self,
        conn: &ConnInfo,
        target: &'a [u8],
        response_headers: &'a [u8],
    ) -> Record<'a> {
        let head = match self {
            Self::Fields(h) => HeadOf::Http(h),
            Self::Cgi(c) => HeadOf::Cgi(c),
        };
        head.access_record(conn, target, response_headers)
    }
}

/// A request's head as the access log reads it: HTTP/1's, or a front server's variables.
#[derive(Clone, Copy)]
pub enum HeadOf<'a> {
    Http(&'a ferrule_proto::http1::RequestHead),
    Cgi(&'a cgi::CgiRequest),
}

impl<'a> HeadOf<'a> {
    /// What the access log says of the request (the status, bytes and time left for the
    /// caller); `target` holds the target.
    #[must_use]
    pub fn access_record(
        self,
        conn: &ConnInfo,
        target: &'a [u8],
        response_headers: &'a [u8],
    ) -> Record<'a> {
        let peer = || {
            conn.peer
                .map_or_else(|| "-".to_owned(), |p| p.ip().to_string())
        };
        let (remote, method, version, fields): (String, &[u8], &[u8], &dyn Fields) = match self {
            Self::Http(head) => (
                crate::access::remote(peer),
                head.method(),
                head.version.as_str().as_bytes(),
                head,
            ),
            Self::Cgi(req) => (
                crate::access::remote(|| {
                    req.header(b"REMOTE_ADDR")
                        .map_or_else(peer, |a| String::from_utf8_lossy(a).into_owned())
                }),
                req.method(),
                req.protocol(),
                req,
            ),
        };
        Record {
            remote,
            method,
            target,
            version,
            fields,
            response_headers,
            status: 0,
            sent: 0,
            elapsed: std::time::Duration::ZERO,
            request_id: None,
        }
    }
}

impl Request {
    /// Builds the environ and picks the app (the one, or the `--mount` the path falls under);
    /// Ok(None) when the path lies outside `--root-path` or every mount (a 404).
    fn environ<'py, 'a>(
        &self,
        py: Python<'py>,
        app: &'a App,
        conn: &ConnInfo,
        input: Bound<'py, PyAny>,
    ) -> PyResult<Option<(Bound<'py, pyo3::types::PyDict>, &'a Py<PyAny>)>> {
        let (env, mounted) = match self {
            Self::Fields(head) => {
                let target = split_target(head.target());
                let decoded = percent_decode(target.path);
                let Some((path, mounted)) = strip_root_path(app.root_path.as_bytes(), &decoded)
                    .and_then(|p| mounts::route(app.mounts.as_deref(), p))
                else {
                    return Ok(None);
                };
                let shared = input.is(app.empty_input.bind(py));
                let env =
                    environ::build(py, &app.environ, head, target, conn, path, input, shared)?;
                if let Some(m) = mounted {
                    env.set_item(pyo3::intern!(py, "SCRIPT_NAME"), m.script_name.bind(py))?;
                }
                if let Some(tls) = &conn.tls {
                    environ::put_tls(py, &env, tls)?;
                }
                if forwarded::any_in_head(head) {
                    forwarded::apply(py, &env, &app.forwarded_allow, conn.peer.map(|p| p.ip()))?;
                }
                (env, mounted)
            }
            Self::Cgi(req) => {
                let full = req.path();
                let Some((path, mounted)) = strip_root_path(app.root_path.as_bytes(), &full)
                    .and_then(|p| mounts::route(app.mounts.as_deref(), p))
                else {
                    return Ok(None);
                };
                let env = cgi::build(py, &app.environ, req, conn, path, input)?;
                if let Some(m) = mounted {
                    env.set_item(pyo3::intern!(py, "SCRIPT_NAME"), m.script_name.bind(py))?;
                }
                forwarded::apply(py, &env, &app.forwarded_allow, conn.peer.map(|p| p.ip()))?;
                (env, mounted)
            }
        };
        Ok(Some((env, mounted.map_or(&app.callable, |m| &m.callable))))
    }
}
