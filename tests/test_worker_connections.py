"""Connections and descriptors: a worker keeps at most `--worker-connections` open, and when
it is at the cap or out of file descriptors it stops accepting and makes room, closing its
idle keep-alive connections first, then the oldest still sending a request head."""

from __future__ import annotations

import socket
import sys
import time

import pytest
import requests
from conftest import read_all, read_response

pytestmark = pytest.mark.timeout(120)

PARTIAL = b"GET /slow HTTP/1.1\r\nHost: x\r\n"
REST = b"\r\n"


def idle_connections(srv, n: int) -> list[socket.socket]:
    """`n` connections that were served one request each and are kept alive."""
    conns = []
    for i in range(n):
        s = srv.connect()
        s.sendall(f"GET /idle/{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert read_response(s)[2] == f"/idle/{i}".encode()
        conns.append(s)
    return conns


def head_senders(srv, n: int, gap: float = 0.0) -> list[socket.socket]:
    """`n` connections that sent part of a request head, oldest first."""
    conns = []
    for _ in range(n):
        s = srv.connect()
        s.sendall(PARTIAL)
        conns.append(s)
        time.sleep(gap)
    return conns


def is_closed(s: socket.socket, timeout: float = 5.0) -> bool:
    s.settimeout(timeout)
    try:
        return read_all(s) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def finish_and_read(s: socket.socket) -> bytes:
    s.sendall(REST)
    s.settimeout(10)
    return read_response(s)[2]


def test_at_the_cap_idle_keep_alive_connections_are_closed_first(serve_both):
    srv = serve_both("wire:app", "--worker-connections", "20", "--keep-alive", "60", "--log-level", "info")
    idle = idle_connections(srv, 10)
    heads = head_senders(srv, 10)
    time.sleep(0.3)
    started = time.monotonic()
    assert requests.get(srv.url + "/new", timeout=10).text == "/new"
    assert time.monotonic() - started < 5
    assert all(is_closed(s) for s in idle)
    # Closing the idle ones made room: every connection still sending its head is served.
    for s in heads:
        assert finish_and_read(s) == b"/slow"
    line = srv.wait_for_log(r"at --worker-connections 20: accepting paused").string
    assert "closed 10 idle keep-alive and 0 connection(s) still sending a request head" in line
    for s in idle + heads:
        s.close()


def test_at_the_cap_without_idle_connections_the_oldest_head_senders_are_closed(serve):
    srv = serve("wire:app", "--worker-connections", "10", "--client-timeout", "60")
    heads = head_senders(srv, 10, gap=0.05)
    time.sleep(0.3)
    started = time.monotonic()
    assert requests.get(srv.url + "/new", timeout=10).text == "/new"
    assert time.monotonic() - started < 5
    assert is_closed(heads[0])
    for s in heads[5:]:
        assert finish_and_read(s) == b"/slow"
    srv.wait_for_log(r"closed 0 idle keep-alive and \d+ connection\(s\) still sending a request head")
    for s in heads:
        s.close()


# The server's descriptor limits: a soft limit below the hard one (raised at start), both far
# below the connections the test opens.
LIMITED = (
    "import os, resource, sys; "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (100, 160)); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def test_out_of_descriptors_the_worker_closes_the_oldest_head_senders_and_serves_others(serve_both):
    srv = serve_both("wire:app", "--client-timeout", "60", prefix=[sys.executable, "-c", LIMITED])
    srv.wait_for_log(r"File descriptor limit: 160 \(raised from 100\)")
    heads = head_senders(srv, 250)
    time.sleep(0.5)
    started = time.monotonic()
    assert requests.get(srv.url + "/new", timeout=15).text == "/new"
    assert time.monotonic() - started < 10
    assert is_closed(heads[0])
    assert finish_and_read(heads[-1]) == b"/slow"
    line = srv.wait_for_log(r"out of file descriptors").string
    assert "accepting paused" in line
    assert srv.proc.poll() is None
    for s in heads:
        s.close()


def test_the_worker_logs_its_descriptor_limit(serve):
    srv = serve("wire:app")
    srv.wait_for_log(r"File descriptor limit: \d+")
