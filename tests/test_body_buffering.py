"""Request body buffering: the event loop reads a request's body before the app is called, in
memory up to --body-buffer-size and beyond it in a temporary file that has no name (unlinked at
creation) in --body-spool-dir, up to --limit-request-body. `--no-request-buffering` and
`--stream-uploads PREFIX` keep the streaming `wsgi.input`."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest
from conftest import read_all, read_response
from test_gateway_wire import uwsgi_packet

BLOCK = 65536
HOST = b"Host: x\r\n"


def worker_pid(srv) -> int:
    return int(srv.wait_for_log(r"Booting worker with pid: (\d+)").group(1))


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert m, status
    return int(m.group(1))


def pattern(n_blocks: int):
    """`n_blocks` distinct 64 KiB blocks, made as they are sent (never all in memory)."""
    base = os.urandom(BLOCK)
    for i in range(n_blocks):
        yield i.to_bytes(4, "big") + base[4:]


def post_head(path: str, length: int, extra: bytes = b"") -> bytes:
    return f"POST {path} HTTP/1.1\r\n".encode() + HOST + b"Content-Length: %d\r\n" % length + extra + b"\r\n"


def chunked(blocks) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(b), b) for b in blocks) + b"0\r\n\r\n"


def test_a_50_mib_upload_reaches_the_app_whole_in_bounded_memory_and_leaves_no_file(serve_both, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    srv = serve_both("upload:app", "--body-spool-dir", str(spool))
    pid = worker_pid(srv)
    with srv.connect(timeout=30) as s:  # warm up: the app, a connection, a response
        s.sendall(post_head("/sha", 5) + b"hello")
        assert read_response(s)[2].startswith(hashlib.sha256(b"hello").hexdigest().encode())
    before = rss_kib(pid)
    peak = before
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_kib(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    n = 800  # 50 MiB
    h = hashlib.sha256()
    seen_in_dir = 0
    try:
        with srv.connect(timeout=60) as s:
            s.sendall(post_head(f"/sha?{spool}", n * BLOCK))
            for i, block in enumerate(pattern(n)):
                h.update(block)
                s.sendall(block)
                if i % 100 == 50:
                    seen_in_dir += len(os.listdir(spool))
            status, _, body = read_response(s)
    finally:
        stop.set()
        sampler.join()
    peak = max(peak, rss_kib(pid))
    assert b" 200 " in status
    digest, length, files = body.decode().split()
    assert (digest, int(length)) == (h.hexdigest(), n * BLOCK)
    # The spool file has no name: not in the directory while the body came, nor while the app
    # read it, nor after.
    assert (seen_in_dir, files, os.listdir(spool)) == (0, "0", [])
    assert peak - before < 8 * 1024, f"worker RSS grew from {before} KiB to {peak} KiB"


@pytest.mark.parametrize("body", ["small", "spooled"])
def test_a_chunked_body_is_buffered_and_decoded(serve_both, body):
    srv = serve_both("upload:app")
    blocks = [b"a" * 1000, b"b" * 3] if body == "small" else list(pattern(40))
    with srv.connect() as s:
        s.sendall(b"POST /sha HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(blocks))
        status, _, out = read_response(s)
        # The connection serves the next request.
        s.sendall(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[2] == b"/next"
    whole = b"".join(blocks)
    assert b" 200 " in status
    assert out.decode().split()[:2] == [hashlib.sha256(whole).hexdigest(), str(len(whole))]


def test_a_declared_body_over_the_limit_is_refused_with_413(serve_both):
    srv = serve_both("upload:app", "--limit-request-body", "100000")
    with srv.connect() as s:
        s.sendall(post_head("/sha", 200000))
        status, _, _ = read_response(s)
    assert b" 413 " in status


@pytest.mark.parametrize("limit", ["1000", "100000"])
def test_a_chunked_body_that_grows_over_the_limit_is_refused_with_413(serve_both, tmp_path, limit):
    """Under --body-buffer-size (in memory) and over it (spooled): 413 once the body passes the
    limit, before the rest is read; no file is left."""
    spool = tmp_path / "spool"
    spool.mkdir()
    srv = serve_both("upload:app", "--limit-request-body", limit, "--body-spool-dir", str(spool))
    with srv.connect() as s:
        s.sendall(b"POST /sha HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        # Three chunks of 60,000 bytes, then no end: the limit is passed before the end.
        s.sendall(b"".join(b"%x\r\n%s\r\n" % (60000, b"z" * 60000) for _ in range(3)))
        status, headers, _ = read_response(s)
    assert b" 413 " in status
    assert headers.get("connection") == "close"
    assert os.listdir(spool) == []


def test_a_slow_body_does_not_hold_up_another_client(serve_both):
    """A client dripping its body: another client's request is answered while it still sends."""
    srv = serve_both("upload:app")
    with srv.connect() as slow:
        slow.sendall(post_head("/sha", 10) + b"abc")
        time.sleep(0.2)
        slow.sendall(b"d")
        with srv.connect() as other:
            other.sendall(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(other)[2] == b"/other"
        # Only now does the slow client send the rest of its body.
        slow.sendall(b"efghij")
        status, _, body = read_response(slow)
    assert b" 200 " in status
    assert body.decode().split()[:2] == [hashlib.sha256(b"abcdefghij").hexdigest(), "10"]


def test_expect_100_continue_is_answered_when_buffering_starts(serve_both):
    srv = serve_both("upload:app")
    with srv.connect() as s:
        s.sendall(post_head("/sha", 5, b"Expect: 100-continue\r\n"))
        buf = bytearray()
        while b"\r\n\r\n" not in buf:
            data = s.recv(4096)
            assert data, bytes(buf)
            buf += data
        assert bytes(buf) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hello")
        status, _, body = read_response(s)
    assert b" 200 " in status
    assert body.decode().split()[:2] == [hashlib.sha256(b"hello").hexdigest(), "5"]


@pytest.mark.parametrize("how", [("--stream-uploads", "/up"), ("--no-request-buffering",)])
def test_a_streaming_path_sees_the_first_block_before_the_client_sends_the_last(serve_both, tmp_path, how):
    srv = serve_both("upload:app", *how)
    mark = tmp_path / "first-block-read"
    blocks = list(pattern(4))  # 256 KiB: more than the inline worker reads ahead
    whole = b"".join(blocks)
    with srv.connect(timeout=30) as s:
        s.sendall(post_head(f"/up/file?{mark}", len(whole)) + b"".join(blocks[:3]))
        deadline = time.monotonic() + 20
        while not mark.exists():
            assert time.monotonic() < deadline, "the app never saw the first block"
            time.sleep(0.02)
        s.sendall(blocks[3])
        status, _, body = read_response(s)
    assert b" 200 " in status
    assert body.decode().split() == [hashlib.sha256(whole).hexdigest(), str(len(whole))]


def test_other_paths_are_buffered_beside_a_streaming_prefix(serve_both, tmp_path):
    """/upload is not under /up: its body is whole before the app runs (the app never sees
    a first block while the client still holds back the last)."""
    srv = serve_both("upload:app", "--stream-uploads", "/up")
    whole = b"".join(pattern(4))
    with srv.connect(timeout=30) as s:
        s.sendall(post_head("/sha", len(whole)) + whole[:-1])
        with srv.connect() as other:
            other.sendall(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(other)[2] == b"/other"
        s.sendall(whole[-1:])
        status, _, body = read_response(s)
    assert b" 200 " in status
    assert body.decode().split()[:2] == [hashlib.sha256(whole).hexdigest(), str(len(whole))]


def drip(s, data: bytes, every: float) -> None:
    """Sends `data` a byte at a time, `every` seconds apart, until the server closes."""
    for b in data:
        try:
            s.sendall(bytes([b]))
        except OSError:
            return
        time.sleep(every)


def test_a_body_slower_than_the_minimum_rate_gets_408_and_the_app_is_not_called(serve_both, tmp_path):
    """The default --body-min-rate (500 bytes/s over 5 s windows): a body dripped at a few
    bytes a second is answered 408 with `Connection: close` once a window has passed, while
    other clients are served meanwhile; the access log has its line, and none from the app."""
    log = tmp_path / "access.log"
    srv = serve_both("upload:app", "--access-logfile", str(log))
    with srv.connect(timeout=30) as slow:
        slow.sendall(post_head("/sha", 1000))
        began = time.monotonic()
        dripper = threading.Thread(target=drip, args=(slow, b"x" * 1000, 0.25), daemon=True)
        dripper.start()
        with srv.connect() as other:
            other.sendall(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(other)[2] == b"/other"
        status, headers, _ = read_response(slow)
        took = time.monotonic() - began
    assert b" 408 " in status
    assert headers.get("connection") == "close"
    # One window of 5 s, give or take the drip's pace; well before the client timeout.
    assert 4.5 <= took < 20, took
    deadline = time.monotonic() + 10
    while " 408 " not in (lines := log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, lines
        time.sleep(0.05)
    # One line for it: the server's 408, with the request's head (the app never ran).
    sha = [line for line in lines.splitlines() if "/sha" in line]
    assert len(sha) == 1 and '"POST /sha HTTP/1.1" 408 ' in sha[0], lines


def test_a_body_at_the_minimum_rate_or_faster_is_served(serve_both):
    """--body-min-rate 40: a body sent steadily at ~100 bytes/s for over a window is whole."""
    srv = serve_both("upload:app", "--body-min-rate", "40")
    body = b"y" * 700
    with srv.connect(timeout=30) as s:
        s.sendall(post_head("/sha", len(body)))
        for i in range(0, len(body), 50):
            s.sendall(body[i : i + 50])
            time.sleep(0.5)
        status, _, out = read_response(s)
    assert b" 200 " in status
    assert out.decode().split()[:2] == [hashlib.sha256(body).hexdigest(), str(len(body))]


def test_a_streamed_body_has_no_minimum_rate_unless_given(serve_both, tmp_path):
    """A streaming path (--stream-uploads) takes a dripped body when --body-min-rate is not
    given; given, the app's read fails and the client gets 408."""
    mark = tmp_path / "first"
    body = b"z" * 4102
    plain = serve_both("upload:app", "--stream-uploads", "/up")
    with plain.connect(timeout=30) as s:
        s.sendall(post_head(f"/up/x?{mark}", len(body)) + body[:4096])
        drip(s, body[4096:], 1.0)  # 6 bytes over 6 s, past one window
        status, _, out = read_response(s)
    assert b" 200 " in status
    assert out.decode().split() == [hashlib.sha256(body).hexdigest(), str(len(body))]

    # 1000 bytes/s: the first block does not make up a window's 5000 bytes even if counted;
    # 10 bytes a second apart: the body is still coming when the window ends.
    paced = serve_both("upload:app", "--stream-uploads", "/up", "--body-min-rate", "1000")
    body += b"z" * 4
    with paced.connect(timeout=30) as s:
        s.sendall(post_head(f"/up/y?{mark}", len(body)) + body[:4096])
        dripper = threading.Thread(target=drip, args=(s, body[4096:], 1.0), daemon=True)
        dripper.start()
        status, headers, _ = read_response(s)
    assert b" 408 " in status
    assert headers.get("connection") == "close"


def gateway_request(proto: str, path: str, body: bytes, length: int | None = None) -> bytes:
    """A uwsgi or SCGI request for `path` whose head announces `length` (default: the body's)."""
    n = str(len(body) if length is None else length)
    vars = {
        "CONTENT_LENGTH": n,
        "REQUEST_METHOD": "POST",
        "REQUEST_URI": path,
        "PATH_INFO": path.split("?")[0],
    }
    if proto == "uwsgi":
        return uwsgi_packet(vars, body)
    block = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in {**vars, "SCGI": "1"}.items())
    return str(len(block)).encode() + b":" + block + b"," + body


@pytest.mark.parametrize("proto", ["uwsgi", "scgi"])
def test_gateway_bodies_are_buffered_spooled_and_limited(serve_both, tmp_path, proto):
    """Behind a front server too: a dripped body does not hold up another request, a body over
    --body-buffer-size is spooled (and reaches the app whole), one over --limit-request-body
    gets 413 before any of it is read."""
    spool = tmp_path / "spool"
    spool.mkdir()
    srv = serve_both(
        None,
        "-b",
        f"{proto}://127.0.0.1:0",
        "--body-spool-dir",
        str(spool),
        "--limit-request-body",
        "1000000",
        "upload:app",
    )
    host, port = srv.binds[-1][1].rsplit(":", 1)
    addr = (host, int(port))
    body = os.urandom(300_000)
    with socket.create_connection(addr, timeout=30) as slow:
        slow.sendall(gateway_request(proto, f"/sha?{spool}", body)[:-10])
        with socket.create_connection(addr, timeout=10) as other:
            other.sendall(gateway_request(proto, "/other", b"x"))
            assert read_all(other).endswith(b"/other")
        slow.sendall(gateway_request(proto, f"/sha?{spool}", body)[-10:])
        out = read_all(slow)
    assert out.startswith(b"HTTP/1.")
    assert b" 200 " in out.split(b"\r\n", 1)[0]
    # The app saw the spool directory empty: the file has no name.
    assert out.rsplit(b"\r\n\r\n", 1)[1].decode().split() == [hashlib.sha256(body).hexdigest(), "300000", "0"]
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(gateway_request(proto, "/sha", b"", length=2_000_000))
        out = read_all(s)
    assert out.split(b"\r\n", 1)[0].endswith(b" 413 Content Too Large"), out
