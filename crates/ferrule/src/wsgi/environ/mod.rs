//! The WSGI environ: a base dict built once per worker, copied and filled per request.
//!
//! [`EnvironBase`] holds the prebuilt dicts; [`build`] copies one for a request and hands
//! each entry to a `Sink`: `Fill` sets every value, `Match` only those that differ from the
//! [`Template`] of a recent request. What a worker keeps between requests (the strings and
//! the template) is its memo, in `memo.rs`.
use std::net::SocketAddr;
use std::sync::{Mutex, TryLockError};

use ferrule_proto::cgi::{split_host_port, target_scheme, Target};
use ferrule_proto::http1::{BodyKind, RequestHead};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::net::{ConnInfo, TlsInfo};

mod memo;

use memo::{private_header, Kept, TEMPLATE_MISSES};
pub use memo::{Memo, MemoRef, Template};

/// Headers common enough to keep their `HTTP_*` key as an interned string.
const COMMON: [(&str, &str); 22] = [
    ("host", "HTTP_HOST"),
    ("user-agent", "HTTP_USER_AGENT"),
    ("accept", "HTTP_ACCEPT"),
    ("accept-encoding", "HTTP_ACCEPT_ENCODING"),
    ("accept-language", "HTTP_ACCEPT_LANGUAGE"),
    ("connection", "HTTP_CONNECTION"),
    ("cookie", "HTTP_COOKIE"),
    ("referer", "HTTP_REFERER"),
    ("cache-control", "HTTP_CACHE_CONTROL"),
    ("origin", "HTTP_ORIGIN"),
    ("authorization", "HTTP_AUTHORIZATION"),
    ("if-none-match", "HTTP_IF_NONE_MATCH"),
    ("if-modified-since", "HTTP_IF_MODIFIED_SINCE"),
    ("x-forwarded-for", "HTTP_X_FORWARDED_FOR"),
    ("x-forwarded-proto", "HTTP_X_FORWARDED_PROTO"),
    ("x-forwarded-host", "HTTP_X_FORWARDED_HOST"),
    ("x-real-ip", "HTTP_X_REAL_IP"),
    ("x-requested-with", "HTTP_X_REQUESTED_WITH"),
    (
        "upgrade-insecure-requests",
        "HTTP_UPGRADE_INSECURE_REQUESTS",
    ),
    ("pragma", "HTTP_PRAGMA"),
    ("expect", "HTTP_EXPECT"),
    ("content-encoding", "HTTP_CONTENT_ENCODING"),
];

/// What every request's environ starts from.
pub struct EnvironBase {
    base: Py<PyDict>,
    /// `base` plus a placeholder for every key an HTTP request always sets, in a table with
    /// room for its headers: copying it and replacing values never grows the dict.
    http: Py<PyDict>,
    common: Vec<(&'static [u8], Py<PyString>)>,
    memo: Mutex<Memo>,
}

/// Keys every HTTP request sets (REMOTE_PORT is removed again for Unix-socket peers).
const HTTP_KEYS: [&str; 12] = [
    "REQUEST_METHOD",
    "PATH_INFO",
    "QUERY_STRING",
    "REQUEST_URI",
    "RAW_URI",
    "SERVER_PROTOCOL",
    "wsgi.url_scheme",
    "wsgi.input",
    "SERVER_NAME",
    "SERVER_PORT",
    "REMOTE_ADDR",
    "REMOTE_PORT",
];

/// The HTTP base: `base`, the placeholders, and spare room. A dict copy keeps the table size
/// of its source (CPython clones the keys table when few entries were deleted), so keys
/// inserted and deleted again here leave each copy room for a request's header keys.
fn http_base<'py>(py: Python<'py>, base: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
    let d = base.copy()?;
    for k in HTTP_KEYS {
        d.set_item(PyString::intern(py, k), "")?;
    }
    let spare: Vec<String> = (0..10).map(|i| format!("ferrule.spare.{i}")).collect();
    for k in &spare {
        d.set_item(k, py.None())?;
    }
    for k in &spare {
        d.del_item(k)?;
    }
    Ok(d)
}

/// Settings the base environ is built from.
pub struct BaseSettings<'a> {
    pub root_path: &'a str,
    pub multithread: bool,
    pub multiprocess: bool,
}

