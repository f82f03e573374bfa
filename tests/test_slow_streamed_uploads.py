"""Streamed request bodies (--no-request-buffering, --stream-uploads, FastCGI's STDIN) on the
inline worker (--threads 1): a request whose body is still to come runs on a side thread, so
a client dripping it never holds the event loop; other clients are answered meanwhile, the app
still reads the body as it comes, and what the dripping clients sent arrives whole."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from conftest import read_all, read_response
from test_body_buffering import gateway_request, post_head
from test_gateway_wire import END, STDIN, STDOUT, fcgi_record, fcgi_request, read_records, stdout_of
from test_h2 import RawH2
from test_metrics import METRICS_RE, value
from test_slowloris import ANSWERED_WITHIN, answered_in

# More than the inline worker reads ahead on a streaming path (64 KiB): the app gets it as it
# comes. Sent at once; the last DRIPPED bytes then come one every DRIP_EVERY seconds.
FIRST = 70_000
DRIPPED = 20
DRIP_EVERY = 0.1
STREAMING = [("--no-request-buffering",), ("--stream-uploads", "/up")]


def wait_until(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"{what}: not within {timeout} s"
        time.sleep(0.02)


def drip(s: socket.socket, data: bytes, until_closed: bool = False) -> None:
    """Sends `data` a byte every DRIP_EVERY seconds (`until_closed`: or until the server
    closes)."""
    for b in data:
        try:
            s.sendall(bytes([b]))
        except OSError:
            if until_closed:
                return
            raise
        time.sleep(DRIP_EVERY)


def expected(body: bytes) -> list[str]:
    return [hashlib.sha256(body).hexdigest(), str(len(body))]


class Uploader:
    """A client posting FIRST bytes at once, then, once `go` is set, dripping `tail` more, to
    `path?mark` (the app creates `mark` once it has read the first 4 KiB)."""

    def __init__(self, srv, path: str, mark: Path, seed: int, tail: int = DRIPPED) -> None:
        self.body = bytes([seed % 256]) * FIRST + bytes(range(tail))
        self.head = post_head(f"{path}?{mark}", len(self.body))
        self.mark = mark
        self.go = threading.Event()
        self.result: tuple[bytes, dict[str, str], bytes] | None = None
        self.sent_all_at: float | None = None
        self.error: BaseException | None = None
        self.sock = srv.connect(timeout=30)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            # From this thread: a body waiting for a side thread is not read meanwhile.
            self.sock.sendall(self.head + self.body[:FIRST])
            self.go.wait(30)
            drip(self.sock, self.body[FIRST:])
            self.sent_all_at = time.monotonic()
            self.result = read_response(self.sock)
        except BaseException as e:  # noqa: BLE001 - reported by finish()
            self.error = e

    def finish(self) -> tuple[bytes, dict[str, str], bytes]:
        self.thread.join(30)
        self.sock.close()
        assert self.error is None, self.error
        assert self.result is not None, "no response"
        return self.result

    @property
    def sending(self) -> bool:
        return self.sent_all_at is None and self.error is None


def answered_while(srv, sending) -> list[float]:
    """Normal GETs, one after another, while `sending()`; each must be answered within
    ANSWERED_WITHIN."""
    took: list[float] = []
    while sending() or not took:
        took.append(answered_in(srv))
        assert took[-1] < ANSWERED_WITHIN, f"a normal request took {took[-1]:.2f} s while a body dripped"
        time.sleep(0.05)
    return took


def uploads_arrive_whole(ups: list[Uploader]) -> None:
    for u in ups:
        status, _, body = u.finish()
        assert status == b"HTTP/1.1 200 OK"
        assert body.decode().split() == expected(u.body)


@pytest.mark.parametrize("how", STREAMING)
@pytest.mark.parametrize("clients", [1, 4])
def test_dripped_streamed_bodies_do_not_hold_the_inline_worker(serve, tmp_path, how, clients):
    """The app sees each body's first block before its client sends the last byte (it
    streams), normal clients are answered within a second while the bodies drip, and each
    body reaches the app whole."""
    srv = serve("upload:app", *how)
    ups = [Uploader(srv, f"/up/{i}", tmp_path / f"first-{i}", i) for i in range(clients)]
    wait_until(lambda: all(u.mark.exists() for u in ups), 20, "the app saw every first block")
    assert all(u.sending for u in ups)
    for u in ups:
        u.go.set()
    took = answered_while(srv, lambda: any(u.sending for u in ups))
    assert len(took) >= 3, took
    uploads_arrive_whole(ups)


def test_more_streamed_bodies_than_side_threads_wait_for_one_and_all_arrive(serve, tmp_path):
    """Ten bodies at once: eight side threads take eight; the other two wait (the loop still
    answers others) and run as soon as a thread is free."""
    srv = serve("upload:app", "--no-request-buffering")
    ups = [Uploader(srv, f"/up/{i}", tmp_path / f"first-{i}", i) for i in range(10)]
    marks = lambda: sum(u.mark.exists() for u in ups)  # noqa: E731
    wait_until(lambda: marks() == 8, 20, "eight side threads reading")
    assert answered_in(srv) < ANSWERED_WITHIN
    time.sleep(0.3)
    assert marks() == 8, "only eight streamed requests run at once"
    for u in ups:
        u.go.set()
    answered_while(srv, lambda: any(u.sending for u in ups))
    uploads_arrive_whole(ups)


@pytest.mark.parametrize("how", STREAMING)
def test_expect_100_continue_on_a_streaming_path_is_answered_on_a_side_thread(serve, tmp_path, how):
    """The client sends the head, gets 100 Continue when the app first reads, drips its body,
    and other clients are served meanwhile."""
    srv = serve("upload:app", *how)
    body = bytes(range(30))
    with srv.connect(timeout=30) as s:
        s.sendall(post_head(f"/up/x?{tmp_path / 'first'}", len(body), b"Expect: 100-continue\r\n"))
        buf = bytearray()
        while b"\r\n\r\n" not in buf:
            data = s.recv(4096)
            assert data, "closed before 100 Continue"
            buf += data
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        assert head == b"HTTP/1.1 100 Continue"
        dripper = threading.Thread(target=drip, args=(s, body), daemon=True)
        dripper.start()
        took = answered_while(srv, dripper.is_alive)
        status, _, out = read_response(s, bytearray(rest))
    assert len(took) >= 3, took
    assert status == b"HTTP/1.1 200 OK"
    # /up/'s app reads 4 KiB, then the rest: a 30-byte body is read whole by the first read.
    assert out.decode().split() == expected(body)


@pytest.mark.parametrize(
    "how", [("--no-request-buffering",), ("--stream-uploads", "/raise", "--stream-uploads", "/up")]
)
def test_a_streamed_upload_whose_app_raises_mid_read_gets_500_and_the_worker_goes_on(serve, tmp_path, how):
    """The app raises after its first block while the client still sends: 500 with
    `Connection: close` at once (the traceback in the error log); others are served while
    the client drips on, and the worker serves the next streamed upload."""
    srv = serve("upload:app", *how)
    mark = tmp_path / "first"
    body = b"r" * FIRST + bytes(range(DRIPPED))
    with srv.connect(timeout=30) as s:
        s.sendall(post_head(f"/raise/x?{mark}", len(body)) + body[:FIRST])
        wait_until(mark.exists, 20, "the app read its first block")
        status, headers, _ = read_response(s)
        assert status == b"HTTP/1.1 500 Internal Server Error"
        assert headers.get("connection") == "close"
        dripper = threading.Thread(target=drip, args=(s, body[FIRST:], True), daemon=True)
        dripper.start()
        answered_while(srv, dripper.is_alive)
    srv.wait_for_log(r"RuntimeError: the app failed mid-upload")
    up = Uploader(srv, "/up/again", tmp_path / "again", 9)
    up.go.set()
    uploads_arrive_whole([up])


@pytest.mark.parametrize(
    "how",
    [
        ("--no-request-buffering",),
        ("--stream-uploads", "/partial"),
        ("--threads", "4", "--no-request-buffering"),
    ],
)
def test_the_unread_rest_of_a_streamed_body_is_drained_without_holding_the_worker(serve, tmp_path, how):
    """The app answers after its first block, the rest of the body unread: the response goes
    out at once, the side thread (or app thread) reads off the rest as it drips with the GIL
    let go, so the loop (or the other app threads) serve others meanwhile, and the connection
    then serves its next request."""
    srv = serve("upload:app", *how)
    mark = tmp_path / "first"
    body = b"p" * FIRST + bytes(range(DRIPPED))
    with srv.connect(timeout=30) as s:
        s.sendall(post_head(f"/partial/x?{mark}", len(body)) + body[:FIRST])
        status, headers, out = read_response(s)
        assert (status, out) == (b"HTTP/1.1 200 OK", b"partial")
        assert headers.get("connection") != "close"
        dripper = threading.Thread(target=drip, args=(s, body[FIRST:]), daemon=True)
        dripper.start()
        took = answered_while(srv, dripper.is_alive)
        s.sendall(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[2] == b"/after"
    assert len(took) >= 3, took


def fcgi_streamed(rid: int, pairs: list[tuple[str, str]]) -> bytes:
    """A FastCGI request's BEGIN and PARAMS records, its STDIN still to come."""
    whole = fcgi_request(rid, pairs)
    return whole[: -len(fcgi_record(STDIN, rid, b""))]


