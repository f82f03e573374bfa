//! Precompressed siblings (`a.css.br`, `a.css.zst`, `a.css.gz`) and the choice among them by
//! the client's `Accept-Encoding` (RFC 9110 section 12.5.3, with q-values).
use super::conditional::trim;

/// A content coding served from a precompressed sibling file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Br,
    Zstd,
    Gzip,
}

impl Coding {
    /// In order of preference when the client weighs them the same (smallest output first).
    pub const ALL: [Self; 3] = [Self::Br, Self::Zstd, Self::Gzip];

    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Self::Br => "br",
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
        }
    }

    /// What the sibling's name adds to the file's.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Br => ".br",
            Self::Zstd => ".zst",
            Self::Gzip => ".gz",
        }
    }

    /// Its place in [`Self::ALL`].
    pub fn index(self) -> usize {
        match self {
            Self::Br => 0,
            Self::Zstd => 1,
            Self::Gzip => 2,
        }
    }
}

/// The weight (q-value in thousandths, 0 excluded) the client gives each coding in
/// [`Coding::ALL`]'s order. A coding not listed takes `*`'s weight, else 0; `x-gzip` is gzip.
/// An element with a malformed q-value is ignored.
pub fn weights(accept: &[u8]) -> [u16; 3] {
    let mut listed: [Option<u16>; 3] = [None; 3];
    let mut star = 0;
    for element in accept.split(|&c| c == b',') {
        let mut parts = element.split(|&c| c == b';');
        let token = trim(parts.next().unwrap_or_default());
        if token.is_empty() {
            continue;
        }
        let mut q = Some(1000);
        for param in parts {
            let param = trim(param);
            if let Some(v) = param
                .strip_prefix(b"q=")
                .or_else(|| param.strip_prefix(b"Q="))
            {
                q = qvalue(trim(v));
            }
        }
        let Some(q) = q else { continue };
        let slot = if token == b"*" {
            star = q;
            continue;
        } else if token.eq_ignore_ascii_case(b"br") {
            Coding::Br
        } else if token.eq_ignore_ascii_case(b"zstd") {
            Coding::Zstd
        } else if token.eq_ignore_ascii_case(b"gzip") || token.eq_ignore_ascii_case(b"x-gzip") {
            Coding::Gzip
        } else {
            continue;
        };
        let w = &mut listed[slot.index()];
        // Listed twice: the higher weight.
        *w = Some(w.map_or(q, |old| old.max(q)));
    }
    listed.map(|w| w.unwrap_or(star))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` in thousandths.
fn qvalue(v: &[u8]) -> Option<u16> {
    let (int, frac) = match v.iter().position(|&c| c == b'.') {
        Some(dot) => (v.get(..dot)?, v.get(dot + 1..)?),
        None => (v, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let thousandths = frac
        .iter()
        .chain(std::iter::repeat(&b'0'))
        .take(3)
        .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The coding to serve among those `available`: the client's heaviest (ties by
/// [`Coding::ALL`]'s order); None for the file itself.
pub fn choose(weights: [u16; 3], available: impl Fn(Coding) -> bool) -> Option<Coding> {
    let mut best: Option<(Coding, u16)> = None;
    for c in Coding::ALL {
        let w = weights[c.index()];
        if w > 0 && best.is_none_or(|(_, b)| w > b) && available(c) {
            best = Some((c, w));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values() {
        assert_eq!(weights(b"gzip, deflate, br, zstd"), [1000, 1000, 1000]);
        assert_eq!(weights(b"gzip;q=0.5, br;q=0.8"), [800, 0, 500]);
        assert_eq!(weights(b"br;q=0, *"), [0, 1000, 1000]);
        assert_eq!(weights(b"*;q=0.1, gzip"), [100, 100, 1000]);
        assert_eq!(weights(b"GZIP ; Q=1.000, Br;q=0.001"), [1, 0, 1000]);
        assert_eq!(weights(b"x-gzip"), [0, 0, 1000]);
        assert_eq!(weights(b"identity"), [0, 0, 0]);
        assert_eq!(weights(b""), [0, 0, 0]);
        assert_eq!(weights(b"gzip;q=0"), [0, 0, 0]);
        assert_eq!(weights(b"gzip;q=0.000"), [0, 0, 0]);
        assert_eq!(weights(b"gzip;q=0., br;q=.5"), [0, 0, 0]);
    }

    #[test]
    fn malformed_q_values_drop_their_element() {
        assert_eq!(weights(b"br;q=2, gzip;q=1.5, zstd;q=0.1234"), [0, 0, 0]);
        assert_eq!(weights(b"br;q=abc, gzip"), [0, 0, 1000]);
        assert_eq!(weights(b"br;q=1.001"), [0, 0, 0]);
    }

    #[test]
    fn choice_by_weight_then_preference() {
        let all = |_| true;
        assert_eq!(choose(weights(b"gzip, br, zstd"), all), Some(Coding::Br));
        assert_eq!(choose(weights(b"gzip, zstd"), all), Some(Coding::Zstd));
        assert_eq!(
            choose(weights(b"gzip;q=1, br;q=0.5"), all),
            Some(Coding::Gzip)
        );
        assert_eq!(
            choose(weights(b"gzip, br"), |c| c == Coding::Gzip),
            Some(Coding::Gzip)
        );
        assert_eq!(choose(weights(b"br;q=0, gzip;q=0"), all), None);
        assert_eq!(choose(weights(b"br"), |c| c == Coding::Gzip), None);
        assert_eq!(choose(weights(b"identity, *;q=0"), all), None);
    }
}
