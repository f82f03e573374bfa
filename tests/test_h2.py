"""HTTP/2: over TLS (ALPN h2) and plain with prior knowledge (h2c), inline and with threads.
The request suite every transport passes, with httpx and curl; concurrency of a connection's
streams; flow control against a client that never opens its window; abuse written as raw
frames with the `h2` package; limits, GOAWAY on stop, `--http 1`."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import ssl
import subprocess

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import httpx
import pytest
import trustme
from apps.transport import file_sha256
from tlscerts import CertFiles, write_leaf

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> CertFiles:
    return write_leaf(trustme.CA(), tmp_path_factory.mktemp("h2tls"))


@pytest.fixture(params=["h2c", "tls"])
def h2srv(request, serve_both, certs):
    """A server speaking HTTP/2 on its bind, over TLS or h2c; `.client()` an httpx client."""

    def start(app: str = "transport:app", *args: str):
        tls = request.param == "tls"
        srv = serve_both(app, *(certs.args() if tls else ()), *args)
        srv.tls = tls

        def client(**kw) -> httpx.Client:
            if tls:
                return httpx.Client(http2=True, verify=ssl.create_default_context(cafile=str(certs.ca)),
                                    base_url=srv.url, timeout=30, trust_env=False, **kw)  # fmt: skip
            return httpx.Client(http1=False, http2=True, base_url=srv.url, timeout=30,
                                trust_env=False, **kw)  # fmt: skip

        srv.client = client
        return srv

    return start


def test_environ_over_http2(h2srv):
    srv = h2srv()
    with srv.client() as c:
        r = c.get("/echo?a=1", headers=[("cookie", "a=1"), ("cookie", "b=2"), ("x-thing", "v")])
    assert r.http_version == "HTTP/2"
    env = r.json()
    assert env["SERVER_PROTOCOL"] == "HTTP/2"
    assert env["HTTP_HOST"] == f"127.0.0.1:{srv.port}"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["HTTP_X_THING"] == "v"
    assert env["QUERY_STRING"] == "a=1"
    assert env["wsgi.url_scheme"] == ("https" if srv.tls else "http")
    assert ("HTTPS" in env) == srv.tls
    assert r.headers["server"] == "ferrule" and "date" in r.headers


def test_request_suite_over_http2(h2srv):
    srv = h2srv()
    with srv.client() as c:
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            assert c.request(method, "/echo").json()["REQUEST_METHOD"] == method
        # A streamed upload of 20 MiB, without a length.
        payload = os.urandom(MIB)
        r = c.post("/upload", content=(payload for _ in range(20)))
        assert r.json() == {"length": 20 * MIB, "sha256": hashlib.sha256(payload * 20).hexdigest()}
        # With a length.
        r = c.post("/upload", content=payload)
        assert r.json()["length"] == MIB
        with c.stream("GET", f"/download?n={20 * MIB}") as r:
            assert sum(len(b) for b in r.iter_bytes()) == 20 * MIB
        r = c.head("/download?n=100")
        assert r.status_code == 200 and r.content == b""
        r = c.get("/lazy")
        assert (r.status_code, r.text) == (201, "lazy")
        assert c.get("/write").text == "written then returned"
        r = c.get("/file")
        assert r.headers["content-length"] == str(MIB)
        assert hashlib.sha256(r.content).hexdigest() == file_sha256()
        # One connection carried all of them.
        assert len({c.get("/echo").json()["REMOTE_PORT"] for _ in range(3)}) == 1
        with pytest.raises(httpx.RemoteProtocolError):
            c.get("/error_after_head")
        assert c.get("/echo").status_code == 200
    srv.wait_for_log("failed after the head")


def test_curl_http2(h2srv, certs, tmp_path):
    srv = h2srv()
    body = tmp_path / "body"
    body.write_bytes(os.urandom(3 * MIB))
    how = ["--http2", "--cacert", str(certs.ca)] if srv.tls else ["--http2-prior-knowledge"]
    out = subprocess.run(
        ["curl", "-sS", *how, "--data-binary", f"@{body}",
         "-H", "Content-Type: application/octet-stream", f"{srv.url}/upload"],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    assert json.loads(out.stdout)["sha256"] == hashlib.sha256(body.read_bytes()).hexdigest()
    out = subprocess.run(
        ["curl", "-sS", *how, "-w", "%{http_version}", f"{srv.url}/file"],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    assert out.stdout.endswith(b"2")
    assert hashlib.sha256(out.stdout[:-1]).hexdigest() == file_sha256()


def test_streams_of_one_connection_run_concurrently_with_threads(serve, certs):
    srv = serve("transport:app", "--threads", "4")
    # Three streams opened at once on one connection, written frame by frame (httpx's client
    # shared by threads races on its HTTP/2 state, encode/httpx#3072; curl 7.88 fails parallel
    # transfers with --http2-prior-knowledge before it sends them).
    c = RawH2(srv)
    sids = [c.request("/barrier?key=conc&n=3") for _ in range(3)]
    assert c.responses(sids) == {sid: (200, b"met") for sid in sids}
    c.close()


def test_curl_with_http1_only_is_not_upgraded(serve):
    srv = serve("transport:app", "--http", "1")
    out = subprocess.run(
        ["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version}",
         f"{srv.url}/echo"],
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert out.returncode != 0 or out.stdout != b"2"
    assert httpx.get(f"{srv.url}/echo", trust_env=False).http_version == "HTTP/1.1"


# Raw frames --------------------------------------------------------------------------------


class RawH2:
    """A client connection written frame by frame with the `h2` package (h2c)."""

    def __init__(self, srv):
        self.sock = socket.create_connection((srv.host, srv.port), timeout=15)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()
        self.host = f"{srv.host}:{srv.port}"

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path: str, end: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "http"),
                                     (":authority", self.host)], end_stream=end)  # fmt: skip
        self.flush()
        return sid

    def events(self) -> list:
        """Reads once; [] when the server closed the connection."""
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return []
        if not data:
            return []
        try:
            evs = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            return []
        self.flush()
        return evs

    def response(self, sid: int) -> tuple[int, bytes]:
        status, body = 0, b""
        while True:
            evs = self.events()
            if not evs and self.conn.state_machine.state == h2.connection.ConnectionState.CLOSED:
                raise ConnectionError("closed")
            for ev in evs:
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    status = int(dict(ev.headers)[b":status"])
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                    body += ev.data
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                    self.flush()
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    return status, body

    def responses(self, sids: list[int]) -> dict[int, tuple[int, bytes]]:
        """Status and body of each of `sids`, read together (in whatever order they come)."""
        got: dict[int, tuple[int, bytes]] = {sid: (0, b"") for sid in sids}
        ended: set[int] = set()
        while len(ended) < len(sids):
            evs = self.events()
            if not evs:
                raise ConnectionError("closed")
            for ev in evs:
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id in got:
                    got[ev.stream_id] = (int(dict(ev.headers)[b":status"]), b"")
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id in got:
                    status, body = got[ev.stream_id]
                    got[ev.stream_id] = (status, body + ev.data)
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    self.flush()
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id in got:
                    ended.add(ev.stream_id)
        return got

    def until_goaway(self) -> h2.events.ConnectionTerminated | None:
        while True:
            evs = self.events()
            if not evs:
                return None
            for ev in evs:
                if isinstance(ev, h2.events.ConnectionTerminated):
                    return ev

    def close(self) -> None:
        self.sock.close()


def worker_rss_kib(srv) -> int:
    pid = srv.wait_for_log(r"Booting worker with pid: (\d+)").group(1)
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_a_client_that_never_opens_its_window_holds_no_memory(serve_both):
    srv = serve_both("transport:app")
    before = worker_rss_kib(srv)
    c = RawH2(srv)
    stuck = c.request(f"/download?n={100 * MIB}")
    # Read the first window's worth and never acknowledge it.
    got = 0
    while got < 65535:
        for ev in c.events():
            if isinstance(ev, h2.events.DataReceived) and ev.stream_id == stuck:
                got += len(ev.data)
    # Other streams of the same connection are still served (the window of the connection
    # was used up by the stuck stream: open it for them).
    c.conn.increment_flow_control_window(16 * MIB)
    c.flush()
    sid = c.request("/echo")
    status, body = c.response(sid)
    assert status == 200 and json.loads(body)["SERVER_PROTOCOL"] == "HTTP/2"
    assert worker_rss_kib(srv) - before < 50 * 1024
    c.close()
    # And other connections.
    with httpx.Client(http1=False, http2=True, base_url=srv.url, timeout=30, trust_env=False) as h:
        assert h.get("/echo").status_code == 200


def test_rapid_reset_closes_the_connection(serve):
    srv = serve("transport:app", "--threads", "4")
    c = RawH2(srv)
    try:
        for _ in range(10_000):
            sid = c.request("/echo", end=False)
            c.conn.reset_stream(sid)
            c.flush()
        ev = c.until_goaway()
        # GOAWAY, unless the close reached the client first as a reset.
        assert ev is None or ev.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    except (BrokenPipeError, ConnectionResetError):
        pass  # closed while the client was still writing
    c.close()
    srv.wait_for_log("HTTP/2 connection from .* closed")
    with httpx.Client(http1=False, http2=True, base_url=srv.url, timeout=30, trust_env=False) as h:
        assert h.get("/echo").status_code == 200


def test_continuation_flood_closes_the_connection(serve):
    srv = serve("transport:app")
    sock = socket.create_connection((srv.host, srv.port), timeout=15)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b""))  # SETTINGS
    # HEADERS without END_HEADERS, then CONTINUATION frames that never end the block.
    block = b"\x82\x86\x84"  # :method GET, :scheme http, :path /
    sock.sendall(frame(1, 0x1, 1, block))  # END_STREAM, not END_HEADERS
    closed = False
    try:
        for _ in range(20000):
            sock.sendall(frame(9, 0, 1, b"\x40\x01a\x01b"))  # a literal header a: b
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    if not closed:
        sock.settimeout(15)
        try:
            while sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
    sock.close()
    with httpx.Client(http1=False, http2=True, base_url=srv.url, timeout=30, trust_env=False) as h:
        assert h.get("/echo").status_code == 200


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def test_body_over_the_limit_is_refused(h2srv):
    srv = h2srv("transport:app", "--limit-request-body", "1000")
    with srv.client() as c:
        r = c.post("/upload", content=b"x" * 2000)
        assert r.status_code == 413
        assert c.get("/echo").status_code == 200


def test_term_sends_goaway_and_finishes_the_stream_in_flight(serve):
    srv = serve("transport:app", "--threads", "4")
    curl = subprocess.Popen(
        ["curl", "-sS", "--http2-prior-knowledge", "-w", " %{http_version}",
         f"{srv.url}/sleep?ms=1500"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    srv.wait_for_log("sleep started")  # the request is in the app
    srv.signal(15)
    out, _ = curl.communicate(timeout=30)
    assert (curl.returncode, out) == (0, b"slept 2")
    srv.wait_for_log("Shutting down")


def test_inline_worker_answers_pings_while_the_app_runs(serve):
    srv = serve("transport:app")
    c = RawH2(srv)
    sid = c.request("/sleep?ms=1500")
    srv.wait_for_log("sleep started")
    c.conn.ping(b"12345678")
    c.flush()
    order = []
    while len(order) < 2:
        for ev in c.events():
            if isinstance(ev, h2.events.PingAckReceived):
                order.append("pong")
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                order.append("response")
    assert order == ["pong", "response"]
    c.close()


def test_keep_alive_ping_unanswered_closes_the_connection(serve):
    srv = serve("transport:app", "--http2-keep-alive-interval", "1", "--http2-keep-alive-timeout", "1")
    sock = socket.create_connection((srv.host, srv.port), timeout=30)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b""))
    # Never answer anything: the server's PING goes unanswered and it closes the connection.
    while sock.recv(65536):
        pass
    sock.close()


def test_limits_apply_to_http2_requests(h2srv):
    srv = h2srv("transport:app", "--limit-request-line", "100", "--limit-request-fields", "10",
                "--limit-request-field_size", "200")  # fmt: skip
    with srv.client() as c:
        assert c.get("/echo?" + "a" * 200).status_code == 414
        assert c.get("/echo", headers={f"x-{i}": "v" for i in range(20)}).status_code == 431
        assert c.get("/echo", headers={"x-big": "v" * 300}).status_code == 431
        assert c.get("/echo").status_code == 200


def test_access_log_names_the_protocol(serve, tmp_path):
    log = tmp_path / "access.log"
    srv = serve("transport:app", "--access-logfile", str(log))
    with httpx.Client(http1=False, http2=True, base_url=srv.url, timeout=30, trust_env=False) as c:
        assert c.get("/echo?q=1").status_code == 200
    srv.stop()
    assert '"GET /echo?q=1 HTTP/2" 200' in log.read_text()


def test_http2_only_refuses_http1(serve, certs):
    srv = serve("transport:app", "--http", "2")
    with srv.connect() as s:
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 505 ")
    with httpx.Client(http1=False, http2=True, base_url=srv.url, timeout=30, trust_env=False) as c:
        assert c.get("/echo").http_version == "HTTP/2"
    tls = serve("transport:app", "--http", "2", *certs.args())
    out = subprocess.run(
        ["curl", "-sS", "--http1.1", "--cacert", str(certs.ca), f"{tls.url}/echo"],
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert out.returncode != 0
    out = subprocess.run(
        ["curl", "-sS", "--http2", "--cacert", str(certs.ca), "-o", "/dev/null", "-w",
         "%{http_version}", f"{tls.url}/echo"],
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert out.stdout == b"2"


def test_static_files_over_http2(h2srv, tmp_path):
    root = tmp_path / "static"
    root.mkdir()
    data = os.urandom(200 * 1024)
    (root / "app.js").write_bytes(data)
    srv = h2srv("transport:app", "--static", f"/static={root}")
    with srv.client() as c:
        r = c.get("/static/app.js")
        assert r.http_version == "HTTP/2" and r.status_code == 200
        assert r.content == data and r.headers["content-length"] == str(len(data))
        assert r.headers["content-type"].startswith("text/javascript")
        etag = r.headers["etag"]
        assert c.get("/static/app.js", headers={"if-none-match": etag}).status_code == 304
        r = c.get("/static/app.js", headers={"range": "bytes=10-19"})
        assert (r.status_code, r.content) == (206, data[10:20])
        r = c.head("/static/app.js")
        assert (r.status_code, r.content, r.headers["content-length"]) == (200, b"", str(len(data)))
        assert c.get("/static/missing.js").status_code == 404
        assert c.get("/echo").json()["SERVER_PROTOCOL"] == "HTTP/2"


def test_upgrade_h2c_from_http11(serve_both):
    srv = serve_both("transport:app")
    out = subprocess.run(
        ["curl", "-sS", "--http2", "-w", " %{http_version}\\n", f"{srv.url}/echo?a=1", f"{srv.url}/lazy"],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    first, second = out.stdout.decode().splitlines()
    env = json.loads(first.rsplit(" ", 1)[0])
    assert first.endswith(" 2") and env["SERVER_PROTOCOL"] == "HTTP/2"
    assert env["QUERY_STRING"] == "a=1" and env["HTTP_HOST"] == f"127.0.0.1:{srv.port}"
    assert "HTTP_UPGRADE" not in env and "HTTP_HTTP2_SETTINGS" not in env
    assert second == "lazy 2"  # the same connection, now HTTP/2
    # A request with a body is answered over HTTP/1.1, as RFC 7540 allows.
    out = subprocess.run(
        ["curl", "-sS", "--http2", "--data-binary", "xyz", "-w", " %{http_version}", f"{srv.url}/upload"],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    assert out.stdout.endswith(b" 1.1") and b'"length": 3' in out.stdout


def test_upgrade_h2c_raw(serve):
    srv = serve("transport:app")
    with srv.connect() as s:
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                  b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")  # fmt: skip
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(4096)
        head, _, rest = buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols")
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_upgrade_connection()
        s.sendall(conn.data_to_send())
        status, body, data = None, b"", rest
        while True:
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == 1:
                    status = dict(ev.headers)[b":status"]
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == 1:
                    body += ev.data
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == 1:
                    assert status == b"200" and json.loads(body)["HTTP_HOST"] == "h"
                    return
            s.sendall(conn.data_to_send())
            data = s.recv(65536)
            assert data, "closed before the response to stream 1"


def test_no_upgrade_with_http1_only(serve):
    srv = serve("transport:app", "--http", "1")
    out = subprocess.run(
        ["curl", "-sS", "--http2", "-o", "/dev/null", "-w", "%{http_version}", f"{srv.url}/echo"],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    assert out.stdout == b"1.1"


def test_ping_flood_from_a_client_that_never_reads_is_bounded(serve):
    srv = serve("transport:app")
    before = worker_rss_kib(srv)
    sock = socket.create_connection((srv.host, srv.port), timeout=5)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b""))
    ping = frame(6, 0, 0, b"12345678") * 1000
    try:
        for _ in range(200):  # 200,000 PINGs, never reading a PONG
            sock.sendall(ping)
    except (TimeoutError, BrokenPipeError, ConnectionResetError):
        pass  # the server stopped reading (or closed): what a flood should meet
    assert worker_rss_kib(srv) - before < 50 * 1024
    with httpx.Client(http1=False, http2=True, base_url=srv.url, timeout=30, trust_env=False) as h:
        assert h.get("/echo").status_code == 200
    sock.close()


def test_hpack_bomb_is_refused(serve):
    srv = serve("transport:app", "--http2-max-header-list-size", "16384")
    c = RawH2(srv)
    sid = c.conn.get_next_available_stream_id()
    # One 4 KiB field, indexed once, then referenced from the table 100 times: 400 KiB
    # decoded from a few hundred bytes on the wire.
    big = ("x-big", "v" * 4000)
    headers = [(":method", "GET"), (":path", "/echo"), (":scheme", "http"), (":authority", c.host)]
    c.conn.send_headers(sid, headers + [big] * 100, end_stream=True)
    c.flush()
    refused = False
    while not refused:
        evs = c.events()
        if not evs:
            refused = True  # the connection was closed
        for ev in evs:
            if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                assert dict(ev.headers)[b":status"] == b"431"
                refused = True
            elif isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                refused = True
    c.close()
    with httpx.Client(http1=False, http2=True, base_url=srv.url, timeout=30, trust_env=False) as h:
        assert h.get("/echo").status_code == 200


def test_timeout_answers_504_on_the_stream(serve_both):
    srv = serve_both("transport:app", "--timeout", "1")
    with httpx.Client(http1=False, http2=True, base_url=srv.url, timeout=30, trust_env=False) as c:
        r = c.get("/sleep?ms=4000")
    assert r.status_code == 504
    srv.wait_for_log("WORKER TIMEOUT")