def test_a_fastcgi_request_whose_stdin_drips_does_not_hold_the_inline_worker(serve):
    """FastCGI bodies always stream: STDIN records dripped by the front server run the app on
    a side thread; HTTP clients of the same worker are answered meanwhile."""
    srv = serve("upload:app", "-b", "fastcgi://127.0.0.1:0")
    host, port = srv.binds[1][1].rsplit(":", 1)
    body = b"f" * FIRST + bytes(range(DRIPPED))
    pairs = [("REQUEST_METHOD", "POST"), ("REQUEST_URI", "/sha"), ("CONTENT_LENGTH", str(len(body)))]
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(fcgi_streamed(1, pairs))
        for at in range(0, FIRST, 32768):
            s.sendall(fcgi_record(STDIN, 1, body[at : min(at + 32768, FIRST)]))
        took = []
        for b in body[FIRST:]:
            s.sendall(fcgi_record(STDIN, 1, bytes([b])))
            took.append(answered_in(srv))
            assert took[-1] < ANSWERED_WITHIN, took
            time.sleep(DRIP_EVERY)
        s.sendall(fcgi_record(STDIN, 1, b""))
        records = read_records(s)
    out = stdout_of(records, 1)
    assert out.startswith(b"Status: 200 OK\r\n"), out[:200]
    assert out.partition(b"\r\n\r\n")[2].decode().split()[:2] == expected(body)
    assert records[-1][0] == END and records[-1][1] == 1
    assert STDOUT in {k for k, _, _ in records}


