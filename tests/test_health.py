"""--health-path: answered by the worker without the app; 503 once the worker drains."""

from __future__ import annotations

import signal

import httpx
import requests
from conftest import read_response


def test_health_path_answers_ok_without_the_app(serve, tmp_path):
    log = tmp_path / "access.log"
    srv = serve("basic:hello", "--health-path", "/healthz", "--access-logfile", str(log))
    r = requests.get(srv.url + "/healthz?probe=1")
    assert (r.status_code, r.text) == (200, "ok\n")
    assert r.headers["Cache-Control"] == "no-store"
    assert requests.get(srv.url + "/healthzz").text == "Hello, World!"
    assert requests.head(srv.url + "/healthz").status_code == 200
    srv.stop()
    assert '"GET /healthz?probe=1 HTTP/1.1" 200 3 ' in log.read_text()


def test_health_path_on_http2(serve):
    srv = serve("basic:hello", "--health-path", "/healthz")
    with httpx.Client(http1=False, http2=True, base_url=srv.url, timeout=30, trust_env=False) as c:
        r = c.get("/healthz")
        assert (r.http_version, r.status_code, r.text) == ("HTTP/2", 200, "ok\n")


def test_health_path_turns_503_while_a_term_drains(serve):
    srv = serve("transport:app", "--threads", "4", "--health-path", "/healthz", "--graceful-timeout", "20")
    with srv.connect() as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = bytearray()
        head, _, body = read_response(s, buf)
        assert head.startswith(b"HTTP/1.1 200 ") and body == b"ok\n"
        # A slow request, and a probe pipelined behind it on the same connection.
        s.sendall(b"GET /sleep?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        srv.wait_for_log("sleep started")
        srv.signal(signal.SIGTERM)
        head, _, body = read_response(s, buf)
        assert head.startswith(b"HTTP/1.1 200 ") and body == b"slept"
        head, _, body = read_response(s, buf)
        assert head.startswith(b"HTTP/1.1 503 ") and body == b"draining\n"
    assert srv.wait(20) == 0