impl EnvironBase {
    pub fn new(py: Python<'_>, s: &BaseSettings<'_>) -> PyResult<Self> {
        let d = PyDict::new(py);
        d.set_item(intern!(py, "wsgi.version"), (1, 0))?;
        d.set_item(
            intern!(py, "wsgi.errors"),
            Py::new(py, super::file_wrapper::Errors)?,
        )?;
        d.set_item(intern!(py, "wsgi.multithread"), s.multithread)?;
        d.set_item(intern!(py, "wsgi.multiprocess"), s.multiprocess)?;
        d.set_item(intern!(py, "wsgi.run_once"), false)?;
        d.set_item(intern!(py, "wsgi.input_terminated"), true)?;
        d.set_item(
            intern!(py, "wsgi.file_wrapper"),
            py.get_type::<super::file_wrapper::FileWrapper>(),
        )?;
        d.set_item(
            intern!(py, "SERVER_SOFTWARE"),
            concat!("ferrule/", env!("CARGO_PKG_VERSION")),
        )?;
        d.set_item(intern!(py, "SCRIPT_NAME"), s.root_path)?;
        let common = COMMON
            .iter()
            .map(|(n, k)| (n.as_bytes(), PyString::intern(py, k).unbind()))
            .collect();
        let http = http_base(py, &d)?;
        Ok(Self {
            base: d.unbind(),
            http: http.unbind(),
            common,
            memo: Mutex::new(Memo::default()),
        })
    }

    /// The worker's [`Memo`] while one environ is built. Never waits: when another app
    /// thread holds it, this environ's strings are built afresh (a wait here, with the GIL
    /// held, could deadlock against a holder waiting for the GIL).
    pub fn memo(&self) -> MemoRef<'_> {
        MemoRef(match self.memo.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        })
    }

    /// A fresh environ holding the keys every request shares.
    pub fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.base.bind(py).copy()
    }

    fn header_key<'py>(
        &self,
        py: Python<'py>,
        name: &[u8],
        scratch: &mut Vec<u8>,
        memo: &mut MemoRef<'_>,
    ) -> Option<Bound<'py, PyString>> {
        // Lower-case the name once, then compare whole names of the same length.
        let mut lower = [0u8; 32];
        if let Some(buf) = lower.get_mut(..name.len()) {
            for (d, c) in buf.iter_mut().zip(name) {
                *d = c.to_ascii_lowercase();
            }
            for (n, k) in &self.common {
                if *n == &*buf {
                    return Some(k.bind(py).clone());
                }
            }
        }
        if !ferrule_proto::cgi::cgi_header_name(name, scratch) {
            return None;
        }
        Some(memo.str(py, scratch))
    }
}

/// PEP 3333's "bytes as str": each byte one code point (latin-1).
pub fn latin1<'py>(py: Python<'py>, b: &[u8]) -> Bound<'py, PyString> {
    let len = pyo3::ffi::Py_ssize_t::try_from(b.len()).unwrap_or(pyo3::ffi::Py_ssize_t::MAX);
    // SAFETY: the pointer and length describe `b`, which outlives the call; latin-1 decoding
    // accepts every byte, so the only failure is memory, handled below. The GIL is held (py).
    let obj = unsafe {
        Bound::from_owned_ptr_or_opt(
            py,
            pyo3::ffi::PyUnicode_DecodeLatin1(b.as_ptr().cast(), len, std::ptr::null()),
        )
    };
    match obj.map(Bound::cast_into::<PyString>) {
        Some(Ok(s)) => s,
        // Out of memory: an empty str keeps the request going (the error is cleared).
        _ => {
            let _ = PyErr::take(py);
            PyString::new(py, "")
        }
    }
}

fn method<'py>(py: Python<'py>, m: &[u8]) -> Bound<'py, PyString> {
    match m {
        b"GET" => intern!(py, "GET").clone(),
        b"POST" => intern!(py, "POST").clone(),
        b"HEAD" => intern!(py, "HEAD").clone(),
        _ => latin1(py, m),
    }
}

/// `wsgi.url_scheme`: "http" and "https" interned once (not looked up per request).
pub fn scheme<'py>(py: Python<'py>, scheme: &str) -> Bound<'py, PyString> {
    match scheme {
        "http" => intern!(py, "http").clone(),
        "https" => intern!(py, "https").clone(),
        other => PyString::intern(py, other),
    }
}