@pytest.mark.parametrize("proto", ["uwsgi", "scgi"])
def test_a_dripped_streamed_uwsgi_or_scgi_body_does_not_hold_the_inline_worker(serve, proto):
    srv = serve("upload:app", "-b", f"{proto}://127.0.0.1:0", "--stream-uploads", "/sha")
    host, port = srv.binds[1][1].rsplit(":", 1)
    body = b"g" * FIRST + bytes(range(DRIPPED))
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(gateway_request(proto, "/sha", body[:FIRST], len(body)))
        dripper = threading.Thread(target=drip, args=(s, body[FIRST:]), daemon=True)
        dripper.start()
        took = answered_while(srv, dripper.is_alive)
        out = read_all(s)
    assert len(took) >= 3, took
    assert b" 200 OK" in out.split(b"\r\n", 1)[0], out[:200]
    assert out.partition(b"\r\n\r\n")[2].decode().split()[:2] == expected(body)


def thread_of(out: bytes, length: int) -> str:
    """The Python thread's name the /thread app answered with, checking the body's length."""
    name, n = out.decode().split()
    assert int(n) == length
    return name


def test_a_body_that_arrived_runs_on_the_loop_and_one_still_coming_on_a_side_thread(serve):
    """The fast path is unchanged: a streamed body that is whole in the read buffer (a small
    one is read ahead) runs on the worker's own thread, also over FastCGI; one still to come
    runs on a side thread (a thread Python did not start: `Dummy-N`)."""
    srv = serve("upload:app", "--no-request-buffering", "-b", "fastcgi://127.0.0.1:0")
    with srv.connect(timeout=30) as s:
        s.sendall(post_head("/thread", 5) + b"hello")
        assert thread_of(read_response(s)[2], 5) == "MainThread"
        body = b"t" * FIRST + b"tail"
        s.sendall(post_head("/thread", len(body)) + body[:FIRST])
        time.sleep(0.2)
        s.sendall(body[FIRST:])
        assert thread_of(read_response(s)[2], len(body)).startswith("Dummy-")
    host, port = srv.binds[1][1].rsplit(":", 1)
    pairs = [("REQUEST_METHOD", "POST"), ("REQUEST_URI", "/thread"), ("CONTENT_LENGTH", "5")]
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(fcgi_request(1, pairs, b"hello"))
        out = stdout_of(read_records(s), 1)
    assert thread_of(out.partition(b"\r\n\r\n")[2], 5) == "MainThread"


