"""`wsgiref.validate.validator(app)` served without a single warning or error (PEP 3333)."""

import re

import requests
from conftest import read_response

PROBLEMS = re.compile(r"Error|Warning|Traceback|Exception|without being closed|assert", re.IGNORECASE)


def assert_clean_log(srv):
    # The server logs app errors when it sees them: a request after all the others, then the log.
    assert requests.get(srv.url + "/").status_code == 200
    bad = [line for line in srv.log if PROBLEMS.search(line)]
    assert bad == [], srv.text


def test_validator_sees_no_problem_in_get_post_head_write_and_generator(serve_both):
    srv = serve_both("pep_validate:application")
    with requests.Session() as s:
        r = s.get(srv.url + "/")
        assert (r.status_code, r.text) == (200, "hello")
        r = s.post(srv.url + "/post", data=b"line 1\nline 2\n")
        assert (r.status_code, r.text) == (200, "got line 1\nline 2\n(b'', [], [])")
        r = s.head(srv.url + "/")
        assert (r.status_code, r.content, r.headers["Content-Length"]) == (200, b"", "5")
        r = s.get(srv.url + "/write")
        assert (r.status_code, r.text) == (200, "via write")
        r = s.get(srv.url + "/generator")
        assert (r.status_code, r.text) == (200, "gen 0;gen 1;gen 2;")
        r = s.head(srv.url + "/generator")
        assert (r.status_code, r.content) == (200, b"")
        r = s.get(srv.url + "/no_content")
        assert (r.status_code, r.content) == (204, b"")
    assert_clean_log(srv)


def test_validator_sees_no_problem_with_a_chunked_post_and_a_query(serve):
    srv = serve("pep_validate:application")
    with srv.connect() as s:
        s.sendall(
            b"POST /post?a=1&b=%20 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n"
        )
        status, _, body = read_response(s)
    # No CONTENT_LENGTH with a chunked body: the app reads 0 bytes, then the rest by lines.
    assert status == b"HTTP/1.1 200 OK"
    assert body == b"got (b'abcdefg', [], [])"
    assert_clean_log(srv)
