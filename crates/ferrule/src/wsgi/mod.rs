//! The WSGI bridge: the only place that touches Python objects. A transport (in `server/`)
//! hands it a [`Request`], a response [`Sink`](sink::Sink) and the request's
//! [`BodySource`](sink::BodySource); [`serve`] runs the request through the app and sends its
//! response through the sink, without knowing which protocol carries either.
use ferrule_proto::cgi::{percent_decode, split_target};
use ferrule_proto::http1::RequestHead;
use pyo3::prelude::*;

use crate::log::AccessEntry;
use crate::net::ConnInfo;

pub mod app;
pub mod config_file;
pub mod environ;
mod exchange;
pub mod file_wrapper;
pub mod forwarded;
pub mod gateway;
pub mod hooks;
pub mod input;
mod known_headers;
pub mod process;
pub mod response;
pub mod sink;
pub mod threads;
mod writer;

pub use app::{
    build_app, format_exception, import_app, load, prepare, register_stack_dump, source_dir, App,
};
pub use exchange::{resume, serve, Exchange, Outcome, Served};
use gateway::CgiRequest;

/// Where the app's path lives under `--root-path`: the PATH_INFO, or None for a 404.
fn path_info<'a>(root: &str, path: &'a [u8]) -> Option<&'a [u8]> {
    // `OPTIONS *` asks about the server as a whole: the app sees PATH_INFO "*" (as in gunicorn).
    if path == b"*" {
        return Some(path);
    }
    let rest = path.strip_prefix(root.as_bytes())?;
    (rest.is_empty() || rest.starts_with(b"/")).then_some(rest)
}

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

    /// The request target as the client sent it.
    #[must_use]
    pub fn target(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Self::Fields(h) => std::borrow::Cow::Borrowed(h.target()),
            Self::Cgi(c) => std::borrow::Cow::Owned(c.target()),
        }
    }

    /// What the access log says of the request; `target` holds the target.
    fn access_entry<'a>(&'a self, conn: &ConnInfo, target: &'a [u8]) -> AccessEntry<'a> {
        let peer = || conn.peer.map_or_else(|| "-".to_owned(), |p| p.ip().to_string());
        match self {
            Self::Fields(head) => {
                let field = |name: &[u8]| {
                    head.fields()
                        .find(|(n, _)| n.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v)
                };
                AccessEntry {
                    remote: peer(),
                    method: head.method(),
                    target,
                    version: head.version.as_str().as_bytes(),
                    referer: field(b"referer"),
                    agent: field(b"user-agent"),
                }
            }
            Self::Cgi(req) => AccessEntry {
                remote: req.header(b"REMOTE_ADDR").map_or_else(peer, |a| {
                    String::from_utf8_lossy(a).into_owned()
                }),
                method: req.method(),
                target,
                version: req.protocol(),
                referer: req.header(b"HTTP_REFERER"),
                agent: req.header(b"HTTP_USER_AGENT"),
            },
        }
    }
}

impl Request {
    /// Builds the environ; Ok(None) when the path lies outside `--root-path` (a 404).
    fn environ<'py>(
        &self,
        py: Python<'py>,
        app: &App,
        conn: &ConnInfo,
        input: Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyDict>>> {
        match self {
            Self::Fields(head) => {
                let target = split_target(head.target());
                let decoded = percent_decode(target.path);
                let Some(path) = path_info(&app.root_path, &decoded) else {
                    return Ok(None);
                };
                let shared = input.is(app.empty_input.bind(py));
                let env =
                    environ::build(py, &app.environ, head, target, conn, path, input, shared)?;
                if forwarded::any_in_head(head) {
                    forwarded::apply(py, &env, &app.forwarded_allow, conn.peer.map(|p| p.ip()))?;
                }
                Ok(Some(env))
            }
            Self::Cgi(req) => {
                let full = req.path();
                let Some(path) = path_info(&app.root_path, &full) else {
                    return Ok(None);
                };
                let env = gateway::build(py, &app.environ, req, conn, path, input)?;
                forwarded::apply(py, &env, &app.forwarded_allow, conn.peer.map(|p| p.ip()))?;
                Ok(Some(env))
            }
        }
    }
}


#[cfg(test)]
mod tests {
    #[test]
    fn root_path_mounts_on_segment_boundaries() {
        assert_eq!(super::path_info("", b"/x"), Some(&b"/x"[..]));
        assert_eq!(super::path_info("/app", b"/app/x"), Some(&b"/x"[..]));
        assert_eq!(super::path_info("/app", b"/app"), Some(&b""[..]));
        assert_eq!(super::path_info("/app", b"/application"), None);
        assert_eq!(super::path_info("/app", b"/other"), None);
        assert_eq!(super::path_info("", b"*"), Some(&b"*"[..]));
        assert_eq!(super::path_info("/app", b"*"), Some(&b"*"[..]));
    }
}
