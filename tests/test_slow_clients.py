"""Slow clients do not hold up an inline worker (`--threads 1`).

Readers: when a response does not fit in a client's socket, the worker stops asking the app
for more and serves other connections; the response goes on as that client reads, complete
and in order, and a client that reads nothing within --client-timeout is cut off (the app's
iterable is still closed). Senders: a small body (up to 64 KiB) is read in the event loop
before the app is called."""

from __future__ import annotations

import hashlib
import signal
import socket
import struct
import time

import pytest
import requests
from apps.big import piece
from conftest import read_response

BLOCK = 65536


def expected(n: int) -> bytes:
    pattern = bytes(range(256)) * 257
    return b"".join(pattern[i % 256 : i % 256 + BLOCK] for i in range(n))


def closed_count(srv) -> int:
    return int(requests.get(srv.url + "/closed", timeout=5).text)


@pytest.mark.parametrize("route", ["/gen", "/genlen", "/list"])
def test_a_slow_reader_of_a_large_response_does_not_hold_up_others(serve, route):
    srv = serve("big:app")
    n = 96  # 6 MiB: far more than the socket buffers hold
    with srv.connect() as slow:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        slow.sendall(f"GET {route}?{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(0.3)  # the socket is full; the worker moved on
        started = time.monotonic()
        r = requests.get(srv.url + "/other", timeout=5)
        assert r.text == "/other"
        assert time.monotonic() - started < 1.0
        before = closed_count(srv)
        status, headers, body = read_response(slow)
        assert b" 200 " in status
        if route == "/gen":
            assert headers["transfer-encoding"] == "chunked"
        else:
            assert headers["content-length"] == str(n * BLOCK)
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(expected(n)).hexdigest()
        # The connection serves the next request as usual.
        slow.sendall(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(slow)[2] == b"/next"
    if route != "/list":
        # close() came once, after the iterable's end (not while it waited for the reader).
        assert before == 0
        assert closed_count(srv) == 1


@pytest.mark.parametrize("slow", [False, True], ids=["reader", "slow-reader"])
def test_many_small_blocks_arrive_whole_and_in_order(serve, slow):
    """Thousands of small blocks, coalesced many to a write with their chunk framing; a
    slow reader's socket takes part of a write, and the rest goes on from the byte it
    stopped at."""
    srv = serve("big:app")
    n = 40000  # 6 MB, more than the socket buffers hold
    whole = b"".join(piece(i) for i in range(n))
    with srv.connect() as s:
        if slow:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(
            f"GET /pieces?{n} HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
        if slow:
            time.sleep(0.3)
        buf = bytearray()
        status, headers, body = read_response(s, buf)
        assert (status, headers["transfer-encoding"]) == (b"HTTP/1.1 200 OK", "chunked")
        assert len(body) == len(whole) and body == whole
        assert read_response(s, buf)[2] == b"/next"


def test_pipelined_large_responses_arrive_whole_and_in_order(serve):
    srv = serve("big:app")
    with srv.connect() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(
            b"GET /gen?40 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /list?40 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /genlen?40 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /last HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        time.sleep(0.3)
        buf = bytearray()
        bodies = [read_response(s, buf)[2] for _ in range(5)]
    whole = expected(40)
    assert bodies[0] == whole
    assert bodies[1] == b"/small"
    assert bodies[2] == whole
    assert bodies[3] == whole
    assert bodies[4] == b"/last"


def test_write_callable_responses_arrive_whole(serve):
    srv = serve("big:app")
    with srv.connect() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"GET /write?48 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        assert read_response(s)[2] == expected(48)


def test_a_client_that_reads_nothing_is_cut_off_and_the_iterable_closed(serve):
    srv = serve("big:app", "--client-timeout", "2")
    with srv.connect() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"GET /gen?256 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        # Others are served meanwhile.
        assert requests.get(srv.url + "/other", timeout=5).text == "/other"
        assert closed_count(srv) == 0
        deadline = time.monotonic() + 10
        while closed_count(srv) == 0:
            assert time.monotonic() < deadline, "the iterable was never closed"
            time.sleep(0.2)
        # The connection is closed: reading drains what was sent, then ends, short of the body.
        s.settimeout(5)
        received = 0
        while data := s.recv(1 << 20):
            received += len(data)
        assert received < 256 * BLOCK


def test_a_slow_sender_of_a_small_body_does_not_hold_up_others(serve):
    srv = serve("big:app")
    body = bytes(range(256)) * 200  # 51,200 bytes: read before the app is called
    with srv.connect() as slow:
        slow.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:10])
        time.sleep(0.3)
        started = time.monotonic()
        assert requests.get(srv.url + "/other", timeout=5).text == "/other"
        assert time.monotonic() - started < 1.0
        slow.sendall(body[10:30000])
        time.sleep(0.1)
        slow.sendall(body[30000:] + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = bytearray()
        assert read_response(slow, buf)[2] == body
        assert read_response(slow, buf)[2] == b"/next"


def test_a_slow_sender_of_a_small_chunked_body_does_not_hold_up_others(serve):
    srv = serve("big:app")
    with srv.connect() as slow:
        slow.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        time.sleep(0.3)
        started = time.monotonic()
        assert requests.get(srv.url + "/other", timeout=5).text == "/other"
        assert time.monotonic() - started < 1.0
        slow.sendall(b"6\r\n world\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = bytearray()
        assert read_response(slow, buf)[2] == b"hello world"
        assert read_response(slow, buf)[2] == b"/next"


def test_a_client_that_stops_sending_its_small_body_is_closed_and_the_app_not_called(serve):
    srv = serve("big:app", "--client-timeout", "2")
    with srv.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        time.sleep(0.3)
        assert requests.get(srv.url + "/other", timeout=5).text == "/other"
        s.settimeout(6)
        assert s.recv(100) == b""  # closed after the client timeout, nothing sent
    assert requests.get(srv.url + "/echoes", timeout=5).text == "0"


def test_a_large_body_sent_slowly_still_arrives_whole(serve):
    # Over 64 KiB: streamed to the app as it reads (the loop's thread waits for the client).
    srv = serve("big:app")
    body = bytes(range(256)) * 1024
    with srv.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 65536):
            s.sendall(body[i : i + 65536])
            time.sleep(0.05)
        assert read_response(s)[2] == body


def test_a_client_that_disconnects_while_its_response_waits_is_let_go(serve):
    srv = serve("big:app")
    s = srv.connect()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"GET /gen?256 HTTP/1.1\r\nHost: x\r\n\r\n")
    s.recv(65536)
    time.sleep(0.3)  # the response waits for the client
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # a reset, with the response unread
    deadline = time.monotonic() + 5
    while closed_count(srv) == 0:
        assert time.monotonic() < deadline, "the iterable was never closed"
        time.sleep(0.1)
    assert closed_count(srv) == 1
    assert requests.get(srv.url + "/other", timeout=5).text == "/other"


@pytest.mark.parametrize("declared", [10_000, 200_000, 2_000_000])
def test_a_client_that_goes_away_mid_body_gets_no_answer_and_others_still_do(serve_both, declared):
    # 10 KB: read before the app is called (inline); 200 KB: one read(), filled in place;
    # 2 MB: a read() that grows as the bytes come.
    srv = serve_both("big:app")
    with srv.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % declared + b"x" * 5000)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(5)
        assert s.recv(100) == b""
    assert requests.post(srv.url + "/echo", data=b"y" * 300_000, timeout=5).content == b"y" * 300_000
    assert "panic" not in srv.text


def test_a_response_still_waiting_for_its_client_is_closed_when_the_worker_stops(serve):
    srv = serve("big:app", "--graceful-timeout", "1")
    with srv.connect() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"GET /gen?300 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)  # the response waits for the client
        srv.signal(signal.SIGTERM)
        assert srv.wait(10) == 0
    assert "close() of 300 blocks" in srv.text
