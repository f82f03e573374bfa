"""`--max-queue-wait`: with every app thread busy, a request that waited longer than the limit
for one is answered `503 Service Unavailable` with `Retry-After` and `Connection: close`
instead of being served late; one within the limit is served. The access line's duration
includes the wait."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import read_response


def hold_all_threads(srv, where: Path, threads: int) -> list[threading.Thread]:
    """Sends `threads` requests that stay in the app until `where/go` exists; returns once
    all are in the app."""

    def hold() -> None:
        with srv.connect(timeout=30) as s:
            s.sendall(f"GET /hold?{where} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert b" 200 " in read_response(s)[0]

    holders = [threading.Thread(target=hold, daemon=True) for _ in range(threads)]
    for t in holders:
        t.start()
    deadline = time.monotonic() + 10
    while len(list(where.glob("entered-*"))) < threads:
        assert time.monotonic() < deadline, "the holding requests never reached the app"
        time.sleep(0.01)
    return holders


def release(where: Path, holders: list[threading.Thread]) -> None:
    (where / "go").touch()
    for t in holders:
        t.join(10)


def queued_request(srv, where: Path, holders: list[threading.Thread], path: str, wait: float):
    """Sends GET `path` while every thread is held, releases them after `wait` s (so the request
    waits at least that long for one), and returns the response."""
    with srv.connect(timeout=30) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(wait)
        release(where, holders)
        return read_response(s)


def test_a_request_queued_past_the_limit_gets_503_with_retry_after(serve, tmp_path):
    log = tmp_path / "access.log"
    srv = serve("waiting:app", "--threads", "2", "--max-queue-wait", "0.3", "--access-logfile", str(log))
    holders = hold_all_threads(srv, tmp_path, 2)
    # It waits for a thread at least 1 s: over the limit, whatever the machine.
    status, headers, body = queued_request(srv, tmp_path, holders, "/late", 1.0)
    assert status == b"HTTP/1.1 503 Service Unavailable"
    assert headers.get("retry-after") == "1"
    assert headers.get("connection") == "close"
    assert body == b"Service Unavailable\n"
    srv.wait_for_log(r"waited \d+ ms for an app thread, over --max-queue-wait \(300 ms\): answered 503")
    # Served again once threads are free; the 503's access line counts the wait.
    with srv.connect() as s:
        s.sendall(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[2] == b"/again"
    deadline = time.monotonic() + 10
    while '"GET /again HTTP/1.1" 200' not in (text := log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, text
        time.sleep(0.05)
    late = next(line for line in text.splitlines() if "GET /late" in line)
    assert '"GET /late HTTP/1.1" 503 ' in late
    assert int(late.rsplit(" ", 1)[1].removesuffix("us")) >= 1_000_000, late


def test_a_request_queued_within_the_limit_is_served(serve, tmp_path):
    srv = serve("waiting:app", "--threads", "2", "--max-queue-wait", "20")
    holders = hold_all_threads(srv, tmp_path, 2)
    status, _, body = queued_request(srv, tmp_path, holders, "/soon", 0.3)
    assert b" 200 " in status
    assert body == b"/soon"


def test_an_http2_stream_queued_past_the_limit_gets_503(serve, tmp_path):
    srv = serve("waiting:app", "--threads", "2", "--max-queue-wait", "0.3")
    holders = hold_all_threads(srv, tmp_path, 2)
    curl = subprocess.Popen(
        ["curl", "-sS", "--http2-prior-knowledge", "-D", "-", "-o", "/dev/null", srv.url + "/late"],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    release(tmp_path, holders)
    out, _ = curl.communicate(timeout=30)
    assert out.startswith("HTTP/2 503"), out
    assert "retry-after: 1" in out.lower()


def test_the_option_is_checked():
    out = subprocess.run(
        [sys.executable, "-m", "ferrule", "--max-queue-wait", "soon", "x:app"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "--max-queue-wait" in out.stderr and "'soon' is not a number of seconds" in out.stderr
