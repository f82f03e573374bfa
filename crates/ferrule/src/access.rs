//! The access log's lines: `--access-logformat` (gunicorn's atoms, parsed once at start into a
//! list of parts) or `--access-log-json` (one JSON object a line). Whoever answered a request
//! (the app, a static mount, the health path, the server's own refusals) describes it in a
//! [`Record`] and calls [`write`]; the line goes to the access log through [`crate::log`].
use std::fmt::Write as _;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use base64ct::Encoding as _;
use ferrule_proto::http1::RequestHead;

use crate::log;

#[path = "access_raw.rs"]
mod raw;
pub use raw::{Copied, Of, Partial, RawFields};

/// `--access-logformat`'s default: Apache's combined format, then the duration in
/// microseconds (the line Ferrule always wrote).
pub const DEFAULT_FORMAT: &str =
    r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)sus"#;

/// A request's header fields, looked up by name for the access log.
pub trait Fields {
    /// The first value of the field `name` (any case).
    fn field(&self, name: &[u8]) -> Option<&[u8]>;
    /// A CGI variable a front server sent (uwsgi, SCGI, FastCGI), by its upper-case name.
    fn cgi_var(&self, _name: &[u8]) -> Option<&[u8]> {
        None
    }
}

impl Fields for RequestHead {
    fn field(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// No header fields (a request refused before its head was read).
pub struct NoFields;

impl Fields for NoFields {
    fn field(&self, _name: &[u8]) -> Option<&[u8]> {
        None
    }
}

/// What the access log says of one answered request.
pub struct Record<'a> {
    /// The client's address (without the port), `-` when unknown.
    pub remote: String,
    pub method: &'a [u8],
    /// The target as the client sent it.
    pub target: &'a [u8],
    /// `HTTP/1.1`, or `SERVER_PROTOCOL` as a front server sent it.
    pub version: &'a [u8],
    pub fields: &'a dyn Fields,
    /// The response's header fields as encoded lines (`Name: value\r\n`); may be empty.
    pub response_headers: &'a [u8],
    pub status: u16,
    /// Body bytes sent.
    pub sent: u64,
    pub elapsed: Duration,
    pub request_id: Option<&'a [u8]>,
}

/// A piece of a parsed `--access-logformat`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// One of gunicorn's one-letter atoms.
    Atom(u8),
    /// `{name}i`: a request header (lower case).
    RequestHeader(Vec<u8>),
    /// `{name}o`: a response header (lower case).
    ResponseHeader(Vec<u8>),
    /// `{name}e`: an environ variable (upper case).
    Environ(Vec<u8>),
    RequestId,
    /// An atom gunicorn does not know: `-`, as gunicorn writes.
    Unknown,
}

/// A `--access-logformat` string that is not a Python %-format of named atoms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(String);

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FormatError {}

/// A parsed `--access-logformat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    parts: Vec<Part>,
}

impl Format {
    /// Parses a gunicorn format: `%(NAME)s` atoms, `%%` for a percent sign, other text as is.
    ///
    /// # Errors
    /// A `%` that starts neither `%(NAME)` with a conversion letter nor `%%`.
    pub fn parse(src: &str) -> Result<Self, FormatError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = src;
        while let Some(at) = rest.find('%') {
            lit.push_str(rest.get(..at).unwrap_or_default());
            let after = rest.get(at + 1..).unwrap_or_default();
            if let Some(tail) = after.strip_prefix('%') {
                lit.push('%');
                rest = tail;
                continue;
            }
            let Some(named) = after.strip_prefix('(') else {
                return Err(FormatError(format!(
                    "a % at byte {at} starts neither %(NAME)s nor %%"
                )));
            };
            let Some(close) = named.find(')') else {
                return Err(FormatError("an unclosed %( in the format".to_owned()));
            };
            let name = named.get(..close).unwrap_or_default();
            let mut tail = named.get(close + 1..).unwrap_or_default().chars();
            if !tail.next().is_some_and(|c| "sdr".contains(c)) {
                return Err(FormatError(format!(
                    "%({name}) is not followed by a conversion such as s"
                )));
            }
            rest = tail.as_str();
            if !lit.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut lit)));
            }
            parts.push(atom(name));
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Literal(lit));
        }
        Ok(Self { parts })
    }

    /// The line for `r`.
    #[must_use]
    pub fn render(&self, r: &Record<'_>) -> String {
        let mut out = String::with_capacity(200);
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Atom(a) => push_atom(&mut out, *a, r),
                Part::RequestHeader(n) => push_opt(&mut out, r.fields.field(n)),
                Part::ResponseHeader(n) => {
                    push_opt(&mut out, response_header(r.response_headers, n));
                }
                Part::Environ(n) => push_environ(&mut out, n, r),
                Part::RequestId => push_opt(&mut out, r.request_id),
                Part::Unknown => out.push('-'),
            }
        }
        out
    }
}

