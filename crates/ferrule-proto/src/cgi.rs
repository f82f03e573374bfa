//! From a request head to CGI variables: target splitting, percent-decoding, Host parsing and
//! `HTTP_*` names.
use std::borrow::Cow;

/// The parts of a request target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// The authority of an absolute-form target (`http://host:port/path`), which wins over Host.
    pub authority: Option<&'a [u8]>,
    /// The path, still percent-encoded.
    pub path: &'a [u8],
    /// Everything after the first `?`, without it.
    pub query: &'a [u8],
}

/// Splits origin-form (`/p?q`), absolute-form (`http://h/p?q`) and asterisk-form (`*`) targets.
#[must_use]
pub fn split_target(target: &[u8]) -> Target<'_> {
    let (authority, rest) = match strip_scheme(target) {
        Some(after) => {
            let end = after
                .iter()
                .position(|&c| c == b'/' || c == b'?')
                .unwrap_or(after.len());
            let (auth, rest) = after.split_at(end);
            (Some(auth), rest)
        }
        None => (None, target),
    };
    let (path, query) = match crate::ascii::find(b'?', rest) {
        Some(q) => (&rest[..q], &rest[q + 1..]),
        None => (rest, &b""[..]),
    };
    Target {
        authority,
        path,
        query,
    }
}

fn strip_scheme(target: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], b"https://"] {
        if target.len() >= scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return target.get(scheme.len()..);
        }
    }
    None
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits is kept as it is.
#[must_use]
pub fn percent_decode(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(first) = crate::ascii::find(b'%', input) else {
        return Cow::Borrowed(input);
    };
    let mut out = Vec::with_capacity(input.len());
    out.extend_from_slice(&input[..first]);
    let mut i = first;
    while i < input.len() {
        let c = input[i];
        if c == b'%' {
            if let (Some(h), Some(l)) = (
                input.get(i + 1).and_then(hex),
                input.get(i + 2).and_then(hex),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    Cow::Owned(out)
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "called through Option::and_then"
)]
fn hex(c: &u8) -> Option<u8> {
    (char::from(*c)).to_digit(16).map(|d| d as u8)
}

/// Whether `host` is `uri-host [":" port]` (RFC 3986): a reg-name, IPv4 or `[IPv6]`, then an
/// optional decimal port. Empty is allowed (RFC 9112 section 3.2).
#[must_use]
pub fn valid_host(host: &[u8]) -> bool {
    let (name, port) = split_host_port(host);
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    let name_ok = if name.first() == Some(&b'[') {
        name.len() > 2
            && name.last() == Some(&b']')
            && name[1..name.len() - 1]
                .iter()
                .all(|&c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
    } else {
        name.iter().all(|&c| REG_NAME[usize::from(c)])
    };
    port_ok && name_ok
}

/// The bytes of a reg-name (RFC 3986: unreserved, sub-delims, and `%` of pct-encoded).
static REG_NAME: [bool; 256] = crate::ascii::alnum_and(b"-._~!$&'()*+,;=%");

/// Splits `host[:port]`, keeping IPv6 literals' brackets in the name.
#[must_use]
pub fn split_host_port(host: &[u8]) -> (&[u8], Option<&[u8]>) {
    let colon = if host.first() == Some(&b'[') {
        match crate::ascii::find(b']', host) {
            Some(end) if host.get(end + 1) == Some(&b':') => Some(end + 1),
            _ => None,
        }
    } else {
        crate::ascii::rfind(b':', host)
    };
    match colon {
        Some(c) => (&host[..c], host.get(c + 1..)),
        None => (host, None),
    }
}

/// The path a gateway request asks for, when the front server sends no PATH_INFO (nginx's
/// stock `scgi_params` and `fastcgi_params` do not): the path of REQUEST_URI (before `?`,
/// absolute-form authority dropped), percent-decoded as bytes (`%2F` becomes `/`, to be read
/// as latin-1), else DOCUMENT_URI as sent (nginx has already decoded and normalised it).
/// `None` when neither is there (or both are empty). Strip `--root-path` from the result
/// with [`strip_root_path`].
#[must_use]
pub fn gateway_path_info<'a>(
    request_uri: Option<&'a [u8]>,
    document_uri: Option<&'a [u8]>,
) -> Option<Cow<'a, [u8]>> {
    match request_uri.filter(|u| !u.is_empty()) {
        Some(uri) => Some(percent_decode(split_target(uri).path)),
        None => document_uri.filter(|u| !u.is_empty()).map(Cow::Borrowed),
    }
}

/// PATH_INFO once the mount point `root` (`--root-path`, without a trailing `/`; empty for
/// none) is taken off the decoded `path`: `None` when `path` is outside `root`, which is
/// matched on segment boundaries (`/app` mounts `/app` and `/app/x`, not `/apple`).
/// `OPTIONS *` keeps `*`.
#[must_use]
pub fn strip_root_path<'a>(root: &[u8], path: &'a [u8]) -> Option<&'a [u8]> {
    if path == b"*" {
        return Some(path);
    }
    let rest = path.strip_prefix(root)?;
    (rest.is_empty() || rest.starts_with(b"/")).then_some(rest)
}

