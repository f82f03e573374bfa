//! [`CgiVars`]: the CGI variables a front server sends (uwsgi vars, SCGI headers, FastCGI
//! params), held as spans into one shared buffer so that a request head can move to an app
//! thread without copying each name and value.
use std::collections::HashSet;
use std::ops::Range;

use bytes::Bytes;

use crate::ascii::parse_decimal;

/// (name, value) spans into a buffer, in the order sent.
pub type Spans = Vec<(Range<usize>, Range<usize>)>;

/// Name/value pairs in the order the front server sent them. Names may repeat: nginx sends its
/// stock `*_params` file and then the user's overrides, so a later pair wins. [`CgiVars::get`]
/// returns the last value; [`CgiVars::iter`] yields every pair in order (inserting them into a
/// dict in that order keeps the last); [`CgiVars::iter_last_wins`] skips overridden pairs.
/// Names and values are bytes: nothing here requires UTF-8.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgiVars {
    buf: Bytes,
    pairs: Spans,
}

impl CgiVars {
    /// Wraps `buf` and (name, value) spans within it. Spans outside `buf` read as empty.
    #[must_use]
    pub fn new(buf: Bytes, pairs: Spans) -> Self {
        Self { buf, pairs }
    }

    /// The buffer the spans point into.
    #[must_use]
    pub fn buf(&self) -> &Bytes {
        &self.buf
    }

    /// The (name, value) spans into [`CgiVars::buf`], in the order sent.
    #[must_use]
    pub fn spans(&self) -> &[(Range<usize>, Range<usize>)] {
        &self.pairs
    }

    /// Number of pairs, repeats included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no pairs.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    fn slice(&self, r: &Range<usize>) -> &[u8] {
        self.buf.get(r.clone()).unwrap_or_default()
    }

    /// Every (name, value) pair in the order sent, repeated names included.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], &[u8])> + ExactSizeIterator {
        self.pairs
            .iter()
            .map(|(n, v)| (self.slice(n), self.slice(v)))
    }

    /// The pairs in the order sent, without those a later pair of the same name overrides.
    #[must_use]
    pub fn iter_last_wins(&self) -> Vec<(&[u8], &[u8])> {
        let mut seen = HashSet::with_capacity(self.pairs.len());
        let mut out: Vec<(&[u8], &[u8])> = self
            .iter()
            .rev()
            .filter(|(name, _)| seen.insert(*name))
            .collect();
        out.reverse();
        out
    }

    /// The value of the last pair named `name` (exact, case-sensitive, as CGI names are).
    #[must_use]
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value)
    }

    /// `CONTENT_LENGTH` as a number: 0 when absent or empty (nginx sends `CONTENT_LENGTH ""`
    /// for a request without a body), `None` when it is not plain decimal digits or overflows.
    #[must_use]
    pub fn content_length(&self) -> Option<u64> {
        match self.get(b"CONTENT_LENGTH") {
            None | Some(b"") => Some(0),
            Some(v) => parse_decimal(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> CgiVars {
        let mut buf = Vec::new();
        let mut spans = Vec::new();
        for (n, v) in pairs {
            let ns = buf.len();
            buf.extend_from_slice(n.as_bytes());
            let vs = buf.len();
            buf.extend_from_slice(v.as_bytes());
            spans.push((ns..vs, vs..buf.len()));
        }
        CgiVars::new(Bytes::from(buf), spans)
    }

    #[test]
    fn last_value_wins() {
        let v = vars(&[("A", "1"), ("B", "2"), ("A", "3")]);
        assert_eq!(v.get(b"A"), Some(&b"3"[..]));
        assert_eq!(v.get(b"a"), None);
        assert_eq!(v.len(), 3);
        assert_eq!(
            v.iter_last_wins(),
            vec![(&b"B"[..], &b"2"[..]), (&b"A"[..], &b"3"[..])]
        );
    }

    #[test]
    fn content_length_forms() {
        assert_eq!(vars(&[]).content_length(), Some(0));
        assert_eq!(vars(&[("CONTENT_LENGTH", "")]).content_length(), Some(0));
        assert_eq!(vars(&[("CONTENT_LENGTH", "42")]).content_length(), Some(42));
        assert_eq!(vars(&[("CONTENT_LENGTH", "+4")]).content_length(), None);
        assert_eq!(vars(&[("CONTENT_LENGTH", " 4")]).content_length(), None);
        assert_eq!(
            vars(&[("CONTENT_LENGTH", "99999999999999999999")]).content_length(),
            None
        );
    }
}
