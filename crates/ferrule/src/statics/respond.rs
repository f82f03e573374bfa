//! One static request decided: the file found (or a directory's index), its precompressed
//! sibling chosen, the conditions and the range evaluated, the response's fields built. A
//! GET or HEAD first asks the worker's cache (`cache.rs`) for what an earlier look-up found.
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::cache::{Cache, DirStamp, Entry, FileStamp, Kept, Key, Located, KEPT_BYTES};
use super::conditional::{self, Ranged};
use super::encoding::{self, Coding};
use super::fs::{self, Miss, Opened};
use super::path::Mapped;
use super::{mime, Body, Decision, Options, Request, Response, IMMUTABLE};

/// The mount a request is under.
pub(super) struct Mounted<'a> {
    /// Its place in the list of mounts (part of the cache's key).
    pub index: usize,
    /// Its directory, canonical.
    pub root: &'a Path,
    pub cache: &'a Cache,
}

/// What a path leads to.
#[expect(
    clippy::large_enum_variant,
    reason = "one per look-up, on the stack for a moment; a box would cost an allocation"
)]
enum Found {
    /// A regular file, with what its directory was like just before it was opened.
    File(Entry),
    /// A directory with an index, asked for without the trailing slash.
    Redirect,
    Miss(Miss),
}

/// Decides a request under the mount `at`.
pub(super) fn decide(
    req: &Request<'_>,
    at: &Mounted<'_>,
    mapped: Mapped,
    opts: Options,
) -> Decision {
    let (rest, slash) = match mapped {
        Mapped::Refused => return Decision::Respond(not_found(req)),
        Mapped::Under { rest, slash } => (rest, slash),
    };
    let readable = req.method == b"GET" || req.method == b"HEAD";
    if !readable && !opts.fallthrough {
        return Decision::Respond(not_allowed(req));
    }
    let path = fs::join(at.root, &rest);
    let key: Option<Key> = readable.then(|| (at.index, path.clone(), slash));
    if let Some(key) = &key {
        if let Some(entry) = at.cache.get(key) {
            if let Some(resp) = serve_file(req, opts, &entry.located, Fresh::No) {
                return Decision::Respond(resp);
            }
            at.cache.forget(key);
        }
    }
    let found = find(at.root, path, &rest, slash, opts);
    let entry = match found {
        Found::Miss(Miss::Missing) if opts.fallthrough => return Decision::Pass,
        // A symlink out of the directory is refused even with --static-fallthrough.
        Found::Miss(_) => return Decision::Respond(not_found(req)),
        _ if !readable => return Decision::Respond(not_allowed(req)),
        Found::Redirect => return Decision::Respond(to_slash(req)),
        Found::File(entry) => entry,
    };
    let resp = serve_file(req, opts, &entry.located, Fresh::Yes);
    if let Some(key) = key {
        at.cache.put(key, entry);
    }
    Decision::Respond(resp.unwrap_or_else(|| not_found(req)))
}

/// Opens what `rest` (joined under `root` as `path`) names; a directory leads to its
/// `index.html` with `--static-index` (a redirect when the path lacks its trailing slash).
fn find(
    root: &Path,
    path: std::path::PathBuf,
    rest: &[Vec<u8>],
    slash: bool,
    opts: Options,
) -> Found {
    // The directory's state is taken before the file is opened: a change in between shows.
    let Some(parent) = path.parent().map(Path::to_path_buf) else {
        return Found::Miss(Miss::Missing);
    };
    let Ok(before) = std::fs::metadata(&parent) else {
        return Found::Miss(Miss::Missing);
    };
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
        return Found::File(locate(root, opts, opened, path, name, parent, &before));
    }
    if !opts.index {
        return Found::Miss(Miss::Missing);
    }
    drop(opened);
    let Ok(before) = std::fs::metadata(&path) else {
        return Found::Miss(Miss::Missing);
    };
    let index = path.join("index.html");
    match fs::open(&index, root, opts.follow_symlinks) {
        Ok(o) if o.meta.is_file() && !slash => Found::Redirect,
        Ok(o) if o.meta.is_file() => Found::File(locate(
            root,
            opts,
            o,
            index,
            b"index.html".to_vec(),
            path,
            &before,
        )),
        Ok(_) => Found::Miss(Miss::Missing),
        Err(miss) => Found::Miss(miss),
    }
}

