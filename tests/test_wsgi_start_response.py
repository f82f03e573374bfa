"""`start_response(status, headers, exc_info)` and `write()` (PEP 3333)."""

import pytest
import requests
from apps.pep import BAD_HEADERS, BAD_STATUS
from conftest import read_all, read_response


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


@pytest.fixture
def srv(serve):
    return serve("pep:app")


@pytest.mark.parametrize("case", BAD_STATUS)
def test_malformed_status_raises_into_the_app(srv, case):
    r = requests.get(f"{srv.url}/bad_status/{case}")
    assert r.status_code == 200
    assert r.text.startswith(("ValueError: status", "TypeError: status")), r.text


@pytest.mark.parametrize("case", BAD_HEADERS)
def test_malformed_headers_raise_into_the_app(srv, case):
    r = requests.get(f"{srv.url}/bad_headers/{case}")
    assert r.status_code == 200
    assert r.text.startswith(("ValueError: ", "TypeError: ")), r.text
    assert "X-Injected" not in r.headers


@pytest.mark.parametrize(
    "path,named",
    [
        ("/bad_status/bare_code", 'status "200" is not'),
        ("/bad_status/crlf", 'status "200 OK\\r\\nX-Injected: 1" is not'),
        ("/bad_status/not_str", "status must be a str"),
        ("/bad_headers/crlf_in_value", "invalid value for header X-Thing"),
        ("/bad_headers/not_tuple", "must be a (name, value) tuple"),
        ("/bad_headers/differing_content_length", "two differing Content-Length headers: 3 and 4"),
    ],
)
def test_uncaught_malformed_start_response_is_500_naming_the_mistake(srv, path, named):
    r = requests.get(f"{srv.url}{path}?catch=0")
    assert r.status_code == 500
    assert "X-Injected" not in r.headers and named not in r.text
    srv.wait_for_log("error calling the app")
    assert named in srv.text
    assert srv.text.count("Traceback (most recent call last)") == 1
    assert "bad_start_response" in srv.text  # the app's frame is in the traceback