fn atom(name: &str) -> Part {
    if name == "request_id" || name == "{request_id}" {
        return Part::RequestId;
    }
    if let Some(inner) = name.strip_prefix('{') {
        if let Some((key, kind)) = inner.rsplit_once('}') {
            return match kind {
                "i" => Part::RequestHeader(key.to_ascii_lowercase().into_bytes()),
                "o" => Part::ResponseHeader(key.to_ascii_lowercase().into_bytes()),
                "e" => Part::Environ(key.to_ascii_uppercase().into_bytes()),
                _ => Part::Unknown,
            };
        }
        return Part::Unknown;
    }
    match name.as_bytes() {
        [a] if b"hlutrmUqHsBbfaTDMLp".contains(a) => Part::Atom(*a),
        _ => Part::Unknown,
    }
}

/// The value of the response header `name` (any case) among encoded lines.
pub(crate) fn response_header<'a>(lines: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    lines.split(|&c| c == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&c| c == b':')?;
        let (n, v) = line.split_at(colon);
        n.eq_ignore_ascii_case(name)
            .then(|| v.get(1..).unwrap_or_default().trim_ascii())
    })
}

fn split_target(target: &[u8]) -> (&[u8], &[u8]) {
    match target.iter().position(|&c| c == b'?') {
        Some(q) => (
            target.get(..q).unwrap_or_default(),
            target.get(q + 1..).unwrap_or_default(),
        ),
        None => (target, b""),
    }
}

fn push_atom(out: &mut String, a: u8, r: &Record<'_>) {
    let (path, query) = split_target(r.target);
    match a {
        b'h' => out.push_str(&r.remote),
        b'u' => push_opt(out, basic_user(r.fields).as_deref()),
        b't' => {
            out.push('[');
            out.push_str(&log::timestamp(true));
            out.push(']');
        }
        b'r' => {
            push_escaped(out, r.method);
            out.push(' ');
            push_target(out, r.target);
            out.push(' ');
            push_escaped(out, r.version);
        }
        b'm' => push_escaped(out, r.method),
        b'U' => push_target(out, path),
        b'q' => push_target(out, query),
        b'H' => push_escaped(out, r.version),
        b's' => push_num(out, u64::from(r.status)),
        b'B' => push_num(out, r.sent),
        b'b' if r.sent > 0 => push_num(out, r.sent),
        b'f' => push_opt(out, r.fields.field(b"referer")),
        b'a' => push_opt(out, r.fields.field(b"user-agent")),
        b'T' => push_num(out, r.elapsed.as_secs()),
        b'D' => push_num(
            out,
            u64::try_from(r.elapsed.as_micros()).unwrap_or(u64::MAX),
        ),
        b'M' => push_num(
            out,
            u64::try_from(r.elapsed.as_millis()).unwrap_or(u64::MAX),
        ),
        b'L' => {
            let _ = write!(
                out,
                "{}.{:06}",
                r.elapsed.as_secs(),
                r.elapsed.subsec_micros()
            );
        }
        b'p' => {
            let _ = write!(out, "<{}>", std::process::id());
        }
        // `l` (identd) and an empty `b`.
        _ => out.push('-'),
    }
}

/// `{NAME}e`: the environ variables the request defines, by their CGI names.
fn push_environ(out: &mut String, name: &[u8], r: &Record<'_>) {
    let (path, query) = split_target(r.target);
    let value: Option<std::borrow::Cow<'_, [u8]>> = match name {
        b"REQUEST_METHOD" => Some(r.method.into()),
        b"PATH_INFO" => Some(path.into()),
        b"QUERY_STRING" => Some(query.into()),
        b"RAW_URI" | b"REQUEST_URI" => Some(r.target.into()),
        b"SERVER_PROTOCOL" => Some(r.version.into()),
        b"REMOTE_ADDR" => Some(r.remote.as_bytes().into()),
        b"FERRULE.REQUEST_ID" => r.request_id.map(Into::into),
        b"CONTENT_TYPE" => r.fields.field(b"content-type").map(Into::into),
        b"CONTENT_LENGTH" => r.fields.field(b"content-length").map(Into::into),
        _ => match name.strip_prefix(b"HTTP_") {
            Some(h) => {
                let field: Vec<u8> = h
                    .iter()
                    .map(|&c| if c == b'_' { b'-' } else { c })
                    .collect();
                r.fields
                    .field(&field)
                    .or_else(|| r.fields.cgi_var(name))
                    .map(Into::into)
            }
            None => r.fields.cgi_var(name).map(Into::into),
        },
    };
    push_opt(out, value.as_deref());
}

