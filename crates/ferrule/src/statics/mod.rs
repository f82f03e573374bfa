//! Static files (`--static PREFIX=DIR`), decided without sockets or Python: a transport hands
//! over a request's method, target and the few fields that matter ([`Request`]), and gets
//! back [`Decision::Pass`] (the app's) or a [`Response`] to send: status, header fields, and a
//! body that is nothing, a few bytes, or a range of an open file. HTTP/1 (`server/statics.rs`)
//! encodes and sends it; any other transport can do the same. Nothing here knows the server,
//! the WSGI bridge or Python.
//!
//! What is decided: the mount (longest prefix), the path's safety (`path.rs`, `fs.rs`), the
//! method (GET and HEAD; others 405), a directory's `index.html`, precompressed siblings
//! (`encoding.rs`), `ETag`/`Last-Modified` and 304, one byte range (206, 416; `If-Range`),
//! `Cache-Control` (`mime.rs` for hashed names) and the `Content-Type`. A file found is
//! remembered (`cache.rs`) while its directory and the file itself stay unchanged.
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

mod cache;
mod conditional;
pub mod encoding;
mod fs;
mod mime;
mod path;
mod respond;
#[cfg(test)]
mod tests;

pub use encoding::Coding;
pub use path::BadPrefix;

/// `Cache-Control` of files with a content hash in their name.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The `--static-*` switches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// `--static-max-age`: `Cache-Control: public, max-age=N`; 0 sends none.
    pub max_age: u64,
    /// `--static-index`: a directory serves its `index.html`.
    pub index: bool,
    /// `--static-follow-symlinks`: symlinks may lead outside the directory.
    pub follow_symlinks: bool,
    /// `--static-fallthrough`: what is not found goes to the app instead of a 404.
    pub fallthrough: bool,
}

/// One `--static PREFIX=DIR`.
#[derive(Debug, Clone)]
struct Mount {
    prefix: path::Prefix,
    /// Canonical: symlinks resolved once at start.
    root: PathBuf,
}

/// The static mounts and their options, for every worker.
#[derive(Debug, Clone)]
pub struct Statics {
    /// Longest prefix first.
    mounts: Vec<Mount>,
    options: Options,
    /// The files found, per worker (the master never asks, so each worker starts empty).
    cache: Arc<cache::Cache>,
}

/// A `--static` value that cannot be used.
#[derive(Debug)]
pub enum StaticError {
    /// Not `PREFIX=DIR`.
    NoEquals(String),
    /// The prefix is not an absolute URL path, or has a segment no request could match.
    Prefix { spec: String, error: BadPrefix },
    /// The directory does not exist or cannot be resolved.
    Dir { spec: String, error: std::io::Error },
    /// The path names something other than a directory.
    NotADir(String),
}

impl fmt::Display for StaticError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoEquals(spec) => write!(
                f,
                "--static {spec}: give PREFIX=DIR, as in /static=./staticfiles"
            ),
            Self::Prefix {
                spec,
                error: BadPrefix::NotAbsolute,
            } => write!(f, "--static {spec}: the prefix must start with '/'"),
            Self::Prefix {
                spec,
                error: BadPrefix::BadSegment,
            } => write!(
                f,
                "--static {spec}: the prefix may not contain '.', '..', '\\', NUL or bad % escapes"
            ),
            Self::Dir { spec, error } => write!(f, "--static {spec}: {error}"),
            Self::NotADir(spec) => write!(f, "--static {spec}: not a directory"),
        }
    }
}

impl std::error::Error for StaticError {}