def test_identical_duplicate_content_length_merges(srv):
    data = srv.raw(b"GET /same_content_length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert head.lower().count(b"content-length: 3") == 1
    assert body == b"abc"


def test_constant_header_tuples_count_on_every_response(srv):
    """Header tuples the app passes again and again (constants of its code) are each
    response's own: its Date and Server replace the server's, duplicates of Content-Length
    merge or fail every time, and a value built per request is that request's."""
    ns = ["2", "2", "3", "2", "3", "3", "2", "2"]
    with srv.connect() as s:
        for i, n in enumerate(ns):
            close = "Connection: close\r\n" if i == len(ns) - 1 else ""
            s.sendall(f"GET /constant_headers?n={n} HTTP/1.1\r\nHost: x\r\n{close}\r\n".encode())
        data = read_all(s)
    responses = [b"HTTP/1.1 " + r for r in data.split(b"HTTP/1.1 ")[1:]]
    assert len(responses) == len(ns)
    for n, r in zip(ns, responses, strict=True):
        head, _, body = r.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")[1:]
        names = [line.split(b":")[0].lower() for line in lines if line != b"Connection: close"]
        if n == "2":
            assert (head.split(b"\r\n")[0], body) == (b"HTTP/1.1 200 OK", b"ok")
            assert b"Date: Tue, 01 Jan 2030 00:00:00 GMT" in lines
            assert b"Server: app/1" in lines
            assert b"X-Value: 2" in lines
            assert sorted(names) == sorted([b"date", b"server", b"content-length", b"x-value"]), head
        else:
            assert head.startswith(b"HTTP/1.1 400 Bad Request"), head
            assert body == b"two differing Content-Length headers: 2 and 3"
            assert (
                names.count(b"date") == 1 and b"x-value" not in names and b"server: app/1" not in head.lower()
            )


def test_hop_by_hop_headers_are_dropped_with_a_warning_naming_them(srv):
    with srv.connect() as s:
        s.sendall(get("/hop_by_hop") + get("/hop_by_hop"))
        buf = bytearray()
        for _ in range(2):  # Connection: upgrade from the app did not reach the client
            status, headers, body = read_response(s, buf)
            assert (status, body) == (b"HTTP/1.1 200 OK", b"hop")
            assert headers["x-kept"] == "yes"
            assert headers["content-length"] == "3"
            assert "keep-alive" not in headers
            assert "transfer-encoding" not in headers
            assert "connection" not in headers
    line = srv.wait_for_log("hop-by-hop").string
    assert "Connection" in line and "Keep-Alive" in line and "Transfer-Encoding" in line


@pytest.mark.parametrize("query", ["", "?gen"])
def test_connection_close_from_the_app_closes_after_its_response(serve_both, query):
    srv = serve_both("pep:app")
    with srv.connect() as s:
        s.sendall(get(f"/connection_close{query}") + get("/connection_close"))
        s.settimeout(10)
        data = read_all(s)
    # One response, its head saying `Connection: close` once (the server's own line), then
    # the connection closed: the pipelined request was not answered.
    assert data.count(b"HTTP/1.1 ") == 1, data
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.lower().count(b"connection:") == 1
    assert b"\r\nConnection: close" in head
    assert body in (b"close", b"3\r\nclo\r\n2\r\nse\r\n0\r\n\r\n")
    assert "hop-by-hop" not in srv.text


def test_second_call_without_exc_info_raises(srv):
    r = requests.get(srv.url + "/second_call")
    assert r.status_code == 200
    assert r.text.startswith("AssertionError: start_response() called a second time")


def test_start_response_reentered_from_its_headers_raises_not_panics(srv):
    r = requests.get(srv.url + "/reentrant_start_response")
    assert r.status_code == 200 and r.text == "served"
    assert r.headers["X-Reentry"] == "RuntimeError: start_response() re-entered while it was running"
    assert "panic" not in srv.text


def test_start_response_kept_past_its_request_cannot_touch_later_responses(serve_both):
    srv = serve_both("pep:app")
    with srv.connect() as s:
        buf = bytearray()
        s.sendall(get("/keep_start_response") + get("/use_kept_start_response") + get("/second_call"))
        kept = read_response(s, buf)
        used = read_response(s, buf)
        after = read_response(s, buf)
    assert (kept[0], kept[2]) == (b"HTTP/1.1 200 OK", b"kept")
    assert (used[0], used[2]) == (b"HTTP/1.1 200 OK", b"AssertionError AssertionError")
    assert "x-stale" not in used[1]
    assert after[2].startswith(b"AssertionError: start_response() called a second time")


def test_write_kept_past_its_request_cannot_touch_later_responses(serve_both):
    """The write() of each request is its own, also when the server reuses its objects
    between requests: one kept by the app refuses, and the later ones work."""
    srv = serve_both("pep:app")
    with srv.connect() as s:
        buf = bytearray()
        paths = [
            "/write_only",
            "/write_only",
            "/keep_write",
            "/use_kept_write",
            "/write_only",
            "/use_kept_write",
        ]
        s.sendall(b"".join(get(p) for p in paths))
        got = [read_response(s, buf) for _ in paths]
    assert [r[0] for r in got] == [b"HTTP/1.1 200 OK"] * len(paths)
    assert [r[2] for r in got] == [
        b"written by write()",
        b"written by write()",
        b"kept write",
        b"AssertionError False",
        b"written by write()",
        b"AssertionError False",
    ]


def test_start_response_exc_info_before_headers_sent_replaces_the_response(serve_both):
    srv = serve_both("pep:app")
    r = requests.get(srv.url + "/exc_info_before_headers")
    assert (r.status_code, r.reason, r.text) == (503, "Service Unavailable", "replaced")
    assert r.headers["X-Second"] == "1"
    assert "X-First" not in r.headers


def test_start_response_exc_info_reraises_after_headers_sent(serve_both):
    srv = serve_both("pep:app")
    r = requests.get(srv.url + "/exc_info_after_headers")
    assert (r.status_code, r.text) == (200, "first,reraised")
    srv.wait_for_log("start_response re-raised the same error: True")


def test_start_response_exc_info_reraised_uncaught_closes_the_connection(serve_both):
    srv = serve_both("pep:app")
    with srv.connect() as s:
        s.sendall(get("/exc_info_after_headers_uncaught"))
        data = read_all(s)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Transfer-Encoding: chunked" in head
    # The first block went out; the response was cut (no last chunk) and the socket closed.
    assert body == b"6\r\nfirst,\r\n"
    srv.wait_for_log("ValueError: too late, uncaught")
    assert "not reached" not in srv.text


def test_write_callable_alone(serve_both):
    srv = serve_both("pep:app")
    r = requests.get(srv.url + "/write_only")
    assert (r.status_code, r.text) == (200, "written by write()")
    assert r.headers["Transfer-Encoding"] == "chunked"


def test_write_callable_then_returned_iterable(serve_both):
    srv = serve_both("pep:app")
    assert requests.get(srv.url + "/write_then_iterable").text == "write,list"


def test_error_after_write_closes_the_connection_after_what_was_written(serve_both):
    srv = serve_both("pep:app")
    with srv.connect() as s:
        s.sendall(get("/write_then_error"))
        data = read_all(s)
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert data.endswith(b"written before the error\r\n")
    srv.wait_for_log("RuntimeError: error after write")


def test_headers_wait_for_the_first_non_empty_block(serve_both):
    srv = serve_both("pep:app")
    r = requests.get(srv.url + "/empty_chunk_then_error")
    assert (r.status_code, r.headers["Connection"]) == (500, "close")
    assert "error after an empty block" not in r.text
    srv.wait_for_log("RuntimeError: error after an empty block")


def test_status_may_change_after_an_empty_block(serve_both):
    srv = serve_both("pep:app")
    r = requests.get(srv.url + "/empty_chunk_then_new_status")
    assert (r.status_code, r.text) == (404, "not found after all")