/// An environ value as a request gives it.
enum Val<'a, 'py> {
    /// An object as it is.
    Obj(Bound<'py, PyAny>),
    /// Bytes for a latin-1 `str` (the [`Memo`]'s when it has one).
    Str(&'a [u8]),
    /// Bytes for a latin-1 `str` of a credential: never memoised, never kept.
    Private(&'a [u8]),
    /// An object of this request alone (its own `wsgi.input`): never kept.
    Own(Bound<'py, PyAny>),
}

impl<'py> Val<'_, 'py> {
    fn to_obj(&self, py: Python<'py>, memo: &mut MemoRef<'_>) -> Bound<'py, PyAny> {
        match self {
            Self::Obj(o) | Self::Own(o) => o.clone(),
            Self::Str(b) => memo.str(py, b).into_any(),
            Self::Private(b) => latin1(py, b).into_any(),
        }
    }
}

/// Whether `a` and `b` hold the same bytes: compared in place, a word at a time (the
/// values are short; a call to `memcmp` per value cost more than the comparison).
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (wa.remainder(), wb.remainder());
    let word = |w: &[u8]| <[u8; 8]>::try_from(w).map_or(0, u64::from_ne_bytes);
    wa.zip(wb).all(|(x, y)| word(x) == word(y)) && ra.iter().zip(rb).all(|(x, y)| x == y)
}

/// Receives a request's environ entries, in order.
trait Sink<'py> {
    /// One entry. Ok(false): the template does not fit, stop.
    fn put(
        &mut self,
        memo: &mut MemoRef<'_>,
        key: &Bound<'py, PyString>,
        value: Val<'_, 'py>,
    ) -> PyResult<bool>;
    /// A name repeated in the head: `value` is joined to the earlier one with `sep`, or
    /// replaces it (`None`).
    fn join(
        &mut self,
        key: &Bound<'py, PyString>,
        value: &Bound<'py, PyAny>,
        sep: Option<&str>,
    ) -> PyResult<bool>;
    /// A key of the HTTP base this request does not have.
    fn remove(&mut self, key: &Bound<'py, PyString>) -> PyResult<bool>;
}

/// The keys set, in order, what a [`Template`] keeps of their values, and the bytes kept.
type Recorded = (Vec<Py<PyString>>, Vec<Kept>, Vec<u8>);

/// Sets every entry on a copy of the HTTP base, recording a [`Template`] if asked to.
struct Fill<'a, 'py> {
    env: &'a Bound<'py, PyDict>,
    record: Option<Recorded>,
}

impl<'py> Sink<'py> for Fill<'_, 'py> {
    fn put(
        &mut self,
        memo: &mut MemoRef<'_>,
        key: &Bound<'py, PyString>,
        value: Val<'_, 'py>,
    ) -> PyResult<bool> {
        let obj = value.to_obj(self.env.py(), memo);
        self.env.set_item(key, &obj)?;
        if let Some((keys, kept, bytes)) = &mut self.record {
            keys.push(key.clone().unbind());
            kept.push(match value {
                Val::Obj(_) => Kept::Obj(obj.unbind()),
                Val::Str(b) => {
                    bytes.extend_from_slice(b);
                    Kept::Bytes(bytes.len() - b.len()..bytes.len())
                }
                Val::Own(_) | Val::Private(_) => Kept::Nothing,
            });
        }
        Ok(true)
    }

    fn join(
        &mut self,
        key: &Bound<'py, PyString>,
        value: &Bound<'py, PyAny>,
        sep: Option<&str>,
    ) -> PyResult<bool> {
        self.record = None;
        let prev = match sep {
            Some(sep) => self.env.get_item(key)?.map(|p| (p, sep)),
            None => None,
        };
        match prev {
            Some((prev, sep)) => {
                let joined = format!(
                    "{}{sep}{}",
                    prev.cast::<PyString>()?.to_cow()?,
                    value.cast::<PyString>()?.to_cow()?
                );
                self.env.set_item(key, joined)?;
            }
            None => self.env.set_item(key, value)?,
        }
        Ok(true)
    }

