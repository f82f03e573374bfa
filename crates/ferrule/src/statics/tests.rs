//! The room's decisions end to end, against files in a temporary directory: no socket, no
//! server, no Python.
use std::path::PathBuf;

use super::{Body, Decision, Options, Request, Response, Statics};

/// A directory with `css/a.css` (10 bytes) and its `.gz` sibling, removed when dropped.
struct Site(PathBuf);

impl Site {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "ferrule-statics-room-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("css")).expect("temp dir");
        std::fs::write(dir.join("css/a.css"), b"0123456789").expect("a.css");
        std::fs::write(dir.join("css/a.css.gz"), b"gz").expect("a.css.gz");
        Self(dir)
    }

    fn statics(&self, options: Options) -> Statics {
        let spec = format!("/static={}", self.0.display());
        Statics::new(&[spec], options)
            .expect("valid --static")
            .expect("one mount")
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ask(statics: &Statics, method: &str, target: &str, fields: &[(&str, &str)]) -> Decision {
    let mut req = Request::new(method.as_bytes(), target.as_bytes());
    for (n, v) in fields {
        req.field(n.as_bytes(), v.as_bytes());
    }
    statics.decide(&req)
}

fn respond(d: Decision) -> Response {
    match d {
        Decision::Respond(r) => r,
        Decision::Pass => panic!("passed to the app"),
    }
}

fn field<'r>(r: &'r Response, name: &str) -> Option<&'r str> {
    r.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn get_head_and_not_modified() {
    let site = Site::new("get");
    let s = site.statics(Options::default());
    let r = respond(ask(&s, "GET", "/static/css/a.css", &[]));
    assert_eq!(r.status, 200);
    assert_eq!(r.content_length, Some(10));
    assert!(matches!(
        r.body,
        Body::File {
            offset: 0,
            len: 10,
            ..
        }
    ));
    assert_eq!(field(&r, "Content-Type"), Some("text/css; charset=utf-8"));
    assert_eq!(field(&r, "Vary"), Some("Accept-Encoding"));
    assert_eq!(field(&r, "Content-Encoding"), None);
    let etag = field(&r, "ETag").expect("an ETag").to_owned();
    let head = respond(ask(&s, "HEAD", "/static/css/a.css", &[]));
    assert_eq!((head.status, head.content_length), (200, Some(10)));
    assert!(matches!(head.body, Body::Empty));
    let not = respond(ask(
        &s,
        "GET",
        "/static/css/a.css",
        &[("if-none-match", &etag)],
    ));
    assert_eq!((not.status, not.content_length), (304, None));
}

#[test]
fn ranges_and_encodings() {
    let site = Site::new("range");
    let s = site.statics(Options::default());
    let r = respond(ask(
        &s,
        "GET",
        "/static/css/a.css",
        &[("Range", "bytes=2-4")],
    ));
    assert_eq!(r.status, 206);
    assert!(matches!(
        r.body,
        Body::File {
            offset: 2,
            len: 3,
            ..
        }
    ));
    assert_eq!(field(&r, "Content-Range"), Some("bytes 2-4/10"));
    let r = respond(ask(
        &s,
        "GET",
        "/static/css/a.css",
        &[("Range", "bytes=10-")],
    ));
    assert_eq!(
        (r.status, field(&r, "Content-Range")),
        (416, Some("bytes */10"))
    );
    let r = respond(ask(
        &s,
        "GET",
        "/static/css/a.css",
        &[("Accept-Encoding", "gzip")],
    ));
    assert_eq!(field(&r, "Content-Encoding"), Some("gzip"));
    assert_eq!(r.content_length, Some(2));
    // Two Range lines are two ranges: the whole file.
    let two = [("Range", "bytes=0-1"), ("Range", "bytes=3-4")];
    assert_eq!(
        respond(ask(&s, "GET", "/static/css/a.css", &two)).status,
        200
    );
}

#[test]
fn methods_prefixes_and_fallthrough() {
    let site = Site::new("methods");
    let s = site.statics(Options::default());
    assert!(matches!(ask(&s, "GET", "/app", &[]), Decision::Pass));
    assert!(matches!(ask(&s, "GET", "/staticx/a", &[]), Decision::Pass));
    let r = respond(ask(&s, "POST", "/static/css/a.css", &[]));
    assert_eq!((r.status, field(&r, "Allow")), (405, Some("GET, HEAD")));
    assert_eq!(respond(ask(&s, "GET", "/static/nope", &[])).status, 404);
    assert_eq!(respond(ask(&s, "GET", "/static/../x", &[])).status, 404);
    let fall = site.statics(Options {
        fallthrough: true,
        ..Options::default()
    });
    assert!(matches!(
        ask(&fall, "GET", "/static/nope", &[]),
        Decision::Pass
    ));
    assert!(matches!(
        ask(&fall, "POST", "/static/nope", &[]),
        Decision::Pass
    ));
    assert_eq!(
        respond(ask(&fall, "POST", "/static/css/a.css", &[])).status,
        405
    );
    assert_eq!(
        respond(ask(&fall, "GET", "/static/%2e%2e/x", &[])).status,
        404
    );
}

/// Puts the modification time of `dir` an hour back, as if it had settled long ago.
fn settle(dir: &std::path::Path) {
    let past = std::time::SystemTime::now() - std::time::Duration::from_hours(1);
    std::fs::File::open(dir)
        .and_then(|d| d.set_times(std::fs::FileTimes::new().set_modified(past)))
        .expect("set the directory's mtime");
}

