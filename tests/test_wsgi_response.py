"""The response iterable: close(), framing, Content-Length, file_wrapper, errors (PEP 3333)."""

import re
import time
import uuid

import pytest
import requests
from apps.file_wrapper_gc import BODY as FILE_GC_BODY
from apps.pep import FILE_BODY
from conftest import read_all, read_response


def get(path: str, version: str = "HTTP/1.1", extra: str = "") -> bytes:
    return f"GET {path} {version}\r\nHost: x\r\n{extra}\r\n".encode()


def assert_closed_once(srv, tag: str) -> None:
    """Waits for close() to be logged, then a little longer in case it comes twice."""
    srv.wait_for_log(re.escape(f"close() called for {tag}"))
    requests.get(srv.url + "/generator")  # one more request through the same worker
    time.sleep(0.1)
    assert srv.text.count(f"close() called for {tag}\n") == 1


def test_close_is_called_once_at_the_normal_end(serve_both):
    srv = serve_both("pep:app")
    tag = uuid.uuid4().hex
    r = requests.get(f"{srv.url}/close_normal?tag={tag}")
    assert (r.status_code, r.text) == (200, "one,two")
    assert_closed_once(srv, tag)


@pytest.mark.parametrize("slow_ms", [0, 5])
@pytest.mark.parametrize("path", ["/close_held", "/gen_held"])
def test_app_threads_deliver_each_response_while_the_app_is_still_busy(serve, path, slow_ms):
    """PEP 3333: what the app gave is on its way while the app goes on (its iterable's
    close(), or a generator working after its last block). Four clients at once, on app
    threads that wait until another request releases them: each gets its own response first
    (a small last write is held back a moment to join others, never for the app; a request
    that took `slow_ms` before its response has it written at once), and the release still
    gets through."""
    srv = serve("pep:app", "--threads", "6")
    socks = [srv.connect() for _ in range(4)]
    try:
        for i, s in enumerate(socks):
            s.sendall(get(f"{path}?tag=c{i}&slow_ms={slow_ms}"))
        for i, s in enumerate(socks):
            s.settimeout(10)
            status, _, body = read_response(s)
            assert (status, body) == (b"HTTP/1.1 200 OK", f"held c{i}".encode())
        r = requests.get(srv.url + "/release_close", timeout=10)
        assert (r.status_code, r.text) == (200, "released")
        # The connections stay open and serve their next request once close() returned.
        for i, s in enumerate(socks):
            s.sendall(get(f"/close_normal?tag=n{i}"))
            assert read_response(s)[2] == b"one,two"
    finally:
        for s in socks:
            s.close()


def test_close_is_called_once_when_the_app_fails_mid_stream_after_flushing_what_it_sent(serve_both):
    srv = serve_both("pep:app")
    tag = uuid.uuid4().hex
    with srv.connect() as s:
        s.sendall(get(f"/close_error_mid_stream?tag={tag}"))
        data = read_all(s)  # the server closes the connection
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Transfer-Encoding: chunked" in head
    # Everything yielded before the error arrived, and no last chunk: the client sees a cut.
    assert body == b"16\r\nsent before the error,\r\na\r\nalso sent,\r\n"
    assert_closed_once(srv, tag)
    assert srv.text.count(f"RuntimeError: failed mid-stream for {tag}") == 1


def test_close_is_called_once_when_the_app_fails_before_headers(serve_both):
    srv = serve_both("pep:app")
    tag = uuid.uuid4().hex
    r = requests.get(f"{srv.url}/close_error_before_headers?tag={tag}")
    assert r.status_code == 500
    assert tag not in r.text
    assert_closed_once(srv, tag)


def test_close_is_called_once_when_the_client_disconnects_mid_stream(serve_both):
    srv = serve_both("pep:app")
    tag = uuid.uuid4().hex
    with srv.connect() as s:
        s.sendall(get(f"/close_client_gone?tag={tag}"))
        got = b""
        while len(got) < 200_000:
            got += s.recv(65536)
        assert got.startswith(b"HTTP/1.1 200 OK")
    assert_closed_once(srv, tag)


@pytest.mark.parametrize("path", ["/single_list", "/single_tuple"])
def test_single_element_body_gets_content_length(serve_both, path):
    srv = serve_both("pep:app")
    r = requests.get(srv.url + path)
    assert (r.text, r.headers["Content-Length"]) == ("one element", "11")
    assert "Transfer-Encoding" not in r.headers