/// Writes the CGI name of header `name` (`HTTP_` + upper case, `-` as `_`) into `out`.
/// Returns false, writing nothing, for names holding `_`: dropped so that `X_Forwarded_For`
/// cannot pose as `X-Forwarded-For`.
pub fn cgi_header_name(name: &[u8], out: &mut Vec<u8>) -> bool {
    if name.contains(&b'_') {
        return false;
    }
    out.clear();
    out.extend_from_slice(b"HTTP_");
    out.extend(name.iter().map(|&c| {
        if c == b'-' {
            b'_'
        } else {
            c.to_ascii_uppercase()
        }
    }));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_forms_split() {
        let t = split_target(b"/a%2Fb?x=1&y=%20");
        assert_eq!(
            (t.authority, t.path, t.query),
            (None, &b"/a%2Fb"[..], &b"x=1&y=%20"[..])
        );
        let t = split_target(b"http://example.com:8080/p?q");
        assert_eq!(
            (t.authority, t.path, t.query),
            (Some(&b"example.com:8080"[..]), &b"/p"[..], &b"q"[..])
        );
        let t = split_target(b"HTTPS://h?q");
        assert_eq!(
            (t.authority, t.path, t.query),
            (Some(&b"h"[..]), &b""[..], &b"q"[..])
        );
        assert_eq!(split_target(b"*").path, b"*");
    }

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(&*percent_decode(b"/a%2Fb%c3%a9"), b"/a/b\xc3\xa9");
        assert_eq!(&*percent_decode(b"/100%"), b"/100%");
        assert_eq!(&*percent_decode(b"/%zz%4"), b"/%zz%4");
        assert!(matches!(percent_decode(b"/plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn hosts() {
        assert!(valid_host(b"example.com"));
        assert!(valid_host(b"example.com:8080"));
        assert!(valid_host(b"[::1]:80"));
        assert!(valid_host(b""));
        assert!(!valid_host(b"a b"));
        assert!(!valid_host(b"a:port"));
        assert!(!valid_host(b"a/b"));
        assert!(!valid_host(b"[::1"));
        assert_eq!(
            split_host_port(b"[::1]:80"),
            (&b"[::1]"[..], Some(&b"80"[..]))
        );
        assert_eq!(split_host_port(b"[::1]"), (&b"[::1]"[..], None));
        assert_eq!(split_host_port(b"h:1"), (&b"h"[..], Some(&b"1"[..])));
    }

    #[test]
    fn gateway_path_info_from_request_uri_else_document_uri() {
        let p = gateway_path_info(Some(b"/a%2Fb/%C3%A9?x=%2F"), Some(b"/ignored"));
        assert_eq!(p.as_deref(), Some(&b"/a/b/\xc3\xa9"[..]));
        let p = gateway_path_info(Some(b"http://h:1/p?q"), None);
        assert_eq!(p.as_deref(), Some(&b"/p"[..]));
        let p = gateway_path_info(Some(b""), Some(b"/doc"));
        assert_eq!(p.as_deref(), Some(&b"/doc"[..]));
        assert_eq!(
            gateway_path_info(None, Some(b"/d%20")).as_deref(),
            Some(&b"/d%20"[..])
        );
        assert_eq!(gateway_path_info(None, None), None);
        assert_eq!(
            gateway_path_info(Some(b"?only"), None).as_deref(),
            Some(&b""[..])
        );
    }

    #[test]
    fn root_path_is_stripped_on_segment_boundaries() {
        assert_eq!(strip_root_path(b"/app", b"/app/x"), Some(&b"/x"[..]));
        assert_eq!(strip_root_path(b"/app", b"/app"), Some(&b""[..]));
        assert_eq!(strip_root_path(b"/app", b"/apple"), None);
        assert_eq!(strip_root_path(b"/app", b"/other"), None);
        assert_eq!(strip_root_path(b"", b"/x"), Some(&b"/x"[..]));
        assert_eq!(strip_root_path(b"/app", b"*"), Some(&b"*"[..]));
    }

    #[test]
    fn header_names() {
        let mut out = Vec::new();
        assert!(cgi_header_name(b"X-Forwarded-For", &mut out));
        assert_eq!(out, b"HTTP_X_FORWARDED_FOR");
        assert!(!cgi_header_name(b"X_Forwarded_For", &mut out));
    }
}
