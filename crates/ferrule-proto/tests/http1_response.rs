//! HTTP/1 response heads from their parts: line order, framing, Connection, status line forms,
//! and the server's own short answers, checked as raw bytes.
use ferrule_proto::http1::response::{
    framing, reason, simple_response, Connection, Framing, ResponseHead, StatusLine,
};
use ferrule_proto::http1::Version;

const DATE: &[u8] = b"Sun, 22 Nov 2026 00:00:00 GMT";
const FIELDS: &[u8] = b"Content-Type: text/plain\r\nX-A: 1\r\n";

/// A head with every optional line left out; tests set what they check.
fn bare(framing: Framing) -> ResponseHead<'static> {
    ResponseHead {
        line: StatusLine::Http11,
        status: b"200 OK",
        fields: FIELDS,
        server: None,
        date: None,
        content_length: None,
        framing,
        connection: Connection::Default,
    }
}

fn encode(head: &ResponseHead<'_>) -> String {
    let mut out = Vec::new();
    head.encode(&mut out);
    assert!(
        out.len() <= head.max_len(),
        "{} > {}",
        out.len(),
        head.max_len()
    );
    String::from_utf8(out).expect("heads here are ASCII")
}

#[test]
fn full_head_writes_its_lines_in_order() {
    let head = ResponseHead {
        server: Some(b"ferrule"),
        date: Some(DATE),
        content_length: Some(5),
        connection: Connection::Close,
        ..bare(Framing::Length(5))
    };
    assert_eq!(
        encode(&head),
        "HTTP/1.1 200 OK\r\n\
         Server: ferrule\r\n\
         Date: Sun, 22 Nov 2026 00:00:00 GMT\r\n\
         Content-Type: text/plain\r\nX-A: 1\r\n\
         Content-Length: 5\r\n\
         Connection: close\r\n\
         \r\n"
    );
}

#[test]
fn head_without_server_date_or_length_is_status_fields_and_blank_line() {
    assert_eq!(
        encode(&bare(Framing::Length(5))),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\n\r\n"
    );
}

#[test]
fn length_framing_with_the_apps_own_length_adds_none() {
    // The app sent Content-Length among its fields: `content_length` stays None.
    let head = ResponseHead {
        fields: b"Content-Length: 5\r\n",
        ..bare(Framing::Length(5))
    };
    assert_eq!(
        encode(&head),
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    );
}

#[test]
fn chunked_framing_announces_transfer_encoding() {
    let head = ResponseHead {
        date: Some(DATE),
        ..bare(Framing::Chunked)
    };
    assert_eq!(
        encode(&head),
        "HTTP/1.1 200 OK\r\n\
         Date: Sun, 22 Nov 2026 00:00:00 GMT\r\n\
         Content-Type: text/plain\r\nX-A: 1\r\n\
         Transfer-Encoding: chunked\r\n\
         \r\n"
    );
}

#[test]
fn no_body_framing_keeps_a_known_length_and_adds_no_transfer_encoding() {
    // A HEAD answer says how long the GET body would be.
    let head = ResponseHead {
        content_length: Some(42),
        ..bare(Framing::NoBody)
    };
    assert_eq!(
        encode(&head),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\nContent-Length: 42\r\n\r\n"
    );
    let head = ResponseHead {
        status: b"304 Not Modified",
        fields: b"",
        ..bare(Framing::NoBody)
    };
    assert_eq!(encode(&head), "HTTP/1.1 304 Not Modified\r\n\r\n");
}