impl Statics {
    /// Reads `--static` values (`PREFIX=DIR`; DIR relative to the current directory). None
    /// when there are none.
    pub fn new(specs: &[String], options: Options) -> Result<Option<Self>, StaticError> {
        if specs.is_empty() {
            return Ok(None);
        }
        let mut mounts = specs
            .iter()
            .map(|spec| {
                let (prefix, dir) = spec
                    .split_once('=')
                    .ok_or_else(|| StaticError::NoEquals(spec.clone()))?;
                let prefix = path::Prefix::parse(prefix).map_err(|error| StaticError::Prefix {
                    spec: spec.clone(),
                    error,
                })?;
                let root = std::fs::canonicalize(dir).map_err(|error| StaticError::Dir {
                    spec: spec.clone(),
                    error,
                })?;
                if !root.is_dir() {
                    return Err(StaticError::NotADir(spec.clone()));
                }
                Ok(Mount { prefix, root })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Stable: of two equal prefixes, the first given wins.
        mounts.sort_by_key(|m| std::cmp::Reverse(m.prefix.depth()));
        Ok(Some(Self {
            mounts,
            options,
            cache: Arc::default(),
        }))
    }

    /// What to do with a request: pass it to the app or answer it.
    pub fn decide(&self, req: &Request<'_>) -> Decision {
        let Some((index, mount, mapped)) = self
            .mounts
            .iter()
            .enumerate()
            .find_map(|(i, m)| path::map(req.path, &m.prefix).map(|p| (i, m, p)))
        else {
            return Decision::Pass;
        };
        let at = respond::Mounted {
            index,
            root: &mount.root,
            cache: &self.cache,
        };
        respond::decide(req, &at, mapped, self.options)
    }
}

/// What a static request brings: the method, the target's path and query, and the header
/// fields that matter (a field sent on several lines is joined with commas, as RFC 9110
/// allows for lists).
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    pub method: &'a [u8],
    /// The path, still percent-encoded.
    pub path: &'a [u8],
    /// After `?`, without it (kept in a redirect to a directory's slash).
    pub query: &'a [u8],
    if_none_match: Option<Field<'a>>,
    if_modified_since: Option<Field<'a>>,
    range: Option<Field<'a>>,
    if_range: Option<Field<'a>>,
    accept_encoding: Option<Field<'a>>,
}

/// A field's value: one line's, or several joined.
#[derive(Debug, Clone)]
enum Field<'a> {
    One(&'a [u8]),
    Joined(Vec<u8>),
}

impl Field<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::One(v) => v,
            Self::Joined(v) => v,
        }
    }
}

impl<'a> Request<'a> {
    /// A request for `target` (origin-form, or absolute-form whose authority is ignored).
    pub fn new(method: &'a [u8], target: &'a [u8]) -> Self {
        let t = ferrule_proto::cgi::split_target(target);
        Self {
            method,
            path: t.path,
            query: t.query,
            ..Self::default()
        }
    }

    /// Takes note of one header field (names compared case-insensitively; others ignored).
    pub fn field(&mut self, name: &[u8], value: &'a [u8]) {
        let slot = match name.len() {
            5 if name.eq_ignore_ascii_case(b"range") => &mut self.range,
            8 if name.eq_ignore_ascii_case(b"if-range") => &mut self.if_range,
            13 if name.eq_ignore_ascii_case(b"if-none-match") => &mut self.if_none_match,
            15 if name.eq_ignore_ascii_case(b"accept-encoding") => &mut self.accept_encoding,
            17 if name.eq_ignore_ascii_case(b"if-modified-since") => &mut self.if_modified_since,
            _ => return,
        };
        *slot = Some(match slot.take() {
            None => Field::One(value),
            Some(prev) => {
                let mut joined = prev.bytes().to_vec();
                joined.extend_from_slice(b", ");
                joined.extend_from_slice(value);
                Field::Joined(joined)
            }
        });
    }

    fn if_none_match(&self) -> Option<&[u8]> {
        self.if_none_match.as_ref().map(Field::bytes)
    }

    fn if_modified_since(&self) -> Option<&[u8]> {
        self.if_modified_since.as_ref().map(Field::bytes)
    }

    fn range(&self) -> Option<&[u8]> {
        self.range.as_ref().map(Field::bytes)
    }

    fn if_range(&self) -> Option<&[u8]> {
        self.if_range.as_ref().map(Field::bytes)
    }

    fn accept_encoding(&self) -> Option<&[u8]> {
        self.accept_encoding.as_ref().map(Field::bytes)
    }

    fn is_head(&self) -> bool {
        self.method == b"HEAD"
    }
}

/// What to do with a request.
#[derive(Debug)]
pub enum Decision {
    /// Not static (no prefix matches, or `--static-fallthrough` and nothing found): the app's.
    Pass,
    /// Answer it with this.
    Respond(Response),
}

/// A response to send: the transport adds `Date`, `Server`, the connection's fields and
/// `Content-Length` from [`Response::content_length`].
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Fields in order, names in their usual case (`Content-Type`).
    pub headers: Vec<(&'static str, String)>,
    /// The `Content-Length` to announce (for HEAD, what GET would send); None for 304.
    pub content_length: Option<u64>,
    pub body: Body,
}

/// A response's body.
#[derive(Debug)]
pub enum Body {
    /// Nothing (HEAD, 304, 416).
    Empty,
    /// Bytes in memory: a short text of the server's own (404, 405), or a small file's
    /// content that the worker keeps.
    Bytes(Bytes),
    /// `len` bytes of `file` from `offset` (the file may be shared with the worker's cache).
    File {
        file: Arc<std::fs::File>,
        offset: u64,
        len: u64,
    },
}

impl Response {
    /// The body's length in bytes.
    pub fn body_len(&self) -> u64 {
        match &self.body {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }
}