fn etag_of(statics: &Statics, fields: &[(&str, &str)]) -> (u16, Option<String>, u64) {
    let r = respond(ask(statics, "GET", "/static/css/a.css", fields));
    (r.status, field(&r, "ETag").map(str::to_owned), r.body_len())
}

#[test]
fn a_settled_directory_s_file_is_remembered_and_an_unsettled_one_is_not() {
    let site = Site::new("cache-settle");
    let s = site.statics(Options::default());
    let first = etag_of(&s, &[]);
    assert_eq!(s.cache.len(), 0, "just written: not remembered");
    settle(&site.0.join("css"));
    assert_eq!(etag_of(&s, &[]), first);
    assert_eq!(s.cache.len(), 1);
    assert_eq!(etag_of(&s, &[]), first);
    assert_eq!(etag_of(&s, &[("Accept-Encoding", "gzip")]).2, 2);
    // Only GET and HEAD ask the cache; 405 for the others as before.
    let r = respond(ask(&s, "POST", "/static/css/a.css", &[]));
    assert_eq!(r.status, 405);
}

#[test]
fn a_remembered_file_changed_replaced_or_deleted_is_looked_up_again() {
    let site = Site::new("cache-change");
    let css = site.0.join("css");
    let s = site.statics(Options::default());
    settle(&css);
    let (_, first, _) = etag_of(&s, &[]);
    assert_eq!(s.cache.len(), 1);
    // Written in place: its directory is unchanged, the file is not.
    std::fs::write(css.join("a.css"), b"0123456789abc").expect("rewrite");
    let (code, second, len) = etag_of(&s, &[]);
    assert_eq!((code, len), (200, 13));
    assert_ne!(second, first);
    // Replaced by a rename.
    settle(&css);
    assert_eq!(etag_of(&s, &[]).1, second);
    std::fs::write(css.join("new"), b"xy").expect("new");
    std::fs::rename(css.join("new"), css.join("a.css")).expect("rename");
    assert_eq!(etag_of(&s, &[]).2, 2);
    // Deleted.
    settle(&css);
    assert_eq!(etag_of(&s, &[]).0, 200);
    std::fs::remove_file(css.join("a.css")).expect("remove");
    assert_eq!(etag_of(&s, &[]).0, 404);
}

#[test]
fn a_sibling_added_or_removed_after_the_file_was_remembered_shows() {
    let site = Site::new("cache-sibling");
    let css = site.0.join("css");
    std::fs::remove_file(css.join("a.css.gz")).expect("no .gz");
    let s = site.statics(Options::default());
    // (Vary, Content-Encoding, body length) of a request that accepts br.
    let br = || {
        let r = respond(ask(
            &s,
            "GET",
            "/static/css/a.css",
            &[("Accept-Encoding", "br")],
        ));
        let vary = field(&r, "Vary").map(str::to_owned);
        (
            vary,
            field(&r, "Content-Encoding").map(str::to_owned),
            r.body_len(),
        )
    };
    settle(&css);
    assert_eq!(br(), (None, None, 10));
    assert_eq!(s.cache.len(), 1);
    std::fs::write(css.join("a.css.br"), b"brotli").expect("br");
    let accept = Some("Accept-Encoding".to_owned());
    assert_eq!(br(), (accept, Some("br".to_owned()), 6));
    settle(&css);
    let _ = br();
    std::fs::remove_file(css.join("a.css.br")).expect("remove br");
    assert_eq!(br(), (None, None, 10));
}

#[test]
fn a_remembered_symlink_pointed_out_of_the_directory_is_refused() {
    let site = Site::new("cache-link");
    let outside = std::env::temp_dir().join(format!("ferrule-statics-out-{}", std::process::id()));
    std::fs::write(&outside, b"secret").expect("outside file");
    let link = site.0.join("css/in.css");
    std::os::unix::fs::symlink("a.css", &link).expect("in.css");
    let s = site.statics(Options::default());
    settle(&site.0.join("css"));
    let r = respond(ask(&s, "GET", "/static/css/in.css", &[]));
    assert_eq!((r.status, r.body_len()), (200, 10));
    assert_eq!(s.cache.len(), 1);
    std::fs::remove_file(&link).expect("unlink");
    std::os::unix::fs::symlink(&outside, &link).expect("out");
    assert_eq!(
        respond(ask(&s, "GET", "/static/css/in.css", &[])).status,
        404
    );
    let _ = std::fs::remove_file(outside);
}

#[test]
fn a_small_settled_file_is_kept_in_memory_until_it_changes() {
    let site = Site::new("cache-bytes");
    let css = site.0.join("css");
    let a = css.join("a.css");
    // Its change time must be SETTLED in the past: wait for the clock to get there.
    let changed = std::fs::metadata(&a).expect("a.css");
    while !super::cache::FileStamp::of(&changed).settled() {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    settle(&css);
    let s = site.statics(Options::default());
    let range = [("Range", "bytes=2-4")];
    for _ in 0..2 {
        let r = respond(ask(&s, "GET", "/static/css/a.css", &range));
        assert_eq!(r.status, 206);
        assert!(matches!(&r.body, Body::Bytes(b) if b.as_ref() == b"234"));
    }
    std::fs::write(&a, b"abcdefghij").expect("rewrite");
    let r = respond(ask(&s, "GET", "/static/css/a.css", &[]));
    assert!(matches!(r.body, Body::File { len: 10, .. }), "read afresh");
}
