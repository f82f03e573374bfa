//! One static request decided: the file found (or a directory's index), its precompressed
//! sibling chosen, the conditions and the range evaluated, the response's fields built.
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::conditional::{self, Ranged};
use super::encoding::{self, Coding};
use super::fs::{self, Miss, Opened};
use super::path::Mapped;
use super::{mime, Body, Decision, Options, Request, Response, IMMUTABLE};

/// What a path leads to.
#[expect(
    clippy::large_enum_variant,
    reason = "one per request, on the stack for a moment; a box would cost an allocation"
)]
enum Found {
    /// A regular file: open, with the name its type and hash are read from.
    File {
        opened: Opened,
        path: PathBuf,
        name: Vec<u8>,
    },
    /// A directory with an index, asked for without the trailing slash.
    Redirect,
    Miss(Miss),
}

/// Decides a request under a mount whose directory is `root`.
pub(super) fn decide(req: &Request<'_>, root: &Path, mapped: Mapped, opts: Options) -> Decision {
    let (rest, slash) = match mapped {
        Mapped::Refused => return Decision::Respond(not_found(req)),
        Mapped::Under { rest, slash } => (rest, slash),
    };
    let readable = req.method == b"GET" || req.method == b"HEAD";
    if !readable && !opts.fallthrough {
        return Decision::Respond(not_allowed(req));
    }
    let found = find(root, &rest, slash, opts);
    let (opened, path, name) = match found {
        Found::Miss(Miss::Missing) if opts.fallthrough => return Decision::Pass,
        // A symlink out of the directory is refused even with --static-fallthrough.
        Found::Miss(_) => return Decision::Respond(not_found(req)),
        _ if !readable => return Decision::Respond(not_allowed(req)),
        Found::Redirect => return Decision::Respond(to_slash(req)),
        Found::File { opened, path, name } => (opened, path, name),
    };
    Decision::Respond(serve_file(req, root, opts, opened, &path, &name))
}

/// Opens what `rest` names under `root`; a directory leads to its `index.html` with
/// `--static-index` (a redirect when the path lacks its trailing slash).
fn find(root: &Path, rest: &[Vec<u8>], slash: bool, opts: Options) -> Found {
    let path = fs::join(root, rest);
    let opened = match fs::open(&path, root, opts.follow_symlinks) {
        Ok(o) => o,
        Err(miss) => return Found::Miss(miss),
    };
    if opened.meta.is_file() {
        if slash {
            // `a.css/`: a file is no directory.
            return Found::Miss(Miss::Missing);
        }
        let name = rest.last().cloned().unwrap_or_default();
        return Found::File { opened, path, name };
    }
    if !opts.index {
        return Found::Miss(Miss::Missing);
    }
    let index = path.join("index.html");
    match fs::open(&index, root, opts.follow_symlinks) {
        Ok(o) if o.meta.is_file() && !slash => Found::Redirect,
        Ok(o) if o.meta.is_file() => Found::File {
            opened: o,
            path: index,
            name: b"index.html".to_vec(),
        },
        Ok(_) => Found::Miss(Miss::Missing),
        Err(miss) => Found::Miss(miss),
    }
}