/// A file found at `path` in `dir`, with its precompressed siblings opened.
fn locate(
    root: &Path,
    opts: Options,
    opened: Opened,
    path: std::path::PathBuf,
    name: Vec<u8>,
    dir: std::path::PathBuf,
    before: &std::fs::Metadata,
) -> Entry {
    let there = Coding::ALL.map(|c| fs::is_file(&fs::with_suffix(&path, c.suffix())));
    let siblings = Coding::ALL.map(|c| {
        if !there[c.index()] {
            return None;
        }
        match fs::open(
            &fs::with_suffix(&path, c.suffix()),
            root,
            opts.follow_symlinks,
        ) {
            Ok(s) if s.meta.is_file() => Some(kept(s)),
            _ => None,
        }
    });
    Entry {
        dir,
        stamp: DirStamp::of(before),
        located: Located {
            file: kept(opened),
            name,
            there,
            siblings,
        },
    }
}

fn kept(o: Opened) -> Kept {
    let stamp = FileStamp::of(&o.meta);
    let bytes = if o.meta.len() <= KEPT_BYTES && stamp.settled() {
        read_whole(&o.file, o.meta.len())
    } else {
        None
    };
    Kept {
        stamp,
        file: Arc::new(o.file),
        meta: o.meta,
        bytes,
    }
}

/// The `len` bytes of a small file.
fn read_whole(file: &std::fs::File, len: u64) -> Option<Bytes> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0; usize::try_from(len).ok()?];
    file.read_exact_at(&mut buf, 0).ok()?;
    Some(Bytes::from(buf))
}

/// Whether a located file was found just now (its metadata then is current) or earlier
/// (asked again, and None if it changed since).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fresh {
    Yes,
    No,
}

/// The response for a regular file (or its precompressed sibling the client prefers, when
/// there is one it accepts; when any sibling exists the response varies by Accept-Encoding).
/// None if a file found earlier has changed since.
fn serve_file(
    req: &Request<'_>,
    opts: Options,
    located: &Located,
    fresh: Fresh,
) -> Option<Response> {
    let vary = located.there.iter().any(|&t| t);
    let weights = match req.accept_encoding() {
        Some(accept) if vary => encoding::weights(accept),
        _ => [0; 3],
    };
    let chosen = encoding::choose(weights, |c| located.there[c.index()]);
    // The preferred sibling that could not be opened beneath the mount: the file itself.
    let (kept, coding) =
        match chosen.and_then(|c| located.siblings[c.index()].as_ref().map(|k| (k, c))) {
            Some((k, c)) => (k, Some(c)),
            None => (&located.file, None),
        };
    let now;
    let meta = match fresh {
        Fresh::Yes => &kept.meta,
        Fresh::No => {
            now = kept.now()?;
            &now
        }
    };
    let name = &located.name[..];
    let etag = fs::etag(meta);
    let modified = fs::modified(meta);
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
        return Some(Response {
            status: 304,
            headers: validators,
            content_length: None,
            body: Body::Empty,
        });
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
            return Some(Response {
                status: 416,
                headers,
                content_length: Some(0),
                body: Body::Empty,
            });
        }
    };
    // The kept bytes, if they are this length's and hold the range (they always do).
    let range = usize::try_from(offset)
        .ok()
        .zip(usize::try_from(offset + count).ok());
    let kept_bytes = kept
        .bytes
        .as_ref()
        .filter(|b| b.len() as u64 == len)
        .zip(range)
        .filter(|(b, (_, to))| *to <= b.len());
    let body = if req.is_head() || count == 0 {
        Body::Empty
    } else if let Some((b, (from, to))) = kept_bytes {
        Body::Bytes(b.slice(from..to))
    } else {
        Body::File {
            file: Arc::clone(&kept.file),
            offset,
            len: count,
        }
    };
    Some(Response {
        status,
        headers,
        content_length: Some(count),
        body,
    })
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
