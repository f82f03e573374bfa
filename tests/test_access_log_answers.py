"""Every request gets one access line, including those the server answers itself: HTTP/1
refusals (400, 408, 413, 414, 431, 505), `--timeout`'s 504 (written by the watchdog, inline
and with app threads) and a response it cuts, HTTP/2 refusals and 504s, a gateway's refused
body, plain HTTP to a TLS port. The lines carry as much of the request as was read."""

from __future__ import annotations

import json
import socket
import ssl
import time

import httpx
import pytest
import trustme
from conftest import read_all, read_response
from test_gateway_wire import uwsgi_packet
from test_max_queue_wait import hold_all_threads, queued_request
from test_supervisor import wait_until
from tlscerts import CertFiles, write_leaf


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> CertFiles:
    return write_leaf(trustme.CA(), tmp_path_factory.mktemp("answers_tls"))


def records(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def the_line(log, status: int, settle: float = 0.0) -> dict:
    """The one line with `status`, once it is written; after `settle` s there is still one
    (no second line for the same request)."""
    wait_until(lambda: any(r["status"] == status for r in records(log)), timeout=15)
    if settle:
        time.sleep(settle)
    found = [r for r in records(log) if r["status"] == status]
    assert len(found) == 1, records(log)
    return found[0]


def served(serve, *args: str, app: str = "transport:app", tmp_path) -> tuple:
    log = tmp_path / "access.log"
    return serve(app, "--access-logfile", str(log), "--access-log-json", *args), log


def body_length(response: bytes) -> int:
    head, _, body = response.partition(b"\r\n\r\n")
    return len(body)


def test_a_malformed_head_is_logged_with_its_request_line_and_fields(serve_both, tmp_path):
    srv, log = served(serve_both, tmp_path=tmp_path)
    data = srv.raw(b"GET /bad?x=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: ua-400\r\nno colon here\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 ")
    r = the_line(log, 400)
    assert (r["method"], r["path"], r["query"], r["protocol"]) == ("GET", "/bad", "x=1", "HTTP/1.1")
    assert r["user_agent"] == "ua-400"
    assert r["bytes"] == body_length(data) > 0
    assert r["remote"] == "127.0.0.1"


def test_a_request_line_too_long_is_logged_with_what_came(serve_both, tmp_path):
    srv, log = served(serve_both, "--limit-request-line", "100", tmp_path=tmp_path)
    data = srv.raw(b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 414 ")
    r = the_line(log, 414)
    assert (r["method"], r["path"]) == ("GET", "/" + "a" * 200)
    assert r["bytes"] == body_length(data)


def test_a_line_cut_short_logs_its_method_only(serve, tmp_path):
    srv, log = served(serve, "--limit-request-line", "100", tmp_path=tmp_path)
    with srv.connect() as s:
        s.sendall(b"POST /" + b"a" * 300)
        assert read_all(s).startswith(b"HTTP/1.1 414 ")
    r = the_line(log, 414)
    assert (r["method"], r["path"], r["protocol"]) == ("POST", "-", "-")


def test_too_many_fields_are_logged_with_the_request_line(serve_both, tmp_path):
    srv, log = served(serve_both, "--limit-request-fields", "5", tmp_path=tmp_path)
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(10))
    data = srv.raw(b"GET /many HTTP/1.1\r\nUser-Agent: ua-431\r\n" + fields + b"\r\n")
    assert data.startswith(b"HTTP/1.1 431 ")
    r = the_line(log, 431)
    assert (r["method"], r["path"], r["user_agent"]) == ("GET", "/many", "ua-431")


def test_a_head_that_stops_coming_gets_408_and_a_line_with_its_duration(serve, tmp_path):
    srv, log = served(serve, "--header-timeout", "1", "--client-timeout", "30", tmp_path=tmp_path)
    with srv.connect(timeout=30) as s:
        s.sendall(b"GET /slow HTTP/1.1\r\nUser-Agent: ua-408\r\n")
        assert read_all(s).startswith(b"HTTP/1.1 408 ")
    r = the_line(log, 408)
    assert (r["method"], r["path"], r["user_agent"]) == ("GET", "/slow", "ua-408")
    assert r["duration_ms"] >= 900


def test_a_body_over_the_limit_is_logged_with_its_whole_head(serve_both, tmp_path):
    srv, log = served(serve_both, "--limit-request-body", "1000", app="upload:app", tmp_path=tmp_path)
    with srv.connect() as s:
        s.sendall(
            b"POST /up?k=v HTTP/1.1\r\nHost: x\r\nUser-Agent: ua-413\r\nReferer: ref\r\n"
            b"Content-Length: 5000\r\n\r\n" + b"x" * 5000
        )
        status, _, body = read_response(s)
    assert b" 413 " in status
    r = the_line(log, 413)
    assert (r["method"], r["path"], r["query"], r["protocol"]) == ("POST", "/up", "k=v", "HTTP/1.1")
    assert (r["user_agent"], r["referer"]) == ("ua-413", "ref")
    assert r["bytes"] == len(body)


def test_http1_on_an_http2_only_server_gets_505_and_a_line(serve, tmp_path):
    srv, log = served(serve, "--http", "2", tmp_path=tmp_path)
    with srv.connect() as s:
        s.sendall(b"GET /one HTTP/1.1\r\nHost: x\r\nUser-Agent: ua-505\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 505 ")
    r = the_line(log, 505)
    assert (r["method"], r["path"], r["user_agent"]) == ("GET", "/one", "ua-505")


def test_a_request_queued_past_max_queue_wait_has_one_503_line(serve, tmp_path):
    args = ("--threads", "2", "--max-queue-wait", "0.3")
    srv, log = served(serve, *args, app="waiting:app", tmp_path=tmp_path)
    holders = hold_all_threads(srv, tmp_path, 2)
    assert b" 503 " in queued_request(srv, tmp_path, holders, "/late", 1.0)[0]
    r = the_line(log, 503, settle=0.3)
    assert r["path"] == "/late"
    assert r["duration_ms"] >= 1000


@pytest.mark.parametrize("threads", ["1", "4"])
def test_the_watchdog_504_has_one_line(serve, tmp_path, threads):
    srv, log = served(serve, "--timeout", "1", "--threads", threads, app="supervised:app", tmp_path=tmp_path)
    with srv.connect(timeout=30) as s:
        s.sendall(b"GET /sleep?s=3 HTTP/1.1\r\nHost: x\r\nUser-Agent: ua-504\r\n\r\n")
        status, _, body = read_response(s)
    assert b" 504 " in status
    # With threads, the app wakes at 3 s and finishes: its own line must not follow.
    r = the_line(log, 504, settle=3.0 if threads == "4" else 0.5)
    assert (r["method"], r["path"], r["query"], r["user_agent"]) == ("GET", "/sleep", "s=3", "ua-504")
    assert r["bytes"] == len(body)
    assert 900 <= r["duration_ms"] < 3000
    assert [x for x in records(log) if x["path"] == "/sleep"] == [r]


@pytest.mark.parametrize("threads", ["1", "4"])
def test_a_response_the_watchdog_cuts_has_one_line(serve, tmp_path, threads):
    srv, log = served(serve, "--timeout", "1", "--threads", threads, app="supervised:app", tmp_path=tmp_path)
    with srv.connect(timeout=30) as s:
        s.sendall(b"GET /stream-then-sleep HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_all(s).startswith(b"HTTP/1.1 200 ")
    r = the_line(log, 200, settle=0.5)
    # The status its head carried and the body bytes it got before the cut.
    assert (r["path"], r["bytes"]) == ("/stream-then-sleep", len(b"first block\n"))


def h2_client(srv) -> httpx.Client:
    return httpx.Client(http1=False, http2=True, base_url=srv.url, timeout=30, trust_env=False)


def test_http2_refusals_are_logged(serve, tmp_path):
    srv, log = served(
        serve, "--limit-request-line", "100", "--limit-request-fields", "10", "--limit-request-body", "1000",
        tmp_path=tmp_path,
    )  # fmt: skip
    with h2_client(srv) as c:
        assert c.get("/echo?" + "a" * 200).status_code == 414
        assert c.get("/many", headers={f"x-{i}": "v" for i in range(20)}).status_code == 431
        assert c.post("/upload", content=b"x" * 2000, headers={"user-agent": "ua-h2"}).status_code == 413
    assert the_line(log, 414)["protocol"] == "HTTP/2"
    assert the_line(log, 431)["path"] == "/many"
    r = the_line(log, 413)
    assert (r["method"], r["path"], r["protocol"], r["user_agent"]) == ("POST", "/upload", "HTTP/2", "ua-h2")


def test_http2_timeout_504_has_one_line(serve_both, tmp_path):
    srv, log = served(serve_both, "--timeout", "1", tmp_path=tmp_path)
    with h2_client(srv) as c:
        assert c.get("/sleep?ms=3000", headers={"user-agent": "ua-h2-504"}).status_code == 504
    r = the_line(log, 504, settle=3.0 if serve_both.threaded else 0.5)
    assert (r["method"], r["path"], r["protocol"]) == ("GET", "/sleep", "HTTP/2")
    assert r["user_agent"] == "ua-h2-504"
    assert [x for x in records(log) if x["path"] == "/sleep"] == [r]


def test_a_gateway_body_over_the_limit_is_logged_with_its_variables(serve, tmp_path):
    log = tmp_path / "access.log"
    srv = serve(None, "-b", "uwsgi://127.0.0.1:0", "--limit-request-body", "100",
                "--access-logfile", str(log), "--access-log-json", "basic:echo_environ")  # fmt: skip
    _, addr = next(b for b in srv.binds if b[0] == "uwsgi")
    host, port = addr.rsplit(":", 1)
    env = {
        "REQUEST_METHOD": "POST", "REQUEST_URI": "/gw?q=1", "PATH_INFO": "/gw", "QUERY_STRING": "q=1",
        "SERVER_PROTOCOL": "HTTP/1.1", "CONTENT_LENGTH": "500", "HTTP_USER_AGENT": "ua-gw",
        "REMOTE_ADDR": "10.1.2.3",
    }  # fmt: skip
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(uwsgi_packet(env, b"x" * 500))
        assert b" 413 " in read_all(s).split(b"\r\n", 1)[0]
    r = the_line(log, 413)
    assert (r["method"], r["path"], r["query"], r["user_agent"]) == ("POST", "/gw", "q=1", "ua-gw")
    assert r["remote"] == "10.1.2.3"


def test_plain_http_to_a_tls_port_is_logged(serve, certs, tmp_path):
    srv, log = served(serve, *certs.args(), tmp_path=tmp_path)
    data = srv.raw(b"GET /plain HTTP/1.1\r\nHost: x\r\nUser-Agent: ua-tls\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 ")
    r = the_line(log, 400)
    assert (r["method"], r["path"], r["user_agent"]) == ("GET", "/plain", "ua-tls")
    assert r["bytes"] == body_length(data)
    # A TLS client on the same port is served and logged as usual.
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    with httpx.Client(verify=ctx, trust_env=False) as c:
        assert c.get(srv.url + "/echo").status_code == 200
    wait_until(lambda: any(x["status"] == 200 for x in records(log)))
