use std::time::Duration;

use super::{json_line, Fields, Format, Record, DEFAULT_FORMAT};

struct Head(Vec<(&'static [u8], &'static [u8])>);

impl Fields for Head {
    fn field(&self, name: &[u8]) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

fn record<'a>(fields: &'a Head, response: &'a [u8]) -> Record<'a> {
    Record {
        remote: "10.0.0.1".to_owned(),
        method: b"GET",
        target: b"/a/b?x=1",
        version: b"HTTP/1.1",
        fields,
        response_headers: response,
        status: 201,
        sent: 0,
        elapsed: Duration::from_micros(1_234_567),
        request_id: Some(b"abc"),
    }
}

fn render(format: &str, r: &Record<'_>) -> String {
    Format::parse(format).expect("a valid format").render(r)
}

#[test]
fn each_atom_renders() {
    let head = Head(vec![
        (b"User-Agent", b"curl/8"),
        (b"Referer", b"http://r/"),
        (b"Authorization", b"Basic dXNlcjpwdw=="),
        (b"X-Thing", b"t"),
    ]);
    let r = record(&head, b"Content-Type: text/plain\r\nX-Out: yes\r\n");
    let cases = [
        ("%(h)s", "10.0.0.1"),
        ("%(l)s", "-"),
        ("%(u)s", "user"),
        ("%(r)s", "GET /a/b?x=1 HTTP/1.1"),
        ("%(m)s", "GET"),
        ("%(U)s", "/a/b"),
        ("%(q)s", "x=1"),
        ("%(H)s", "HTTP/1.1"),
        ("%(s)s", "201"),
        ("%(B)s", "0"),
        ("%(b)s", "-"),
        ("%(f)s", "http://r/"),
        ("%(a)s", "curl/8"),
        ("%(T)s", "1"),
        ("%(D)s", "1234567"),
        ("%(M)s", "1234"),
        ("%(L)s", "1.234567"),
        ("%({x-thing}i)s", "t"),
        ("%({X-Out}o)s", "yes"),
        ("%({content-type}o)s", "text/plain"),
        ("%({missing}o)s", "-"),
        ("%({request_method}e)s", "GET"),
        ("%({HTTP_X_THING}e)s", "t"),
        ("%({request_id})s", "abc"),
        ("%(nope)s", "-"),
        ("100%% %(s)s", "100% 201"),
    ];
    for (format, want) in cases {
        assert_eq!(render(format, &r), want, "{format}");
    }
    assert_eq!(render("%(p)s", &r), format!("<{}>", std::process::id()));
    assert!(render("%(t)s", &r).starts_with('['));
}

#[test]
fn default_format_is_todays_line() {
    let head = Head(vec![(b"User-Agent", b"a \"q\" \\")]);
    let line = render(DEFAULT_FORMAT, &record(&head, b""));
    let (start, rest) = line.split_once(" [").expect("a time");
    assert_eq!(start, "10.0.0.1 - -");
    let (_, rest) = rest.split_once("] ").expect("a time's end");
    assert_eq!(
        rest,
        r#""GET /a/b?x=1 HTTP/1.1" 201 - "-" "a \"q\" \\" 1234567us"#
    );
}

#[test]
fn bad_formats_are_refused() {
    for bad in ["%s", "%(h", "%(h)", "%(h)x", "50%"] {
        assert!(Format::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn text_escapes_control_and_invalid_bytes() {
    let head = Head(vec![(b"User-Agent", b"a\x01b\xffc")]);
    assert_eq!(render("%(a)s", &record(&head, b"")), r"a\x01b\xffc");
}

#[test]
fn json_escapes_and_reads_latin1() {
    let head = Head(vec![
        (b"User-Agent", b"q\" b\\ \x01\t"),
        (b"Referer", b"caf\xe9"),
    ]);
    let line = json_line(&record(&head, b""));
    assert!(
        line.contains(r#""user_agent":"q\" b\\ \u0001\t""#),
        "{line}"
    );
    assert!(line.contains(r#""referer":"caf\u00e9""#), "{line}");
    assert!(line.contains(r#""path":"/a/b","query":"x=1""#), "{line}");
    assert!(
        line.contains(r#""status":201,"bytes":0,"duration_ms":1234.567"#),
        "{line}"
    );
    assert!(line.contains(r#""request_id":"abc""#), "{line}");
}

#[test]
fn a_refused_head_gives_what_came_whole() {
    use super::Partial;
    let p = Partial::parse(
        b"\r\nGET /x?y HTTP/1.1\r\nUser-Agent: ua\r\nbroken\r\nReferer: r\r\nX-Cut: a",
    );
    assert_eq!(
        (p.method, p.target, p.version),
        (&b"GET"[..], &b"/x?y"[..], &b"HTTP/1.1"[..])
    );
    assert_eq!(p.fields.field(b"user-agent"), Some(&b"ua"[..]));
    assert_eq!(p.fields.field(b"referer"), Some(&b"r"[..]));
    // A line still coming is not a field yet.
    assert_eq!(p.fields.field(b"x-cut"), None);
    // Fields end at the blank line.
    let p = Partial::parse(b"GET / HTTP/1.1\r\n\r\nUser-Agent: body\r\n");
    assert_eq!(p.fields.field(b"user-agent"), None);
}

#[test]
fn a_request_line_cut_short_gives_its_method_at_most() {
    use super::Partial;
    let p = Partial::parse(b"POST /aaaaaaaa");
    assert_eq!(
        (p.method, p.target, p.version),
        (&b"POST"[..], &b"-"[..], &b"-"[..])
    );
    let p = Partial::parse(b"POSTPOSTPOST");
    assert_eq!(p.method, b"-");
    let p = Partial::parse(b"BAD REQUEST\r\n\r\n");
    assert_eq!(
        (p.method, p.target, p.version),
        (&b"BAD"[..], &b"REQUEST"[..], &b"-"[..])
    );
}