/// The user name of a Basic `Authorization`, as gunicorn's `u`.
fn basic_user(fields: &dyn Fields) -> Option<Vec<u8>> {
    let auth = fields.field(b"authorization")?;
    let (scheme, cred) = auth.trim_ascii().split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let cred = std::str::from_utf8(cred.trim_ascii()).ok()?;
    let decoded = base64ct::Base64::decode_vec(cred).ok()?;
    let user = decoded.split(|&c| c == b':').next()?;
    (!user.is_empty()).then(|| user.to_vec())
}

fn push_num(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

fn push_opt(out: &mut String, v: Option<&[u8]>) {
    match v {
        Some(v) => push_escaped(out, v),
        None => out.push('-'),
    }
}

/// A target as sent, with `"` as `%22` (as the line always had it) and any other byte a
/// client could slip in escaped.
fn push_target(out: &mut String, t: &[u8]) {
    for chunk in t.split_inclusive(|&c| c == b'"') {
        match chunk.strip_suffix(b"\"") {
            Some(c) => {
                push_escaped(out, c);
                out.push_str("%22");
            }
            None => push_escaped(out, chunk),
        }
    }
}

/// A value from the client or the app for a text line (Apache's escaping): `"` and `\` with a
/// backslash, control bytes and bytes that are not UTF-8 as `\xHH`.
fn push_escaped(out: &mut String, v: &[u8]) {
    for chunk in v.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    let _ = write!(out, "\\x{:02x}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

fn push_json_opt(out: &mut String, v: Option<&[u8]>) {
    match v {
        Some(v) => log::push_json_str(out, v),
        None => out.push_str("null"),
    }
}

/// The `--access-log-json` line for `r`.
#[must_use]
pub fn json_line(r: &Record<'_>) -> String {
    let (path, query) = split_target(r.target);
    let mut out = String::with_capacity(320);
    out.push_str("{\"time\":\"");
    out.push_str(&log::iso_timestamp());
    out.push_str("\",\"method\":");
    log::push_json_str(&mut out, r.method);
    out.push_str(",\"path\":");
    log::push_json_str(&mut out, path);
    out.push_str(",\"query\":");
    log::push_json_str(&mut out, query);
    out.push_str(",\"protocol\":");
    log::push_json_str(&mut out, r.version);
    let _ = write!(
        out,
        ",\"status\":{},\"bytes\":{},\"duration_ms\":{:.3},\"remote\":",
        r.status,
        r.sent,
        r.elapsed.as_secs_f64() * 1000.0
    );
    log::push_json_str(&mut out, r.remote.as_bytes());
    out.push_str(",\"user_agent\":");
    push_json_opt(&mut out, r.fields.field(b"user-agent"));
    out.push_str(",\"referer\":");
    push_json_opt(&mut out, r.fields.field(b"referer"));
    out.push_str(",\"request_id\":");
    push_json_opt(&mut out, r.request_id);
    let _ = write!(out, ",\"pid\":{}}}", std::process::id());
    out
}

/// How access-log lines are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Style {
    Text(Format),
    Json,
}

static STYLE: RwLock<Option<Arc<Style>>> = RwLock::new(None);

/// Sets the access log's style for this process (and the workers it forks).
pub fn configure(style: Style) {
    *STYLE.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(style));
}

/// A [`Record`]'s `remote`, made only when an access log will write it (the metrics do not
/// need it, and formatting an address costs more than counting the request).
pub fn remote(make: impl FnOnce() -> String) -> String {
    if log::access_enabled() {
        make()
    } else {
        String::new()
    }
}

/// Whether a [`Record`] is wanted at all (an access log is open, or metrics are counted):
/// only then is the time a request starts taken.
#[inline]
#[must_use]
pub fn wanted() -> bool {
    log::access_enabled() || crate::metrics::enabled()
}

/// Writes `r`'s line to the access log, if one is open, and counts it in the metrics.
pub fn write(r: &Record<'_>) {
    if crate::metrics::enabled() {
        let declared = r
            .fields
            .field(b"content-length")
            .or_else(|| r.fields.cgi_var(b"CONTENT_LENGTH"))
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
            .unwrap_or(0);
        crate::metrics::observe(r.method, r.version, r.status, declared, r.sent, r.elapsed);
    }
    if !log::access_enabled() {
        return;
    }
    let style = STYLE.read().unwrap_or_else(PoisonError::into_inner).clone();
    let line = match style.as_deref() {
        Some(Style::Json) => json_line(r),
        Some(Style::Text(f)) => f.render(r),
        None => match Format::parse(DEFAULT_FORMAT) {
            Ok(f) => f.render(r),
            Err(_) => return,
        },
    };
    log::access(&line);
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