    fn remove(&mut self, key: &Bound<'py, PyString>) -> PyResult<bool> {
        self.record = None;
        if self.env.contains(key)? {
            self.env.del_item(key)?;
        }
        Ok(true)
    }
}

/// Compares each entry with a [`Template`], setting on a copy of it only the values that
/// differ.
struct Match<'a, 'py> {
    env: &'a Bound<'py, PyDict>,
    template: &'a Template,
    next: usize,
}

impl<'py> Sink<'py> for Match<'_, 'py> {
    // Inlined: one call per entry of every request, mostly a comparison (measured: 500
    // instructions less per request than a call each).
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn put(
        &mut self,
        memo: &mut MemoRef<'_>,
        key: &Bound<'py, PyString>,
        value: Val<'_, 'py>,
    ) -> PyResult<bool> {
        let t = self.template;
        let (Some(k), Some(kept)) = (t.keys.get(self.next), t.kept.get(self.next)) else {
            return Ok(false);
        };
        if k.as_ptr() != key.as_ptr() {
            return Ok(false);
        }
        let same = match (&value, kept) {
            (Val::Obj(o), Kept::Obj(k)) => o.as_ptr() == k.as_ptr(),
            (Val::Str(b), Kept::Bytes(k)) => {
                t.bytes.get(k.clone()).is_some_and(|k| same_bytes(k, b))
            }
            _ => false,
        };
        if !same {
            self.env.set_item(key, value.to_obj(self.env.py(), memo))?;
        }
        self.next += 1;
        Ok(true)
    }

    fn join(
        &mut self,
        _: &Bound<'py, PyString>,
        _: &Bound<'py, PyAny>,
        _: Option<&str>,
    ) -> PyResult<bool> {
        Ok(false)
    }

    fn remove(&mut self, _: &Bound<'py, PyString>) -> PyResult<bool> {
        Ok(false)
    }
}

/// The TLS session's variables, named as Apache's mod_ssl names them: `HTTPS`,
/// `SSL_PROTOCOL`, `SSL_CIPHER`, and with a verified client certificate `SSL_CLIENT_VERIFY`,
/// `SSL_CLIENT_S_DN`, `SSL_CLIENT_I_DN`, `SSL_CLIENT_SERIAL`, `SSL_CLIENT_CERT`.
pub fn put_tls(py: Python<'_>, env: &Bound<'_, PyDict>, tls: &TlsInfo) -> PyResult<()> {
    env.set_item(intern!(py, "HTTPS"), intern!(py, "on"))?;
    env.set_item(intern!(py, "SSL_PROTOCOL"), tls.protocol)?;
    env.set_item(intern!(py, "SSL_CIPHER"), tls.cipher)?;
    match &tls.client {
        Some(c) => {
            env.set_item(intern!(py, "SSL_CLIENT_VERIFY"), intern!(py, "SUCCESS"))?;
            env.set_item(intern!(py, "SSL_CLIENT_S_DN"), &c.subject)?;
            env.set_item(intern!(py, "SSL_CLIENT_I_DN"), &c.issuer)?;
            env.set_item(intern!(py, "SSL_CLIENT_SERIAL"), &c.serial)?;
            env.set_item(intern!(py, "SSL_CLIENT_CERT"), &c.pem)?;
        }
        None => env.set_item(intern!(py, "SSL_CLIENT_VERIFY"), intern!(py, "NONE"))?,
    }
    Ok(())
}

/// Fills a copy of the base environ for one request. `parts`: `head`'s target, split;
/// `keep_input`: `input` is the worker's shared one (no body), which a [`Template`] may hold.
#[allow(clippy::too_many_arguments)]
pub fn build<'py>(
    py: Python<'py>,
    base: &EnvironBase,
    head: &RequestHead,
    parts: Target<'_>,
    conn: &ConnInfo,
    path_info: &[u8],
    input: Bound<'py, PyAny>,
    keep_input: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let mut memo = base.memo();
    let template = memo.0.as_mut().and_then(|m| m.template.take());
    if let Some(t) = template.as_ref().filter(|t| t.fields == head.headers.len()) {
        let env = t.dict.bind(py).copy()?;
        let mut m = Match {
            env: &env,
            template: t,
            next: 0,
        };
        let fits = entries(
            py, base, head, parts, conn, path_info, &input, keep_input, &mut memo, &mut m,
        )?;
        if fits && m.next == t.keys.len() {
            if let Some(m) = memo.0.as_mut() {
                m.template = template;
                m.misses = 0;
            }
            return Ok(env);
        }
    }
    // No template, or it does not fit: every entry is set on a copy of the HTTP base.
    let record = match memo.0.as_mut() {
        Some(m) if template.is_some() && m.misses + 1 < TEMPLATE_MISSES => {
            m.misses += 1;
            m.template = template;
            false
        }
        Some(m) => {
            m.misses = 0;
            true
        }
        None => false,
    };
    let env = base.http.bind(py).copy()?;
    let mut fill = Fill {
        env: &env,
        record: record.then(|| {
            let n = HTTP_KEYS.len() + head.headers.len();
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::new())
        }),
    };
    entries(
        py, base, head, parts, conn, path_info, &input, keep_input, &mut memo, &mut fill,
    )?;
    if let (Some((keys, kept, bytes)), Some(m)) = (fill.record, memo.0.as_mut()) {
        let dict = env.copy()?;
        for (k, v) in keys.iter().zip(&kept) {
            if matches!(v, Kept::Nothing) {
                dict.set_item(k, py.None())?;
            }
        }
        m.template = Some(Template {
            dict: dict.unbind(),
            keys,
            kept,
            bytes,
            fields: head.headers.len(),
        });
    }
    Ok(env)
}

