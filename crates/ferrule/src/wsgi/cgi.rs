//! Requests that come through a front server: CGI variables instead of header fields. They become the environ as sent, where PEP 3333 allows, with the few fixes a
//! front server's stock parameters need.
use std::borrow::Cow;

use ferrule_proto::CgiVars;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::environ::{latin1, EnvironBase};
use crate::net::ConnInfo;

/// One request from a front server.
pub struct CgiRequest {
    pub vars: CgiVars,
    /// The body's length (CONTENT_LENGTH); the transport delivers the body.
    pub content_length: u64,
    /// The front server always sends CONTENT_LENGTH, so "0" cannot tell "no body" apart.
    pub length_always_sent: bool,
}

impl CgiRequest {
    pub fn method(&self) -> &[u8] {
        self.vars.get(b"REQUEST_METHOD").unwrap_or(b"GET")
    }

    pub fn is_head(&self) -> bool {
        self.method() == b"HEAD"
    }

    /// The target as the client sent it: REQUEST_URI, else DOCUMENT_URI plus the query.
    pub fn target(&self) -> Cow<'_, [u8]> {
        ferrule_proto::cgi::gateway_target(&self.vars)
    }

    pub fn protocol(&self) -> &[u8] {
        self.vars.get(b"SERVER_PROTOCOL").unwrap_or(b"HTTP/1.0")
    }

    /// The request path the app sees, before `--root-path` is taken off (see
    /// [`ferrule_proto::cgi::gateway_path_info`]).
    pub fn path(&self) -> Cow<'_, [u8]> {
        ferrule_proto::cgi::gateway_path_info(&self.vars)
    }

    /// `https` when the front server says the client came over TLS.
    pub fn scheme(&self) -> &'static str {
        let on =
            |v: &[u8]| v.eq_ignore_ascii_case(b"on") || v == b"1" || v.eq_ignore_ascii_case(b"yes");
        if self.vars.get(b"HTTPS").is_some_and(on)
            || self
                .vars
                .get(b"REQUEST_SCHEME")
                .is_some_and(|s| s.eq_ignore_ascii_case(b"https"))
        {
            "https"
        } else {
            "http"
        }
    }

    /// A request header by its CGI name (`HTTP_USER_AGENT`), for the access log.
    pub fn header(&self, cgi_name: &[u8]) -> Option<&[u8]> {
        self.vars.get(cgi_name)
    }
}

impl crate::access::Fields for CgiRequest {
    fn field(&self, name: &[u8]) -> Option<&[u8]> {
        self.vars.field(name)
    }

    fn cgi_var(&self, name: &[u8]) -> Option<&[u8]> {
        self.vars.get(name)
    }
}

/// Builds the environ of a gateway request. `path_info`: the app's path under `--root-path`.
pub fn build<'py>(
    py: Python<'py>,
    base: &EnvironBase,
    req: &CgiRequest,
    conn: &ConnInfo,
    path_info: &[u8],
    input: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let env = base.copy(py)?;
    for (name, value) in req.vars.iter() {
        // Names are the front server's CGI variables; the few that describe the request's
        // framing or that the server decides are set below.
        if name.is_empty()
            || matches!(
                name,
                b"SCRIPT_NAME" | b"PATH_INFO" | b"CONTENT_LENGTH" | b"CONTENT_TYPE"
            )
            || name.starts_with(b"wsgi.")
        {
            continue;
        }
        env.set_item(latin1(py, name), latin1(py, value))?;
    }
    env.set_item(intern!(py, "REQUEST_METHOD"), latin1(py, req.method()))?;
    env.set_item(intern!(py, "PATH_INFO"), latin1(py, path_info))?;
    if env.get_item(intern!(py, "QUERY_STRING"))?.is_none() {
        // Not sent: the query of REQUEST_URI, as over HTTP.
        let target = req.target();
        let query = ferrule_proto::cgi::split_target(&target).query;
        env.set_item(intern!(py, "QUERY_STRING"), latin1(py, query))?;
    }
    let target = latin1(py, &req.target());
    if env.get_item(intern!(py, "REQUEST_URI"))?.is_none() {
        env.set_item(intern!(py, "REQUEST_URI"), &target)?;
    }
    env.set_item(intern!(py, "RAW_URI"), target)?;
    if env.get_item(intern!(py, "SERVER_PROTOCOL"))?.is_none() {
        env.set_item(intern!(py, "SERVER_PROTOCOL"), intern!(py, "HTTP/1.0"))?;
    }
    // SCGI always sends CONTENT_LENGTH, "0" without a body, so there "0" is taken as absent,
    // which is what a request without a body gives over HTTP. Elsewhere it is passed as sent.
    let sent = req
        .vars
        .get(b"CONTENT_LENGTH")
        .is_some_and(|v| !v.is_empty());
    if req.content_length > 0 || (sent && !req.length_always_sent) {
        env.set_item(
            intern!(py, "CONTENT_LENGTH"),
            itoa::Buffer::new().format(req.content_length),
        )?;
    }
    if let Some(ct) = req.vars.get(b"CONTENT_TYPE").filter(|v| !v.is_empty()) {
        env.set_item(intern!(py, "CONTENT_TYPE"), latin1(py, ct))?;
    }
    env.set_item(
        intern!(py, "wsgi.url_scheme"),
        super::environ::scheme(py, req.scheme()),
    )?;
    if env.get_item(intern!(py, "SERVER_NAME"))?.is_none()
        || env.get_item(intern!(py, "SERVER_PORT"))?.is_none()
    {
        super::environ::set_addr(
            py,
            &env,
            conn.local,
            intern!(py, "SERVER_NAME"),
            intern!(py, "SERVER_PORT"),
            &mut base.memo(),
        )?;
    }
    if env.get_item(intern!(py, "REMOTE_ADDR"))?.is_none() {
        super::environ::set_remote(py, &env, conn.peer, &mut base.memo())?;
    }
    env.set_item(intern!(py, "wsgi.input"), input)?;
    Ok(env)
}
