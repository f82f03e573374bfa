"""Time limits on a request head that a client cannot stretch: `--header-timeout` counts from
the head's first byte however steadily it comes, `--client-timeout` between reads; a head cut
short by either is answered `408 Request Timeout` with `Connection: close`."""

from __future__ import annotations

import socket
import time

import requests
from conftest import read_all, read_response

PARTIAL = b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Drip: "


def drip_until_closed(s: socket.socket, limit: float) -> tuple[bytes, float]:
    """Sends one byte every 0.1 s (a head that never ends) until the server answers or closes;
    returns what it sent back and the seconds that took."""
    started = time.monotonic()
    s.sendall(PARTIAL)
    s.settimeout(0.1)
    data = b""
    while time.monotonic() - started < limit:
        try:
            s.send(b"a")
        except OSError:
            break
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    s.settimeout(5)
    try:
        data += read_all(s)
    except OSError:
        pass
    return data, time.monotonic() - started


def assert_408(data: bytes) -> None:
    head = data.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), data
    assert b"\r\nConnection: close" in head


def test_a_head_dripped_byte_by_byte_gets_408_at_the_header_timeout(serve_both):
    srv = serve_both("wire:app", "--header-timeout", "1", "--client-timeout", "30", "--log-level", "debug")
    with srv.connect() as s:
        data, took = drip_until_closed(s, limit=10)
        # Meanwhile, and after, others are served at once.
        started = time.monotonic()
        assert requests.get(srv.url + "/other", timeout=5).text == "/other"
        assert time.monotonic() - started < 1
    assert_408(data)
    assert 0.5 < took < 10
    srv.wait_for_log(r"did not send a whole request head in time")


def test_a_stalled_head_gets_408_at_the_client_timeout(serve_both):
    srv = serve_both("wire:app", "--header-timeout", "0", "--client-timeout", "1")
    with srv.connect() as s:
        s.sendall(PARTIAL)
        s.settimeout(10)
        started = time.monotonic()
        data = read_all(s)
    assert_408(data)
    assert time.monotonic() - started < 10


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(serve):
    srv = serve("wire:app", "--header-timeout", "1", "--client-timeout", "1")
    with srv.connect() as s:
        s.settimeout(10)
        started = time.monotonic()
        assert read_all(s) == b""
    assert time.monotonic() - started < 10


def test_the_header_timeout_counts_from_the_first_byte_of_each_head(serve):
    srv = serve("wire:app", "--header-timeout", "1", "--keep-alive", "30", "--client-timeout", "30")
    with srv.connect() as s:
        buf = bytearray()
        s.sendall(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s, buf)[2] == b"/one"
        # Idle for longer than the header timeout: the keep-alive time applies, not it.
        time.sleep(1.5)
        # A head sent in two parts well within the limit is served.
        s.sendall(b"GET /two HTTP/1.1\r\n")
        time.sleep(0.2)
        s.sendall(b"Host: x\r\n\r\n")
        assert read_response(s, buf)[2] == b"/two"