/// Hands each of a request's environ entries to `sink`, in order. Ok(false) when the sink
/// stopped.
#[allow(clippy::too_many_arguments)]
#[inline]
fn entries<'py>(
    py: Python<'py>,
    base: &EnvironBase,
    head: &RequestHead,
    parts: Target<'_>,
    conn: &ConnInfo,
    path_info: &[u8],
    input: &Bound<'py, PyAny>,
    keep_input: bool,
    memo: &mut MemoRef<'_>,
    sink: &mut impl Sink<'py>,
) -> PyResult<bool> {
    let target = head.target();
    // An absolute-form target says how the request came (RFC 9112 section 3.2.2).
    let url_scheme = target_scheme(target).unwrap_or(conn.scheme);
    let version = match head.version {
        ferrule_proto::http1::Version::Http10 => intern!(py, "HTTP/1.0"),
        ferrule_proto::http1::Version::Http11 => intern!(py, "HTTP/1.1"),
        ferrule_proto::http1::Version::Http2 => intern!(py, "HTTP/2"),
    };
    let fixed = [
        (
            intern!(py, "REQUEST_METHOD"),
            Val::Obj(method(py, head.method()).into_any()),
        ),
        (intern!(py, "PATH_INFO"), Val::Str(path_info)),
        (intern!(py, "QUERY_STRING"), Val::Str(parts.query)),
        (intern!(py, "REQUEST_URI"), Val::Str(target)),
        (intern!(py, "RAW_URI"), Val::Str(target)),
        (
            intern!(py, "SERVER_PROTOCOL"),
            Val::Obj(version.clone().into_any()),
        ),
        (
            intern!(py, "wsgi.url_scheme"),
            Val::Obj(scheme(py, url_scheme).into_any()),
        ),
    ];
    for (k, v) in fixed {
        if !sink.put(memo, k, v)? {
            return Ok(false);
        }
    }
    let input = if keep_input {
        Val::Obj(input.clone())
    } else {
        Val::Own(input.clone())
    };
    if !sink.put(memo, intern!(py, "wsgi.input"), input)? {
        return Ok(false);
    }

    // SERVER_NAME / SERVER_PORT: absolute-form authority (which the parser also made the
    // Host field's value), else Host, else the bound address.
    let default_port: &[u8] = if url_scheme == "https" { b"443" } else { b"80" };
    let (name, port) = match parts
        .authority
        .or_else(|| head.host())
        .filter(|h| !h.is_empty())
    {
        Some(authority) => {
            let (name, port) = split_host_port(authority);
            (
                Val::Str(name),
                Val::Str(port.filter(|p| !p.is_empty()).unwrap_or(default_port)),
            )
        }
        None => {
            let (name, port) = addr_strs(py, conn.local, memo);
            (Val::Obj(name.into_any()), Val::Obj(port.into_any()))
        }
    };
    if !sink.put(memo, intern!(py, "SERVER_NAME"), name)?
        || !sink.put(memo, intern!(py, "SERVER_PORT"), port)?
    {
        return Ok(false);
    }
    let remote = put_remote(py, conn.peer, memo, sink)?;
    if !remote {
        return Ok(false);
    }

    // Only names outside the common table need it.
    let mut scratch = Vec::new();
    let mut length = itoa::Buffer::new();
    for (i, (name, value)) in head.fields().enumerate() {
        let (key, value) = if name.eq_ignore_ascii_case(b"content-type") {
            (intern!(py, "CONTENT_TYPE").clone(), Val::Str(value))
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = match head.body {
                BodyKind::Length(n) => n,
                BodyKind::Empty => 0,
                BodyKind::Chunked => continue,
            };
            let n = length.format(n).as_bytes();
            (intern!(py, "CONTENT_LENGTH").clone(), Val::Str(n))
        } else {
            let Some(key) = base.header_key(py, name, &mut scratch, memo) else {
                continue;
            };
            if private_header(name) {
                (key, Val::Private(value))
            } else {
                (key, Val::Str(value))
            }
        };
        // A name seen before in this head (names with `_` are dropped, so equal keys mean
        // equal names): a header's values are joined, CONTENT_* keep the last.
        let repeated = head
            .fields()
            .take(i)
            .any(|(n, _)| n.eq_ignore_ascii_case(name));
        let put = if repeated {
            let value = value.to_obj(py, memo);
            if name.eq_ignore_ascii_case(b"cookie") {
                sink.join(&key, &value, Some("; "))?
            } else if key.as_ptr() == intern!(py, "CONTENT_TYPE").as_ptr()
                || key.as_ptr() == intern!(py, "CONTENT_LENGTH").as_ptr()
            {
                sink.join(&key, &value, None)?
            } else {
                sink.join(&key, &value, Some(", "))?
            }
        } else {
            sink.put(memo, &key, value)?
        };
        if !put {
            return Ok(false);
        }
    }
    // HTTP/1.0 in absolute-form without a Host field: the target names the host.
    if head.host.is_none() {
        if let Some(authority) = parts.authority.filter(|a| !a.is_empty()) {
            return sink.put(memo, intern!(py, "HTTP_HOST"), Val::Str(authority));
        }
    }
    Ok(true)
}