def test_generator_is_chunked_on_http11_and_close_delimited_on_http10(serve_both):
    srv = serve_both("pep:app")
    data = srv.raw(get("/generator", extra="Connection: close\r\n"))
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"3\r\ngen\r\n6\r\nerated\r\n0\r\n\r\n"
    data = srv.raw(get("/generator", "HTTP/1.0"))
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
    assert b"Connection: close" in head
    assert body == b"generated"


def test_head_answer_to_a_generator_has_no_body(serve_both):
    srv = serve_both("pep:app")
    data = srv.raw(
        b"HEAD /generator HTTP/1.1\r\nHost: x\r\n\r\n" + get("/single_list", extra="Connection: close\r\n")
    )
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 OK")
    assert rest.startswith(b"HTTP/1.1 200 OK")  # no body nor last chunk between the two


def test_app_content_length_shorter_than_the_body_truncates_it(serve_both):
    srv = serve_both("pep:app")
    with srv.connect() as s:
        s.sendall(get("/declared_longer") + get("/single_list"))
        buf = bytearray()
        status, headers, body = read_response(s, buf)
        assert (status, headers["content-length"], body) == (b"HTTP/1.1 200 OK", "5", b"hello")
        # Nothing more was sent: the next response follows at once.
        assert read_response(s, buf)[2] == b"one element"
    srv.wait_for_log("more than its Content-Length")


def test_app_content_length_longer_than_the_body_is_logged_and_closes(serve_both):
    srv = serve_both("pep:app")
    with srv.connect() as s:
        s.sendall(get("/declared_shorter") + get("/single_list"))
        data = read_all(s)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Content-Length: 100" in head
    assert body == b"hello"  # then the connection closed; the second request was not answered
    srv.wait_for_log("app sent 5 bytes, 95 fewer than its Content-Length; closing the connection")


@pytest.mark.parametrize("offset", [0, 1000])
def test_file_wrapper_on_a_real_file_is_sent_with_content_length(serve_both, offset):
    srv = serve_both("pep:app")
    with srv.connect() as s:
        s.sendall(get(f"/file_wrapper_real?offset={offset}") + get("/single_list"))
        buf = bytearray()
        status, headers, body = read_response(s, buf)
        assert status == b"HTTP/1.1 200 OK"
        assert headers["content-length"] == str(len(FILE_BODY) - offset)
        assert body == FILE_BODY[offset:]
        assert read_response(s, buf)[2] == b"one element"


def test_file_wrapper_on_a_file_like_object_is_iterated_and_closed(serve_both):
    srv = serve_both("pep:app")
    r = requests.get(srv.url + "/file_wrapper_bytesio")
    assert r.content == FILE_BODY
    srv.wait_for_log("BytesIO closed")


def test_file_wrapper_in_a_reference_cycle_is_collected(serve_both):
    srv = serve_both("file_wrapper_gc:app")
    r = requests.get(srv.url + "/dropped")
    assert r.json() == {"wrapper": True, "file": True}


def test_file_wrapper_served_in_a_reference_cycle_is_collected_after_the_response(serve_both):
    srv = serve_both("file_wrapper_gc:app")
    assert requests.get(srv.url + "/served").content == FILE_GC_BODY
    r = requests.get(srv.url + "/served_collected")
    assert r.json() == {"wrapper": True, "file": True}


def test_head_answer_to_a_file_wrapper_has_no_body(serve_both):
    srv = serve_both("pep:app")
    data = srv.raw(b"HEAD /file_wrapper_real HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert f"Content-Length: {len(FILE_BODY)}".encode() in head
    assert body == b""


def test_exception_before_headers_is_500_with_the_traceback_logged_once(serve_both):
    srv = serve_both("pep:app")
    r = requests.get(srv.url + "/error_before_headers")
    assert r.status_code == 500
    assert "_inner_failure" not in r.text and "Traceback" not in r.text
    srv.wait_for_log("RuntimeError: raised inside _inner_failure")
    text = srv.text
    assert text.count("RuntimeError: raised inside _inner_failure") == 1
    assert text.count("Traceback (most recent call last)") == 1
    # The traceback is the app's, down to the raising frame.
    assert re.search(r'File ".*pep\.py", line \d+, in _inner_failure', text), text


def test_client_leaving_during_write_is_not_logged_as_an_app_error(serve_both):
    srv = serve_both("pep:app")
    with srv.connect() as s:
        s.sendall(b"GET /write_until_gone HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(65536)
    srv.wait_for_log(r"write_until_gone: finished")
    assert "Traceback" not in srv.text