/// The response for a regular file (or its precompressed sibling).
fn serve_file(
    req: &Request<'_>,
    root: &Path,
    opts: Options,
    opened: Opened,
    path: &Path,
    name: &[u8],
) -> Response {
    let (opened, coding, vary) = sibling(req, root, opts, opened, path);
    let Opened { file, meta } = opened;
    let etag = fs::etag(&meta);
    let modified = fs::modified(&meta);
    let len = meta.len();
    let cache = if mime::is_hashed(name) {
        Some(IMMUTABLE.to_owned())
    } else if opts.max_age > 0 {
        Some(format!("public, max-age={}", opts.max_age))
    } else {
        None
    };
    let mut validators: Vec<(&'static str, String)> = Vec::with_capacity(9);
    validators.push(("ETag", etag.clone()));
    validators.push(("Last-Modified", conditional::format_date(modified)));
    if let Some(c) = cache {
        validators.push(("Cache-Control", c));
    }
    if vary {
        validators.push(("Vary", "Accept-Encoding".to_owned()));
    }
    if not_modified(req, etag.as_bytes(), modified) {
        return Response {
            status: 304,
            headers: validators,
            content_length: None,
            body: Body::Empty,
        };
    }
    let mut headers = Vec::with_capacity(validators.len() + 4);
    headers.push(("Content-Type", mime::content_type(name).to_owned()));
    if let Some(c) = coding {
        headers.push(("Content-Encoding", c.token().to_owned()));
    }
    headers.append(&mut validators);
    headers.push(("Accept-Ranges", "bytes".to_owned()));
    let (status, offset, count) = match ranged(req, etag.as_bytes(), modified, len) {
        Ranged::Whole => (200, 0, len),
        Ranged::Part { start, len: n } => {
            let last = start + n - 1;
            headers.push(("Content-Range", format!("bytes {start}-{last}/{len}")));
            (206, start, n)
        }
        Ranged::Unsatisfiable => {
            headers.push(("Content-Range", format!("bytes */{len}")));
            return Response {
                status: 416,
                headers,
                content_length: Some(0),
                body: Body::Empty,
            };
        }
    };
    let body = if req.is_head() || count == 0 {
        Body::Empty
    } else {
        Body::File {
            file,
            offset,
            len: count,
        }
    };
    Response {
        status,
        headers,
        content_length: Some(count),
        body,
    }
}

/// The precompressed sibling the client prefers, when there is one it accepts (else the file
/// itself), and whether any sibling exists (then the response varies by Accept-Encoding).
fn sibling(
    req: &Request<'_>,
    root: &Path,
    opts: Options,
    opened: Opened,
    path: &Path,
) -> (Opened, Option<Coding>, bool) {
    let there = Coding::ALL.map(|c| fs::is_file(&fs::with_suffix(path, c.suffix())));
    let vary = there.iter().any(|&t| t);
    if !vary {
        return (opened, None, false);
    }
    let weights = req.accept_encoding().map_or([0; 3], encoding::weights);
    let available = |c: Coding| Coding::ALL.iter().zip(there).any(|(&k, t)| k == c && t);
    let Some(coding) = encoding::choose(weights, available) else {
        return (opened, None, true);
    };
    match fs::open(
        &fs::with_suffix(path, coding.suffix()),
        root,
        opts.follow_symlinks,
    ) {
        Ok(s) if s.meta.is_file() => (s, Some(coding), true),
        _ => (opened, None, true),
    }
}

/// `If-None-Match` (weak comparison), else `If-Modified-Since` (not modified since).
fn not_modified(req: &Request<'_>, etag: &[u8], modified: u64) -> bool {
    if let Some(list) = req.if_none_match() {
        return conditional::none_match(list, etag);
    }
    req.if_modified_since()
        .and_then(conditional::parse_date)
        .is_some_and(|since| modified <= since)
}

/// The range a GET asks for, if `If-Range` (an entity-tag compared strongly, or the exact
/// `Last-Modified` date) allows it.
fn ranged(req: &Request<'_>, etag: &[u8], modified: u64, len: u64) -> Ranged {
    if req.method != b"GET" {
        return Ranged::Whole;
    }
    let Some(range) = req.range() else {
        return Ranged::Whole;
    };
    if let Some(cond) = req.if_range() {
        let cond = conditional::trim(cond);
        let holds = if cond.starts_with(b"\"") || cond.starts_with(b"W/") {
            conditional::range_tag_matches(cond, etag)
        } else {
            conditional::parse_date(cond) == Some(modified)
        };
        if !holds {
            return Ranged::Whole;
        }
    }
    conditional::range(range, len)
}

/// A short plain-text answer of the server's own.
fn text(req: &Request<'_>, status: u16, text: &'static str) -> Response {
    let body = Bytes::from_static(text.as_bytes());
    Response {
        status,
        headers: vec![("Content-Type", "text/plain; charset=utf-8".to_owned())],
        content_length: Some(body.len() as u64),
        body: if req.is_head() {
            Body::Empty
        } else {
            Body::Bytes(body)
        },
    }
}

fn not_found(req: &Request<'_>) -> Response {
    text(req, 404, "Not Found\n")
}

fn not_allowed(req: &Request<'_>) -> Response {
    let mut r = text(req, 405, "Method Not Allowed\n");
    r.headers.push(("Allow", "GET, HEAD".to_owned()));
    r
}

/// `301` to the directory's path with its trailing slash (the query kept), so that the
/// index's relative links resolve.
fn to_slash(req: &Request<'_>) -> Response {
    let mut location = String::from_utf8_lossy(req.path).into_owned();
    location.push('/');
    if !req.query.is_empty() {
        location.push('?');
        location.push_str(&String::from_utf8_lossy(req.query));
    }
    Response {
        status: 301,
        headers: vec![("Location", location)],
        content_length: Some(0),
        body: Body::Empty,
    }
}
