//! The ASCII toolbox every codec shares: decimal numbers, optional whitespace, byte search and
//! byte-class tables. All of it reads through bounds-checked slices and checked arithmetic.

/// `1*DIGIT` that fits in a u64; no sign, no whitespace, no hex.
#[must_use]
pub fn parse_decimal(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    b.iter().try_fold(0u64, |acc, &c| {
        if c.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
        } else {
            None
        }
    })
}

/// A port: 1 to 5 decimal digits (leading zeros allowed), at most 65535.
pub(crate) fn parse_port(b: &[u8]) -> Option<u16> {
    if b.len() > 5 {
        return None;
    }
    u16::try_from(parse_decimal(b)?).ok()
}

/// Optional whitespace (SP, HTAB) trimmed from both ends.
#[must_use]
pub fn trim_ows(b: &[u8]) -> &[u8] {
    let start = ows_len(b);
    let end = b.iter().rposition(|&c| !is_ows(c)).map_or(start, |e| e + 1);
    b.get(start..end).unwrap_or_default()
}

/// How many bytes of optional whitespace (SP, HTAB) `b` starts with.
pub(crate) fn ows_len(b: &[u8]) -> usize {
    b.iter().take_while(|&&c| is_ows(c)).count()
}

/// SP or HTAB, the bytes of `OWS` (RFC 9110 section 5.6.3).
fn is_ows(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Below this length a plain loop finds a byte sooner than `memchr`'s vector setup (the
/// paths, hosts and ports of most requests are this short).
const SHORT: usize = 32;

/// The first `needle` in `hay`.
#[inline]
pub(crate) fn find(needle: u8, hay: &[u8]) -> Option<usize> {
    if hay.len() < SHORT {
        hay.iter().position(|&c| c == needle)
    } else {
        memchr::memchr(needle, hay)
    }
}

/// The last `needle` in `hay`.
#[inline]
pub(crate) fn rfind(needle: u8, hay: &[u8]) -> Option<usize> {
    if hay.len() < SHORT {
        hay.iter().rposition(|&c| c == needle)
    } else {
        memchr::memrchr(needle, hay)
    }
}

/// A byte-class table: ASCII letters and digits, and the bytes of `extra`. For the grammar's
/// character classes checked on every request (one load per byte, no search).
pub(crate) const fn alnum_and(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = (c as u8).is_ascii_alphanumeric();
        c += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_plain_digits_that_fit_a_u64() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"007"), Some(7));
        assert_eq!(parse_decimal(b"18446744073709551615"), None); // 20 digits
        assert_eq!(
            parse_decimal(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        for bad in [&b""[..], b"+1", b"-1", b" 1", b"1 ", b"0x1", b"1.0"] {
            assert_eq!(parse_decimal(bad), None, "{}", bad.escape_ascii());
        }
    }

    #[test]
    fn ports_are_up_to_five_digits_and_at_most_65535() {
        assert_eq!(parse_port(b"0"), Some(0));
        assert_eq!(parse_port(b"00080"), Some(80));
        assert_eq!(parse_port(b"65535"), Some(65535));
        assert_eq!(parse_port(b"65536"), None);
        assert_eq!(parse_port(b"000080"), None);
        assert_eq!(parse_port(b""), None);
        assert_eq!(parse_port(b"8a"), None);
    }

    #[test]
    fn ows_is_spaces_and_tabs_only() {
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        assert_eq!(trim_ows(b" \t "), b"");
        assert_eq!(trim_ows(b""), b"");
        assert_eq!(trim_ows(b"\r\na\n"), b"\r\na\n");
        assert_eq!(ows_len(b" \tx "), 2);
        assert_eq!(ows_len(b"x"), 0);
    }

    #[test]
    fn find_and_rfind_agree_with_memchr_on_either_side_of_the_short_length() {
        for len in 0usize..80 {
            for at in [None, Some(0), Some(len / 2), Some(len.saturating_sub(1))] {
                let mut hay = vec![b'a'; len];
                if let Some(i) = at.filter(|&i| i < len) {
                    hay[i] = b':';
                    hay[len - 1 - i] = b':';
                }
                assert_eq!(find(b':', &hay), memchr::memchr(b':', &hay), "{len} {at:?}");
                assert_eq!(
                    rfind(b':', &hay),
                    memchr::memrchr(b':', &hay),
                    "{len} {at:?}"
                );
            }
        }
    }
}
