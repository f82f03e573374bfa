//! The RFC 7239 `Forwarded` header: comma-separated elements of `;`-separated `name=value`
//! pairs, values being tokens or quoted strings, names case-insensitive.
use crate::ascii::ows_len;
use crate::http1::is_tchar;

/// One forwarded-element: the parameters Ferrule reads, values without their quotes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Element<'a> {
    pub for_: Option<&'a [u8]>,
    pub proto: Option<&'a [u8]>,
    pub host: Option<&'a [u8]>,
}

/// Parses a whole `Forwarded` value; `None` when it is malformed anywhere (a parameter
/// repeated within an element, an unterminated or escaped quoted string, a missing `=`) or
/// holds no element. Empty list items (`a, , b`) are skipped as RFC 9110 lists allow.
pub(super) fn parse_forwarded(v: &[u8]) -> Option<Vec<Element<'_>>> {
    let mut elements = Vec::new();
    let mut current = Element::default();
    let mut pairs = 0usize;
    let mut by = false;
    let mut i = 0;
    loop {
        i += ows_len(v.get(i..)?);
        let Some(&c) = v.get(i) else { break };
        match c {
            b',' => {
                if pairs > 0 {
                    elements.push(current);
                }
                (current, pairs, by) = (Element::default(), 0, false);
                i += 1;
                continue;
            }
            b';' => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let name_len = v.get(i..)?.iter().take_while(|&&c| is_tchar(c)).count();
        let name = v.get(i..i + name_len).filter(|n| !n.is_empty())?;
        i += name_len;
        if v.get(i) != Some(&b'=') {
            return None;
        }
        i += 1;
        let (value, used) = value(v.get(i..)?)?;
        i += used;
        let slot = if name.eq_ignore_ascii_case(b"for") {
            Some(&mut current.for_)
        } else if name.eq_ignore_ascii_case(b"proto") {
            Some(&mut current.proto)
        } else if name.eq_ignore_ascii_case(b"host") {
            Some(&mut current.host)
        } else if name.eq_ignore_ascii_case(b"by") {
            if by {
                return None;
            }
            by = true;
            None
        } else {
            None
        };
        if let Some(slot) = slot {
            if slot.is_some() {
                return None;
            }
            *slot = Some(value);
        }
        pairs += 1;
        i += ows_len(v.get(i..)?);
        if !matches!(v.get(i), None | Some(b';' | b',')) {
            return None;
        }
    }
    if pairs > 0 {
        elements.push(current);
    }
    (!elements.is_empty()).then_some(elements)
}

/// A value at the front of `v` and the bytes it took: a quoted string (without escapes) or a
/// run of bytes up to `;`, `,` or whitespace. `None` when empty or unterminated.
fn value(v: &[u8]) -> Option<(&[u8], usize)> {
    if let Some(rest) = v.strip_prefix(b"\"") {
        let end = memchr::memchr2(b'"', b'\\', rest)?;
        if rest.get(end) != Some(&b'"') {
            return None;
        }
        return Some((rest.get(..end)?, end + 2));
    }
    let len = v
        .iter()
        .take_while(|&&c| !matches!(c, b';' | b',' | b' ' | b'\t' | b'"'))
        .count();
    (len > 0).then(|| (v.get(..len).unwrap_or_default(), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_and_quoted_values() {
        let e = parse_forwarded(
            b"for=192.0.2.60;proto=http;by=203.0.113.43, For=\"[2001:db8:cafe::17]:4711\"",
        )
        .unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].for_, Some(&b"192.0.2.60"[..]));
        assert_eq!(e[0].proto, Some(&b"http"[..]));
        assert_eq!(e[1].for_, Some(&b"[2001:db8:cafe::17]:4711"[..]));
        let e = parse_forwarded(b"  ,  HOST=example.com ;  PROTO=https ,").unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].host, e[0].proto),
            (Some(&b"example.com"[..]), Some(&b"https"[..]))
        );
    }

    #[test]
    fn malformed_headers_are_none() {
        for bad in [
            &b""[..],
            b" , ",
            b"for",
            b"for=",
            b"for =1.2.3.4",
            b"for=\"1.2.3.4",
            b"for=\"a\\\"b\"",
            b"for=1.2.3.4;for=5.6.7.8",
            b"by=a;by=b",
            b"for=\"a\"b",
            b"for=a b",
            b"=a",
        ] {
            assert_eq!(parse_forwarded(bad), None, "{}", bad.escape_ascii());
        }
    }
}
