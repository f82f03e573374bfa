//! Conditional and range requests (RFC 9110 sections 13 and 14): entity-tag lists, HTTP dates,
//! and one `Range: bytes=...` evaluated against a length.
use std::time::{Duration, UNIX_EPOCH};

/// Whether an `If-None-Match` list names `etag` (weak comparison: `W/"x"` matches `"x"`), or
/// is `*`. `etag` is our quoted opaque tag, as sent in `ETag`.
pub fn none_match(list: &[u8], etag: &[u8]) -> bool {
    tags(list).any(|t| match t {
        Tag::Any => true,
        Tag::Weak(t) | Tag::Strong(t) => t == etag,
        Tag::Bad => false,
    })
}

/// Whether an `If-Range` value that is an entity-tag matches `etag` by strong comparison (a
/// weak tag never does).
pub fn range_tag_matches(value: &[u8], etag: &[u8]) -> bool {
    let mut it = tags(value);
    matches!((it.next(), it.next()), (Some(Tag::Strong(t)), None) if t == etag)
}

/// One element of an entity-tag list; the tags keep their quotes.
#[derive(Debug, PartialEq, Eq)]
enum Tag<'a> {
    Any,
    Strong(&'a [u8]),
    Weak(&'a [u8]),
    /// Not an entity-tag: the rest of the list is not read.
    Bad,
}

/// The elements of `#entity-tag` (or `*`). Commas may appear inside quotes, so the list is
/// read tag by tag rather than split.
fn tags(list: &[u8]) -> impl Iterator<Item = Tag<'_>> {
    let mut rest = list;
    std::iter::from_fn(move || {
        let start = rest
            .iter()
            .position(|&c| !matches!(c, b' ' | b'\t' | b','))?;
        rest = rest.get(start..)?;
        if let Some(after) = rest.strip_prefix(b"*") {
            rest = after;
            return Some(Tag::Any);
        }
        let (weak, quoted) = match rest.strip_prefix(b"W/") {
            Some(q) => (true, q),
            None => (false, rest),
        };
        let Some(inner) = quoted.strip_prefix(b"\"") else {
            rest = &[];
            return Some(Tag::Bad);
        };
        let Some(end) = inner.iter().position(|&c| c == b'"') else {
            rest = &[];
            return Some(Tag::Bad);
        };
        let tag = quoted.get(..end + 2).unwrap_or_default();
        rest = quoted.get(end + 2..).unwrap_or_default();
        Some(if weak {
            Tag::Weak(tag)
        } else {
            Tag::Strong(tag)
        })
    })
}

/// An HTTP date (IMF-fixdate, RFC 850 or asctime) as seconds since the epoch.
pub fn parse_date(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let t = httpdate::parse_http_date(text).ok()?;
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// Seconds since the epoch as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn format_date(secs: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

/// What a `Range` header asks of a representation of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranged {
    /// Send the whole representation: no range, an invalid one, another unit, or several
    /// ranges (which a server may answer whole).
    Whole,
    /// `206`: `len` bytes from `start` (never empty, never past the end).
    Part { start: u64, len: u64 },
    /// `416`: the range starts at or past the end (or asks for an empty suffix).
    Unsatisfiable,
}

/// Evaluates `Range: bytes=first-last | first- | -suffix` against `len` bytes. Numbers too
/// large for a u64 saturate: a first position past any file is unsatisfiable, a last position
/// or a suffix that large means "to the end" / "all of it".
pub fn range(value: &[u8], len: u64) -> Ranged {
    let value = trim(value);
    let Some((unit, set)) = split_once(value, b'=') else {
        return Ranged::Whole;
    };
    if !trim(unit).eq_ignore_ascii_case(b"bytes") {
        return Ranged::Whole;
    }
    let set = trim(set);
    if set.contains(&b',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = split_once(set, b'-') else {
        return Ranged::Whole;
    };
    let (first, last) = (trim(first), trim(last));
    match (number(first), number(last)) {
        // `-suffix`: the last `suffix` bytes.
        (None, Some(suffix)) if first.is_empty() => {
            if suffix == 0 || len == 0 {
                return Ranged::Unsatisfiable;
            }
            let n = suffix.min(len);
            Ranged::Part {
                start: len - n,
                len: n,
            }
        }
        // `first-`: from `first` to the end.
        (Some(start), None) if last.is_empty() => part(start, u64::MAX, len),
        (Some(start), Some(end)) if start <= end => part(start, end, len),
        _ => Ranged::Whole,
    }
}