@pytest.mark.parametrize(
    ("args", "multithread"),
    [
        ((), False),
        (("--no-request-buffering",), True),
        (("--stream-uploads", "/up"), True),
        (("-b", "fastcgi://127.0.0.1:0"), True),
    ],
)
def test_wsgi_multithread_is_true_where_the_inline_worker_may_use_side_threads(serve, args, multithread):
    srv = serve("basic:echo_environ", *args)
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        env = json.loads(read_response(s)[2])
    assert env["wsgi.multithread"] is multithread


def test_a_hung_request_on_a_side_thread_gets_504_and_the_worker_stops_gracefully(serve, tmp_path):
    """--timeout on a side thread: the hung request is answered 504, and the worker stops as
    one with app threads does (gracefully: a body still dripping on another side thread
    arrives whole), not at once as a stuck event loop makes it."""
    srv = serve("upload:app", "--no-request-buffering", "--timeout", "2", "--graceful-timeout", "20")
    # Its drip (5 s) outlasts the timeout: the worker stops while this request still runs.
    up = Uploader(srv, "/up/slow", tmp_path / "slow-first", 3, tail=50)
    wait_until(up.mark.exists, 20, "the slow upload streams")
    hang = tmp_path / "hang-first"
    body = b"h" * FIRST + b"tail"
    with srv.connect(timeout=30) as s:
        s.sendall(post_head(f"/hang/x?{hang}", len(body)) + body[:FIRST])
        wait_until(hang.exists, 20, "the hanging app read its first block")
        up.go.set()
        status, _, _ = read_response(s)
    assert status == b"HTTP/1.1 504 Gateway Timeout"
    assert up.sending
    status, _, out = up.finish()
    assert status == b"HTTP/1.1 200 OK"
    assert out.decode().split() == expected(up.body)
    srv.wait_for_log(r"WORKER TIMEOUT")
    # The master replaces the worker; the server keeps serving.
    wait_until(lambda: srv.text.count("Booting worker with pid") >= 2, 20, "a new worker")
    assert answered_in(srv) < 5


def test_a_graceful_stop_waits_for_a_request_on_a_side_thread(serve, tmp_path):
    srv = serve("upload:app", "--stream-uploads", "/up", "--graceful-timeout", "20")
    up = Uploader(srv, "/up/x", tmp_path / "first", 5)
    wait_until(up.mark.exists, 20, "the upload streams")
    srv.signal(signal.SIGTERM)
    time.sleep(0.3)
    up.go.set()
    status, _, out = up.finish()
    assert status == b"HTTP/1.1 200 OK"
    assert out.decode().split() == expected(up.body)
    assert srv.wait(20) == 0


def test_metrics_count_side_threads_as_app_threads_and_their_requests_as_busy(serve, tmp_path):
    """The app-threads gauges: the loop's own thread, plus each side thread once started;
    a request reading its body on a side thread is busy there."""
    srv = serve("upload:app", "--no-request-buffering", "--metrics-bind", "127.0.0.1:0")
    url = srv.wait_for_log(METRICS_RE).group(1)
    assert answered_in(srv) < ANSWERED_WITHIN
    assert (value(url, "ferrule_app_threads_busy"), value(url, "ferrule_app_threads_idle")) == (0, 1)
    up = Uploader(srv, "/up/x", tmp_path / "first", 7)
    wait_until(up.mark.exists, 20, "the upload streams")
    assert (value(url, "ferrule_app_threads_busy"), value(url, "ferrule_app_threads_idle")) == (1, 1)
    up.go.set()
    uploads_arrive_whole([up])
    wait_until(lambda: value(url, "ferrule_app_threads_busy") == 0, 10, "the side thread idle")
    assert value(url, "ferrule_app_threads_idle") == 2


def test_a_dripped_http2_body_does_not_hold_the_inline_worker(serve):
    """An HTTP/2 stream's body is buffered on the edge thread (as HTTP/1's is by the loop):
    a normal client is answered within a second while it drips, and the app gets it whole."""
    srv = serve("upload:app")
    c = RawH2(srv)
    sid = c.conn.get_next_available_stream_id()
    headers = [(":method", "POST"), (":path", "/sha"), (":scheme", "http"), (":authority", c.host)]
    c.conn.send_headers(sid, headers)
    c.conn.send_data(sid, b"x" * 100)
    c.flush()
    dripper = threading.Thread(target=lambda: time.sleep(DRIPPED * DRIP_EVERY), daemon=True)
    dripper.start()
    try:
        took = answered_while(srv, dripper.is_alive)
    finally:
        c.conn.end_stream(sid)
        c.flush()
    assert len(took) >= 3, took
    status, out = c.response(sid)
    c.close()
    assert (status, out.decode().split()[:2]) == (200, expected(b"x" * 100))