#[test]
fn close_framing_has_neither_length_nor_transfer_encoding() {
    let head = ResponseHead {
        connection: Connection::Close,
        ..bare(Framing::Close)
    };
    assert_eq!(
        encode(&head),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn connection_values_write_nothing_keep_alive_or_close_last() {
    for (connection, line) in [
        (Connection::Default, ""),
        (Connection::KeepAlive, "Connection: keep-alive\r\n"),
        (Connection::Close, "Connection: close\r\n"),
    ] {
        let head = ResponseHead {
            connection,
            ..bare(Framing::Chunked)
        };
        assert_eq!(
            encode(&head),
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\n\
                 Transfer-Encoding: chunked\r\n{line}\r\n"
            ),
            "{connection:?}"
        );
    }
}

#[test]
fn cgi_status_line_says_status_and_never_writes_a_connection_line() {
    for connection in [
        Connection::Default,
        Connection::KeepAlive,
        Connection::Close,
    ] {
        let head = ResponseHead {
            line: StatusLine::Cgi,
            status: b"404 Not Found",
            server: Some(b"ferrule"),
            date: Some(DATE),
            content_length: Some(3),
            connection,
            ..bare(Framing::Close)
        };
        assert_eq!(
            encode(&head),
            "Status: 404 Not Found\r\n\
             Server: ferrule\r\n\
             Date: Sun, 22 Nov 2026 00:00:00 GMT\r\n\
             Content-Type: text/plain\r\nX-A: 1\r\n\
             Content-Length: 3\r\n\
             \r\n",
            "{connection:?}"
        );
    }
}

#[test]
fn encode_appends_to_what_the_buffer_holds() {
    let mut out = b"earlier".to_vec();
    bare(Framing::NoBody).encode(&mut out);
    assert!(out.starts_with(b"earlierHTTP/1.1 200 OK\r\n"));
    assert!(out.ends_with(b"\r\n\r\n"));
}

#[test]
fn max_len_bounds_every_combination_of_lines() {
    let framings = [
        Framing::NoBody,
        Framing::Length(u64::MAX),
        Framing::Chunked,
        Framing::Close,
    ];
    let connections = [
        Connection::Default,
        Connection::KeepAlive,
        Connection::Close,
    ];
    for line in [StatusLine::Http11, StatusLine::Cgi] {
        for framing in framings {
            for connection in connections {
                for server in [None, Some(&b"ferrule/1.0"[..])] {
                    for date in [None, Some(DATE)] {
                        for content_length in [None, Some(0), Some(u64::MAX)] {
                            let head = ResponseHead {
                                line,
                                status: b"599 Some Long Reason Phrase",
                                fields: FIELDS,
                                server,
                                date,
                                content_length,
                                framing,
                                connection,
                            };
                            // `encode` asserts the bound.
                            let text = encode(&head);
                            assert!(text.ends_with("\r\n\r\n"));
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn framing_is_none_for_bodiless_responses_whatever_the_length() {
    for version in [Version::Http10, Version::Http11] {
        for length in [None, Some(0), Some(10)] {
            assert_eq!(framing(version, true, length), Framing::NoBody);
        }
    }
}

#[test]
fn framing_uses_a_known_length_on_either_version() {
    assert_eq!(
        framing(Version::Http11, false, Some(10)),
        Framing::Length(10)
    );
    assert_eq!(
        framing(Version::Http10, false, Some(10)),
        Framing::Length(10)
    );
    assert_eq!(framing(Version::Http11, false, Some(0)), Framing::Length(0));
}

#[test]
fn framing_without_a_length_is_chunked_on_http11_and_close_on_http10() {
    assert_eq!(framing(Version::Http11, false, None), Framing::Chunked);
    assert_eq!(framing(Version::Http10, false, None), Framing::Close);
}

#[test]
fn simple_response_names_its_status_and_closes_when_asked() {
    let r = simple_response(StatusLine::Http11, 400, true, DATE, None, false);
    assert_eq!(
        r,
        b"HTTP/1.1 400 Bad Request\r\n\
          Date: Sun, 22 Nov 2026 00:00:00 GMT\r\n\
          Connection: close\r\n\
          Content-Type: text/plain; charset=utf-8\r\n\
          Content-Length: 12\r\n\
          \r\n\
          Bad Request\n"
    );
}

#[test]
fn simple_response_with_server_and_keep_alive_has_no_connection_line() {
    let r = simple_response(
        StatusLine::Http11,
        404,
        false,
        DATE,
        Some(b"ferrule"),
        false,
    );
    assert_eq!(
        r,
        b"HTTP/1.1 404 Not Found\r\n\
          Server: ferrule\r\n\
          Date: Sun, 22 Nov 2026 00:00:00 GMT\r\n\
          Content-Type: text/plain; charset=utf-8\r\n\
          Content-Length: 10\r\n\
          \r\n\
          Not Found\n"
    );
}

#[test]
fn simple_response_to_head_keeps_the_length_but_sends_no_body() {
    let r = simple_response(StatusLine::Http11, 500, true, DATE, None, true);
    assert_eq!(
        r,
        b"HTTP/1.1 500 Internal Server Error\r\n\
          Date: Sun, 22 Nov 2026 00:00:00 GMT\r\n\
          Connection: close\r\n\
          Content-Type: text/plain; charset=utf-8\r\n\
          Content-Length: 22\r\n\
          \r\n"
    );
}

#[test]
fn simple_response_in_cgi_form_says_status_and_leaves_the_connection_out() {
    for close in [false, true] {
        let r = simple_response(StatusLine::Cgi, 404, close, DATE, Some(b"ferrule"), false);
        assert_eq!(
            r,
            b"Status: 404 Not Found\r\n\
              Server: ferrule\r\n\
              Date: Sun, 22 Nov 2026 00:00:00 GMT\r\n\
              Content-Type: text/plain; charset=utf-8\r\n\
              Content-Length: 10\r\n\
              \r\n\
              Not Found\n"
        );
    }
    let r = simple_response(StatusLine::Cgi, 413, true, DATE, None, false);
    assert!(r.starts_with(b"Status: 413 Content Too Large\r\nDate: "));
    assert!(r.ends_with(b"Content-Length: 18\r\n\r\nContent Too Large\n"));
}

#[test]
fn parse_errors_use_the_servers_reason_phrases() {
    use ferrule_proto::{ParseError, UwsgiError};
    for e in [
        ParseError::Syntax("x"),
        ParseError::RequestLineTooLong,
        ParseError::TooManyHeaders,
        ParseError::Version,
        ParseError::Method,
        ParseError::Expectation,
        ParseError::BodyTooLarge,
        ParseError::Uwsgi(UwsgiError::UnsupportedModifier {
            modifier1: 1,
            modifier2: 0,
        }),
    ] {
        assert_eq!(e.reason(), reason(e.status()), "{e:?}");
        assert_ne!(e.reason(), "Unknown", "{e:?}");
    }
}
