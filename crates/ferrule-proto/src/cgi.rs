//! From a request head to CGI variables: target splitting, percent-decoding, Host parsing,
//! `HTTP_*` names; and back, for gateway requests: the path and target their CGI variables
//! describe ([`gateway_path_info`], [`gateway_target`]) and the path under `--root-path`
//! ([`strip_root_path`]).
use std::borrow::Cow;

use crate::vars::CgiVars;

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

/// The scheme of an absolute-form target, `"http"` or `"https"` (RFC 9112 section 3.2.2: it
/// says how the request came, as the authority says to whom); None for other forms.
#[must_use]
pub fn target_scheme(target: &[u8]) -> Option<&'static str> {
    let (head, _) = target.split_at_checked(8)?;
    if head.eq_ignore_ascii_case(b"https://") {
        Some("https")
    } else if head.get(..7)?.eq_ignore_ascii_case(b"http://") {
        Some("http")
    } else {
        None
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

/// The path a gateway request (uwsgi, SCGI, FastCGI) asks for, before `--root-path` is taken
/// off with [`strip_root_path`]:
///
/// 1. `PATH_INFO` as sent, when not empty (nginx's stock `uwsgi_params` sends it);
/// 2. else the path of `REQUEST_URI`, when not empty (before `?`, absolute-form authority
///    dropped), percent-decoded as bytes (`%2F` becomes `/`, to be read as latin-1): nginx's
///    stock `scgi_params` and `fastcgi_params` send no PATH_INFO;
/// 3. else `DOCUMENT_URI` as sent, even empty (nginx has already decoded and normalised it);
/// 4. else `/`.
#[must_use]
pub fn gateway_path_info(vars: &CgiVars) -> Cow<'_, [u8]> {
    if let Some(path) = vars.get(b"PATH_INFO").filter(|p| !p.is_empty()) {
        return Cow::Borrowed(path);
    }
    if let Some(uri) = vars.get(b"REQUEST_URI").filter(|u| !u.is_empty()) {
        return percent_decode(split_target(uri).path);
    }
    Cow::Borrowed(vars.get(b"DOCUMENT_URI").unwrap_or(b"/"))
}

/// The target of a gateway request as the client sent it, for `REQUEST_URI`, `RAW_URI` and
/// the access log: `REQUEST_URI` as sent, when not empty; else `DOCUMENT_URI` (as sent, even
/// empty), else `PATH_INFO`, else `/`, followed by `?` and `QUERY_STRING` when that is not
/// empty.
#[must_use]
pub fn gateway_target(vars: &CgiVars) -> Cow<'_, [u8]> {
    if let Some(uri) = vars.get(b"REQUEST_URI").filter(|u| !u.is_empty()) {
        return Cow::Borrowed(uri);
    }
    let path = vars
        .get(b"DOCUMENT_URI")
        .or_else(|| vars.get(b"PATH_INFO"))
        .unwrap_or(b"/");
    match vars.get(b"QUERY_STRING").filter(|q| !q.is_empty()) {
        Some(query) => {
            let mut target = Vec::with_capacity(path.len() + 1 + query.len());
            target.extend_from_slice(path);
            target.push(b'?');
            target.extend_from_slice(query);
            Cow::Owned(target)
        }
        None => Cow::Borrowed(path),
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
        assert_eq!(target_scheme(b"HTTPS://h/"), Some("https"));
        assert_eq!(target_scheme(b"http://h/"), Some("http"));
        assert_eq!(target_scheme(b"http://"), None);
        assert_eq!(target_scheme(b"/http://h"), None);
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

    fn vars(pairs: &[(&str, &str)]) -> CgiVars {
        let mut buf = Vec::new();
        let mut spans = Vec::new();
        for (n, v) in pairs {
            let name = buf.len();
            buf.extend_from_slice(n.as_bytes());
            let value = buf.len();
            buf.extend_from_slice(v.as_bytes());
            spans.push((name..value, value..buf.len()));
        }
        CgiVars::new(bytes::Bytes::from(buf), spans)
    }

    #[test]
    fn gateway_path_info_is_path_info_else_request_uri_else_document_uri_else_slash() {
        let all = [
            ("PATH_INFO", "/p%41"),
            ("REQUEST_URI", "/u"),
            ("DOCUMENT_URI", "/d"),
        ];
        assert_eq!(&*gateway_path_info(&vars(&all)), b"/p%41");
        let p = vars(&[
            ("PATH_INFO", ""),
            ("REQUEST_URI", "/a%2Fb/%C3%A9?x=%2F"),
            ("DOCUMENT_URI", "/ignored"),
        ]);
        assert_eq!(&*gateway_path_info(&p), b"/a/b/\xc3\xa9");
        let p = vars(&[("REQUEST_URI", "http://h:1/p?q")]);
        assert_eq!(&*gateway_path_info(&p), b"/p");
        let p = vars(&[("REQUEST_URI", "?only")]);
        assert_eq!(&*gateway_path_info(&p), b"");
        let p = vars(&[("REQUEST_URI", ""), ("DOCUMENT_URI", "/d%20")]);
        assert_eq!(&*gateway_path_info(&p), b"/d%20");
        assert_eq!(&*gateway_path_info(&vars(&[("DOCUMENT_URI", "")])), b"");
        assert_eq!(&*gateway_path_info(&vars(&[])), b"/");
    }

    #[test]
    fn gateway_target_is_request_uri_else_a_path_and_the_query() {
        let t = vars(&[("REQUEST_URI", "/u?x"), ("QUERY_STRING", "y")]);
        assert!(matches!(gateway_target(&t), Cow::Borrowed(b"/u?x")));
        let t = vars(&[
            ("REQUEST_URI", ""),
            ("DOCUMENT_URI", "/d"),
            ("PATH_INFO", "/p"),
            ("QUERY_STRING", "a=1"),
        ]);
        assert_eq!(&*gateway_target(&t), b"/d?a=1");
        let t = vars(&[("PATH_INFO", "/p"), ("QUERY_STRING", "")]);
        assert_eq!(&*gateway_target(&t), b"/p");
        let t = vars(&[("DOCUMENT_URI", ""), ("PATH_INFO", "/p")]);
        assert_eq!(&*gateway_target(&t), b"");
        assert_eq!(&*gateway_target(&vars(&[("QUERY_STRING", "q")])), b"/?q");
    }

    #[test]
    fn root_path_is_stripped_on_segment_boundaries() {
        assert_eq!(strip_root_path(b"/app", b"/app/x"), Some(&b"/x"[..]));
        assert_eq!(strip_root_path(b"/app", b"/app"), Some(&b""[..]));
        assert_eq!(strip_root_path(b"/app", b"/apple"), None);
        assert_eq!(strip_root_path(b"/app", b"/other"), None);
        assert_eq!(strip_root_path(b"", b"/x"), Some(&b"/x"[..]));
        assert_eq!(strip_root_path(b"/app", b"*"), Some(&b"*"[..]));
        assert_eq!(strip_root_path(b"", b"*"), Some(&b"*"[..]));
        assert_eq!(strip_root_path(b"", b""), Some(&b""[..]));
    }

    #[test]
    fn header_names() {
        let mut out = Vec::new();
        assert!(cgi_header_name(b"X-Forwarded-For", &mut out));
        assert_eq!(out, b"HTTP_X_FORWARDED_FOR");
        assert!(!cgi_header_name(b"X_Forwarded_For", &mut out));
    }
}