/// REMOTE_ADDR and REMOTE_PORT from the peer, set on `env`.
pub fn set_remote(
    py: Python<'_>,
    env: &Bound<'_, PyDict>,
    peer: Option<SocketAddr>,
    memo: &mut MemoRef<'_>,
) -> PyResult<()> {
    let mut fill = Fill { env, record: None };
    put_remote(py, peer, memo, &mut fill).map(|_| ())
}

/// REMOTE_ADDR and REMOTE_PORT from the peer; a Unix-socket peer has an empty REMOTE_ADDR
/// and no REMOTE_PORT. Ok(false) when the sink stopped.
fn put_remote<'py>(
    py: Python<'py>,
    peer: Option<SocketAddr>,
    memo: &mut MemoRef<'_>,
    sink: &mut impl Sink<'py>,
) -> PyResult<bool> {
    match peer {
        Some(peer) => {
            let (ip, port) = memo.addr(py, peer);
            Ok(
                sink.put(memo, intern!(py, "REMOTE_ADDR"), Val::Obj(ip.into_any()))?
                    && sink.put(memo, intern!(py, "REMOTE_PORT"), Val::Obj(port.into_any()))?,
            )
        }
        None => Ok(sink.put(
            memo,
            intern!(py, "REMOTE_ADDR"),
            Val::Obj(intern!(py, "").clone().into_any()),
        )? && sink.remove(intern!(py, "REMOTE_PORT"))?),
    }
}

pub fn set_addr(
    py: Python<'_>,
    env: &Bound<'_, PyDict>,
    addr: Option<SocketAddr>,
    host_key: &Bound<'_, PyString>,
    port_key: &Bound<'_, PyString>,
    memo: &mut MemoRef<'_>,
) -> PyResult<()> {
    let (host, port) = addr_strs(py, addr, memo);
    env.set_item(host_key, host)?;
    env.set_item(port_key, port)
}

/// The host and port strings of an address; "localhost" and "" for none (a Unix socket).
fn addr_strs<'py>(
    py: Python<'py>,
    addr: Option<SocketAddr>,
    memo: &mut MemoRef<'_>,
) -> (Bound<'py, PyString>, Bound<'py, PyString>) {
    match addr {
        Some(a) => memo.addr(py, a),
        None => (intern!(py, "localhost").clone(), intern!(py, "").clone()),
    }
}
