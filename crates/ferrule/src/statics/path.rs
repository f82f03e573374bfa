//! From a request path to a file under a mount: the prefix matched segment by segment on the
//! decoded path, and the rest checked so that it cannot name anything outside the mount's
//! directory (no `..` or `.`, no `/` or `\` or NUL inside a segment, however encoded).

/// A URL prefix, as decoded segments (`/static/admin` is `["static", "admin"]`; `/` is none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix(Vec<Vec<u8>>);

/// Why a `--static` prefix cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPrefix {
    /// It does not start with `/`.
    NotAbsolute,
    /// A segment that a request path could never match safely: `.`, `..`, `\`, NUL, or a bad
    /// `%` escape.
    BadSegment,
}

impl Prefix {
    /// Parses `--static`'s PREFIX: starts with `/`; a trailing `/` and empty segments are
    /// ignored.
    pub fn parse(prefix: &str) -> Result<Self, BadPrefix> {
        let rest = prefix.strip_prefix('/').ok_or(BadPrefix::NotAbsolute)?;
        let segments = rest
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| match segment(s.as_bytes()) {
                Segment::Name(n) => Ok(n),
                Segment::Bad => Err(BadPrefix::BadSegment),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(segments))
    }

    /// How many segments it has: the longest matching prefix wins.
    pub fn depth(&self) -> usize {
        self.0.len()
    }
}

/// A request path under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    /// The path's segments after the prefix, decoded and each safe to join under the
    /// mount's directory; `slash`: the path ended with `/`.
    Under { rest: Vec<Vec<u8>>, slash: bool },
    /// Under the prefix, but a segment that could leave the directory (or is malformed):
    /// answered 404 whatever else is configured.
    Refused,
}

/// One decoded path segment.
enum Segment {
    Name(Vec<u8>),
    Bad,
}

/// Decodes one segment strictly: a `%` must start two hex digits, and the decoded name must
/// not be `.` or `..` nor contain `/`, `\` or NUL.
fn segment(raw: &[u8]) -> Segment {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&c) = raw.get(i) {
        if c == b'%' {
            let hi = raw.get(i + 1).and_then(|&h| hex(h));
            let lo = raw.get(i + 2).and_then(|&l| hex(l));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Segment::Bad;
            };
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    if out == b"." || out == b".." || out.iter().any(|&c| matches!(c, b'/' | b'\\' | 0)) {
        return Segment::Bad;
    }
    Segment::Name(out)
}

fn hex(c: u8) -> Option<u8> {
    char::from(c).to_digit(16).map(|d| d as u8)
}

/// Maps `path` (the request target's path, still percent-encoded, without the query) onto
/// `prefix`. None: the path is not under the prefix (it belongs to the app). Empty segments
/// (`//`) are skipped, as nginx merges slashes.
pub fn map(path: &[u8], prefix: &Prefix) -> Option<Mapped> {
    let rest = path.strip_prefix(b"/")?;
    let mut raw = rest.split(|&c| c == b'/').filter(|s| !s.is_empty());
    for want in &prefix.0 {
        let got = raw.next()?;
        match segment(got) {
            Segment::Name(n) if n == *want => {}
            _ => return None,
        }
    }
    let mut out = Vec::new();
    for s in raw {
        match segment(s) {
            Segment::Name(n) => out.push(n),
            Segment::Bad => return Some(Mapped::Refused),
        }
    }
    Some(Mapped::Under {
        rest: out,
        slash: path.ends_with(b"/"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn under(path: &str, prefix: &str) -> Option<Mapped> {
        map(path.as_bytes(), &Prefix::parse(prefix).unwrap())
    }

    #[expect(clippy::unnecessary_wraps, reason = "compared with what map() returns")]
    fn rest(parts: &[&str], slash: bool) -> Option<Mapped> {
        let rest = parts.iter().map(|p| p.as_bytes().to_vec()).collect();
        Some(Mapped::Under { rest, slash })
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert_eq!(under("/static/a.css", "/static"), rest(&["a.css"], false));
        assert_eq!(under("/static/a.css", "/static/"), rest(&["a.css"], false));
        assert_eq!(under("/static", "/static"), rest(&[], false));
        assert_eq!(under("/static/", "/static"), rest(&[], true));
        assert_eq!(under("/staticfoo/a.css", "/static"), None);
        assert_eq!(under("/other/a.css", "/static"), None);
        assert_eq!(under("/", "/static"), None);
        assert_eq!(under("*", "/static"), None);
        assert_eq!(under("/a/b/c.js", "/"), rest(&["a", "b", "c.js"], false));
        assert_eq!(under("/s/t/x", "/s/t"), rest(&["x"], false));
        assert_eq!(under("/s/x", "/s/t"), None);
    }

    #[test]
    fn segments_are_decoded_and_slashes_merged() {
        assert_eq!(
            under("/st%61tic/a%20b.css", "/static"),
            rest(&["a b.css"], false)
        );
        assert_eq!(
            under("//static//css//a.css", "/static"),
            rest(&["css", "a.css"], false)
        );
        assert_eq!(under("/static/a+b", "/static"), rest(&["a+b"], false));
        assert_eq!(
            under("/static/caf%C3%A9", "/static"),
            Some(Mapped::Under {
                rest: vec!["café".as_bytes().to_vec()],
                slash: false
            })
        );
    }

    #[test]
    fn traversal_is_refused_however_spelt() {
        for path in [
            "/static/../secret",
            "/static/a/../../secret",
            "/static/%2e%2e/secret",
            "/static/%2E%2E/secret",
            "/static/.%2e/secret",
            "/static/./a.css",
            "/static/%2e/a.css",
            "/static/..%2fsecret",
            "/static/a%2fb",
            "/static/a%2Fb",
            "/static/..\\secret",
            "/static/a%5cb",
            "/static/a%00.css",
            "/static/a%zz",
            "/static/a%2",
            "/static/a%",
        ] {
            assert_eq!(under(path, "/static"), Some(Mapped::Refused), "{path}");
        }
    }

    #[test]
    fn a_bad_segment_in_the_prefix_position_is_not_the_prefix() {
        assert_eq!(under("/static%2fcss/a.css", "/static"), None);
        assert_eq!(under("/../static/a.css", "/static"), None);
    }

    #[test]
    fn prefixes_are_checked() {
        assert_eq!(Prefix::parse("static"), Err(BadPrefix::NotAbsolute));
        assert_eq!(Prefix::parse("/a/../b"), Err(BadPrefix::BadSegment));
        assert_eq!(Prefix::parse("/").unwrap().depth(), 0);
        assert_eq!(Prefix::parse("/a//b/").unwrap().depth(), 2);
    }
}