/// `first-last` (inclusive, `last` clamped to the end) against `len` bytes.
fn part(start: u64, last: u64, len: u64) -> Ranged {
    if start >= len {
        return Ranged::Unsatisfiable;
    }
    let last = last.min(len - 1);
    Ranged::Part {
        start,
        len: last - start + 1,
    }
}

/// Decimal digits as a u64, saturating; None if empty or not all digits.
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let at = s.iter().position(|&c| c == sep)?;
    Some((s.get(..at)?, s.get(at + 1..)?))
}

pub(super) fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges() {
        let part = |start, len| Ranged::Part { start, len };
        assert_eq!(range(b"bytes=0-0", 10), part(0, 1));
        assert_eq!(range(b"bytes=0-9", 10), part(0, 10));
        assert_eq!(range(b"bytes=2-5", 10), part(2, 4));
        assert_eq!(range(b"bytes=5-", 10), part(5, 5));
        assert_eq!(range(b"bytes=5-100", 10), part(5, 5));
        assert_eq!(range(b"bytes=-3", 10), part(7, 3));
        assert_eq!(range(b"bytes=-30", 10), part(0, 10));
        assert_eq!(range(b"Bytes = 1 - 2 ", 10), part(1, 2));
        assert_eq!(range(b"bytes=9-9", 10), part(9, 1));
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(range(b"bytes=10-", 10), Ranged::Unsatisfiable);
        assert_eq!(range(b"bytes=10-20", 10), Ranged::Unsatisfiable);
        assert_eq!(range(b"bytes=-0", 10), Ranged::Unsatisfiable);
        assert_eq!(range(b"bytes=0-", 0), Ranged::Unsatisfiable);
        assert_eq!(range(b"bytes=-5", 0), Ranged::Unsatisfiable);
        assert_eq!(
            range(b"bytes=99999999999999999999999-", 10),
            Ranged::Unsatisfiable
        );
    }

    #[test]
    fn ranges_past_four_gib() {
        let len = 5 << 30;
        assert_eq!(
            range(b"bytes=4294967296-4294967305", len),
            Ranged::Part {
                start: 1 << 32,
                len: 10
            }
        );
        assert_eq!(
            range(b"bytes=0-99999999999999999999999", len),
            Ranged::Part { start: 0, len }
        );
        assert_eq!(
            range(b"bytes=-99999999999999999999999", len),
            Ranged::Part { start: 0, len }
        );
    }

    #[test]
    fn other_ranges_are_answered_whole() {
        for v in [
            &b""[..],
            b"bytes",
            b"bytes=",
            b"bytes=-",
            b"bytes=5-2",
            b"bytes=a-b",
            b"bytes=1-2-3",
            b"bytes=+1-2",
            b"bytes=0-1,4-5",
            b"bytes=0-1,",
            b"items=0-1",
            b"bytes=0x1-2",
        ] {
            assert_eq!(
                range(v, 10),
                Ranged::Whole,
                "{}",
                String::from_utf8_lossy(v)
            );
        }
    }

    #[test]
    fn entity_tag_lists() {
        let ours = b"\"abc\"";
        assert!(none_match(b"\"abc\"", ours));
        assert!(none_match(b"W/\"abc\"", ours));
        assert!(none_match(b"\"x\", \"abc\"", ours));
        assert!(none_match(b"\"a,b\",\"abc\"", ours));
        assert!(none_match(b"*", ours));
        assert!(!none_match(b"\"abcd\"", ours));
        assert!(!none_match(b"abc", ours));
        assert!(!none_match(b"\"abc", ours));
        assert!(!none_match(b"", ours));
        assert!(range_tag_matches(b"\"abc\"", ours));
        assert!(range_tag_matches(b" \"abc\" ", ours));
        assert!(!range_tag_matches(b"W/\"abc\"", ours));
        assert!(!range_tag_matches(b"\"abc\", \"abc\"", ours));
        assert!(!range_tag_matches(b"*", ours));
    }

    #[test]
    fn dates() {
        assert_eq!(
            parse_date(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_date(b"Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_date(b"Sun Nov  6 08:49:37 1994"), Some(784_111_777));
        assert_eq!(parse_date(b"yesterday"), None);
        assert_eq!(format_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
