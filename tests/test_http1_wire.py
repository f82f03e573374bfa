"""HTTP/1.1 on the wire: raw bytes in, raw bytes out, against the real `ferrule` process.

The app (tests/apps/wire.py) records every call in a file, so the tests can prove that a
refused request, and anything pipelined behind it, never reached it."""

from __future__ import annotations

import calendar
import socket
import time
from collections.abc import Callable

import pytest
from conftest import read_all, read_response

H = b"Host: example.com\r\n"
AFTER = b"GET /after HTTP/1.1\r\n" + H + b"\r\n"


@pytest.fixture
def wire(serve, tmp_path):
    """Starts the wire app with `args`; returns (server, function giving the calls so far)."""
    calls = tmp_path / "calls.txt"
    calls.touch()

    def start(*args: str):
        srv = serve("wire:app", *args, env={"FERRULE_WIRE_CALLS": str(calls)})
        return srv, lambda: calls.read_text("latin-1").splitlines()

    return start


def get(path: str, extra: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return b"GET " + path.encode() + b" " + version + b"\r\n" + H + extra + b"\r\n"


def split_responses(data: bytes) -> list[bytes]:
    """Splits raw bytes at each status line (bodies in these tests never hold one)."""
    parts = data.split(b"HTTP/1.1 ")
    assert parts[0] == b"", data
    return [b"HTTP/1.1 " + p for p in parts[1:]]


def head_of(response: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, the bytes after the head)."""
    head, sep, rest = response.partition(b"\r\n\r\n")
    assert sep, response
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, rest


def assert_closed(sock: socket.socket) -> None:
    sock.settimeout(5)
    assert read_all(sock) == b""


# --- connection management ---


def test_keep_alive_serves_two_requests_on_one_socket(wire):
    srv, calls = wire()
    with srv.connect() as s:
        buf = bytearray()
        for path in ("/one", "/two"):
            s.sendall(get(path))
            status, headers, body = read_response(s, buf)
            assert status == b"HTTP/1.1 200 OK"
            assert body == path.encode()
            assert headers.get("connection") != "close"
    assert calls() == ["GET /one", "GET /two"]


def test_pipelined_small_and_large_responses_keep_their_order_and_a_half_close_gets_them_all(wire):
    """Small complete responses leave after the other requests waiting (the inline worker's
    outbox); a large or streamed one behind them on the same connection is written at once.
    Whatever the mix, the client reads them in order, also after it half-closed."""
    srv, _ = wire()
    big = bytes(range(256)) * 160  # 40 KiB: echoed back, more than is ever held back
    post = b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: " + str(len(big)).encode() + b"\r\n\r\n" + big
    with srv.connect() as s:
        s.sendall(get("/a") + post + get("/b") + get("/gen") + get("/c"))
        s.shutdown(socket.SHUT_WR)
        buf = bytearray()
        bodies = [read_response(s, buf)[2] for _ in range(5)]
    assert bodies == [b"/a", big, b"/b", b"part 0\npart 1\npart 2\n", b"/c"]
    with srv.connect() as s:
        s.sendall(get("/alone"))
        s.shutdown(socket.SHUT_WR)
        assert read_response(s)[2] == b"/alone"


def send_until_stuck(sock: socket.socket, request: Callable[[int], bytes], limit: float = 20) -> int:
    """Pipelines `request(i)` for i = 0, 1, ... until the server has taken nothing for
    0.5 s (it stopped reading: its socket to us is full). Returns the bytes sent; the socket
    is left blocking. A non-blocking send may take part of what it is given: the rest goes
    next, so that the stream stays whole requests (a cut one would be a malformed request)."""
    sock.setblocking(False)
    deadline = time.monotonic() + limit
    stuck_since = None
    sent, unsent, i = 0, b"", 0
    while time.monotonic() < deadline:
        if not unsent:
            unsent = b"".join(request(i + k) for k in range(16))
            i += 16
        try:
            n = sock.send(unsent)
            sent, unsent = sent + n, unsent[n:]
            stuck_since = None
        except BlockingIOError:
            stuck_since = stuck_since or time.monotonic()
            if time.monotonic() - stuck_since > 0.5:
                break
            time.sleep(0.01)
    assert stuck_since is not None, "the server never stopped taking requests"
    sock.setblocking(True)
    return sent


@pytest.mark.parametrize("threads", ["1", "4"])
def test_twenty_pipelined_requests_are_answered_in_order_by_either_worker(wire, threads):
    """Each pipelined request is served as soon as the one before it is done (an app thread's
    result with a request read behind it wakes the connection: with the long keep-alive time
    here, a result left for the client's next bytes would stall past the socket timeout). A
    slow request's response, written at once, still comes after the ones held back before it."""
    srv, calls = wire("--threads", threads, "--keep-alive", "60")
    with srv.connect() as s:
        s.sendall(b"".join(get(f"/req/{i}") for i in range(20)) + get("/gen") + get("/sleepy") + get("/last"))
        buf = bytearray()
        bodies = [read_response(s, buf)[2] for _ in range(23)]
    tail = [b"part 0\npart 1\npart 2\n", b"sleepy", b"/last"]
    assert bodies == [f"/req/{i}".encode() for i in range(20)] + tail
    assert calls() == [f"GET /req/{i}" for i in range(20)] + ["GET /gen", "GET /sleepy", "GET /last"]


@pytest.mark.parametrize("threads", ["1", "4"])
def test_a_client_that_stops_reading_gets_every_response_in_order_when_it_reads_again(wire, threads):
    """Small responses wait in the worker's outbox; once the client's socket is full, what is
    left of them waits for the client, and the connection reads no more requests until it is
    written. Then everything arrives in order: nothing lost, nothing out of order, whichever
    thread began writing it."""
    srv, _ = wire("--threads", threads)
    s = socket.socket()
    # A small receive window (set before connecting, so that it is the one announced; not so
    # small that the kernel's silly-window avoidance slows the reading down afterwards).
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.connect((srv.host, srv.port))
    req = get("/0000/" + "x" * 3000)
    sent = send_until_stuck(s, lambda i: get(f"/{i:04d}/" + "x" * 3000))
    whole = sent // len(req)
    s.settimeout(30)
    buf = bytearray()
    bodies = [read_response(s, buf)[2] for _ in range(whole)]
    s.close()
    assert bodies == [f"/{i:04d}/".encode() + b"x" * 3000 for i in range(whole)]


@pytest.mark.parametrize("threads", ["1", "4"])
def test_a_client_that_pipelines_and_never_reads_does_not_hold_up_others(wire, threads):
    srv, _ = wire("--threads", threads, "--client-timeout", "5")
    bad = srv.connect()
    bad.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # Responses of ~4 KiB each until the server stops taking requests (its socket is full).
    req = get("/" + "x" * 4000)
    send_until_stuck(bad, lambda _: req)
    started = time.monotonic()
    with srv.connect() as s:
        s.settimeout(15)
        s.sendall(get("/other"))
        body = read_response(s)[2]
    waited = time.monotonic() - started
    bad.close()
    assert body == b"/other"
    assert waited < 1, waited


def test_http10_without_keep_alive_closes(wire):
    srv, _ = wire()
    with srv.connect() as s:
        s.sendall(b"GET /old HTTP/1.0\r\n\r\n")
        status, headers, body = read_response(s)
        assert status.startswith(b"HTTP/1.1 200") or status.startswith(b"HTTP/1.0 200")
        assert body == b"/old"
        assert headers.get("connection", "close").lower() == "close"
        assert_closed(s)


def test_http10_generator_response_is_close_delimited(wire):
    srv, _ = wire()
    data = srv.raw(b"GET /gen HTTP/1.0\r\n\r\n")
    status, headers, body = head_of(data)
    assert status == 200
    assert "transfer-encoding" not in headers
    assert body == b"part 0\npart 1\npart 2\n"


def test_http10_keep_alive_with_generator_response_closes(wire):
    srv, _ = wire()
    data = srv.raw(
        b"GET /gen HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + get("/after", version=b"HTTP/1.0")
    )
    status, headers, body = head_of(data)
    assert status == 200
    # No length to delimit the body on HTTP/1.0: the close ends it.
    assert headers["connection"] == "close"
    assert "transfer-encoding" not in headers
    assert body == b"part 0\npart 1\npart 2\n"


def test_http10_with_keep_alive_stays_open(wire):
    srv, calls = wire()
    with srv.connect() as s:
        buf = bytearray()
        for path in ("/a", "/b"):
            s.sendall(f"GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".encode())
            _, headers, body = read_response(s, buf)
            assert headers["connection"].lower() == "keep-alive"
            assert body == path.encode()
    assert calls() == ["GET /a", "GET /b"]


def test_connection_close_on_http11_closes(wire):
    srv, calls = wire()
    with srv.connect() as s:
        s.sendall(get("/bye", b"Connection: close\r\n") + AFTER)
        status, headers, body = read_response(s)
        assert status == b"HTTP/1.1 200 OK"
        assert headers["connection"] == "close"
        assert body == b"/bye"
        assert_closed(s)
    assert calls() == ["GET /bye"]


def test_idle_keep_alive_connection_is_closed_after_the_keep_alive_time(wire):
    srv, _ = wire("--keep-alive", "1")
    with srv.connect() as s:
        s.sendall(get("/x"))
        read_response(s)
        started = time.monotonic()
        assert_closed(s)
        waited = time.monotonic() - started
    assert 0.5 <= waited < 4, waited


def test_date_and_server_headers(wire):
    srv, _ = wire()
    _, headers, _ = head_of(srv.raw(get("/x", b"Connection: close\r\n")))
    assert headers["server"] == "ferrule"
    assert headers["date"].endswith(" GMT")
    sent = calendar.timegm(time.strptime(headers["date"], "%a, %d %b %Y %H:%M:%S GMT"))
    assert abs(sent - time.time()) < 3, headers["date"]
    # Also on the server's own error responses.
    _, headers, _ = head_of(srv.raw(b"GET / HTTP/1.1\r\n\r\n"))
    assert headers["server"] == "ferrule"
    assert "date" in headers


def test_no_server_header_removes_server(wire):
    srv, _ = wire("--no-server-header")
    _, headers, _ = head_of(srv.raw(get("/x", b"Connection: close\r\n")))
    assert "server" not in headers
    assert "date" in headers
    _, headers, _ = head_of(srv.raw(b"GET / HTTP/1.1\r\n\r\n"))
    assert "server" not in headers


# --- malformed requests: refused, closed, never seen by the app ---

MALFORMED = {
    "missing_host": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "duplicate_host": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
    "invalid_host": (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    "host_with_userinfo": (b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400),
    "space_before_colon": (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    "obs_fold": (b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n", 400),
    "nul_in_value": (b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400),
    "cr_in_value": (b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400),
    "non_token_name": (b"GET / HTTP/1.1\r\n" + H + b"X(A): b\r\n\r\n", 400),
    "no_colon": (b"GET / HTTP/1.1\r\n" + H + b"Junk\r\n\r\n", 400),
    "junk_request_line": (b"hello\r\n\r\n", 400),
    "space_in_target": (b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400),
    "content_length_not_digits": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n", 400),
    "content_length_signed": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +3\r\n\r\nabc", 400),
    "content_length_negative": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
    "content_length_overflow": (
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 18446744073709551616\r\n\r\n",
        400,
    ),
    "content_length_differing": (
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    ),
    "transfer_encoding_on_http10": (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "transfer_encoding_and_content_length": (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        400,
    ),
    "chunked_not_last": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    "chunked_twice": (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    "gzip_chunked": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip,chunked\r\n\r\n0\r\n\r\n", 501),
    "expect_other": (b"POST / HTTP/1.1\r\n" + H + b"Expect: 200-ok\r\nContent-Length: 0\r\n\r\n", 417),
    "http_2_0": (b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    "http_3_0": (b"GET / HTTP/3.0\r\n" + H + b"\r\n", 505),
    "connect": (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501),
    "asterisk_for_get": (b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400),
}


def assert_refused(srv, calls, request: bytes, status: int) -> None:
    """`request` with a valid one pipelined behind it gets one `status` answer with
    `Connection: close`, then the connection closes, and the app sees neither."""
    with srv.connect() as s:
        s.sendall(request + AFTER)
        s.settimeout(5)
        data = read_all(s)
    responses = split_responses(data)
    assert len(responses) == 1, data
    code, headers, _ = head_of(responses[0])
    assert code == status, data
    assert headers["connection"] == "close"
    assert calls() == []


@pytest.mark.parametrize("request_bytes,status", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_request_is_refused_and_closed(wire, request_bytes, status):
    srv, calls = wire()
    assert_refused(srv, calls, request_bytes, status)
    # The app is reachable and recorded: the empty call list above means something.
    assert head_of(srv.raw(get("/ok", b"Connection: close\r\n")))[0] == 200
    assert calls() == ["GET /ok"]


def test_malformed_request_after_a_good_one_is_refused(wire):
    srv, calls = wire()
    with srv.connect() as s:
        s.sendall(get("/good") + MALFORMED["obs_fold"][0] + AFTER)
        s.settimeout(5)
        data = read_all(s)
    good, bad = split_responses(data)
    assert head_of(good)[2] == b"/good"
    assert head_of(bad)[0] == 400
    assert calls() == ["GET /good"]


def test_absolute_form_and_asterisk_options_are_served(wire):
    srv, calls = wire()
    with srv.connect() as s:
        s.sendall(
            b"GET http://example.com/abs?q HTTP/1.1\r\n" + H + b"\r\nOPTIONS * HTTP/1.1\r\n" + H + b"\r\n"
        )
        buf = bytearray()
        assert read_response(s, buf)[2] == b"/abs"
        assert read_response(s, buf)[0] == b"HTTP/1.1 200 OK"
    assert calls() == ["GET http://example.com/abs?q", "OPTIONS *"]


def test_a_higher_http1_minor_version_is_served_as_http11(wire):
    srv, calls = wire()
    with srv.connect() as s:
        s.sendall(get("/one", version=b"HTTP/1.2") + get("/two", version=b"HTTP/1.9"))
        buf = bytearray()
        for path in (b"/one", b"/two"):
            status, headers, body = read_response(s, buf)
            assert status == b"HTTP/1.1 200 OK"
            assert body == path
            assert headers.get("connection") != "close"
    assert calls() == ["GET /one", "GET /two"]


# --- limits ---

LIMITS = (
    "--limit-request-line",
    "64",
    "--limit-request-fields",
    "5",
    "--limit-request-field_size",
    "100",
    "--limit-request-body",
    "1000",
)


def test_request_line_limit(wire):
    srv, calls = wire(*LIMITS)
    line = b"GET /" + b"a" * (64 - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
    assert len(line) == 64
    assert head_of(srv.raw(line + b"\r\n" + H + b"Connection: close\r\n\r\n"))[0] == 200
    calls_before = calls()
    long_line = b"GET /" + b"a" * 65 + b" HTTP/1.1\r\n" + H + b"\r\n"
    with srv.connect() as s:
        s.sendall(long_line + AFTER)
        s.settimeout(5)
        data = read_all(s)
    (resp,) = split_responses(data)
    code, headers, _ = head_of(resp)
    assert (code, headers["connection"]) == (414, "close")
    assert calls() == calls_before


def test_request_fields_limit(wire):
    srv, calls = wire(*LIMITS)
    # Host, Connection and three more: five fields.
    fields = b"".join(f"X-{i}: v\r\n".encode() for i in range(3))
    assert head_of(srv.raw(get("/five", fields + b"Connection: close\r\n")))[0] == 200
    fields = b"".join(f"X-{i}: v\r\n".encode() for i in range(5))
    assert_refused_after(srv, calls, get("/six", fields), 431)


def test_request_field_size_limit(wire):
    srv, calls = wire(*LIMITS)
    ok = b"X-Big: " + b"v" * (100 - len(b"X-Big: ")) + b"\r\n"
    assert head_of(srv.raw(get("/fits", ok + b"Connection: close\r\n")))[0] == 200
    big = b"X-Big: " + b"v" * 100 + b"\r\n"
    assert_refused_after(srv, calls, get("/big", big), 431)


def test_oversized_field_is_refused_before_the_head_is_complete(wire):
    srv, calls = wire(*LIMITS)
    with srv.connect() as s:
        # The head never ends: the answer cannot wait for it.
        s.sendall(b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * 500)
        status, headers, _ = read_response(s)
        assert status.startswith(b"HTTP/1.1 431")
        assert headers["connection"] == "close"
        assert_closed(s)
    assert calls() == []


def assert_refused_after(srv, calls, request: bytes, status: int) -> None:
    before = calls()
    with srv.connect() as s:
        s.sendall(request + AFTER)
        s.settimeout(5)
        data = read_all(s)
    (resp,) = split_responses(data)
    code, headers, _ = head_of(resp)
    assert (code, headers["connection"]) == (status, "close")
    assert calls() == before


def test_declared_body_over_the_limit_is_413_without_calling_the_app(wire):
    srv, calls = wire(*LIMITS)
    ok = b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 1000\r\nConnection: close\r\n\r\n" + b"x" * 1000
    code, _, body = head_of(srv.raw(ok))
    assert (code, len(body)) == (200, 1000)
    assert calls() == ["POST /echo"]
    big = b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 1001\r\n\r\n" + b"x" * 1001
    assert_refused_after(srv, calls, big, 413)


def test_chunked_body_growing_over_the_limit_is_413(wire):
    srv, _ = wire(*LIMITS)
    chunk = b"1f4\r\n" + b"x" * 500 + b"\r\n"  # 500 bytes
    ok = b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    code, _, body = head_of(srv.raw(ok + chunk * 2 + b"0\r\n\r\n"))
    assert (code, len(body)) == (200, 1000)
    big = (
        b"POST /echo HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + chunk * 2
        + b"1\r\nx\r\n0\r\n\r\n"
    )
    with srv.connect() as s:
        s.sendall(big + AFTER)
        s.settimeout(5)
        data = read_all(s)
    (resp,) = split_responses(data)
    code, headers, _ = head_of(resp)
    assert (code, headers["connection"]) == (413, "close")


# --- bodies ---


def test_chunked_upload_is_decoded(wire):
    srv, calls = wire()
    body = bytes(range(256)) * 40
    framed = bytearray()
    for i in range(0, len(body), 3000):
        piece = body[i : i + 3000]
        framed += b"%x;ext=1\r\n" % len(piece) + piece + b"\r\n"
    framed += b"0\r\nX-Trailer: yes\r\n\r\n"
    with srv.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n")
        # In small, uneven pieces: framing split anywhere.
        for i in range(0, len(framed), 997):
            s.sendall(framed[i : i + 997])
        s.sendall(get("/next"))
        buf = bytearray()
        status, _, echoed = read_response(s, buf)
        assert status == b"HTTP/1.1 200 OK"
        assert echoed == body
        assert read_response(s, buf)[2] == b"/next"
    assert calls() == ["POST /echo", "GET /next"]


@pytest.mark.parametrize(
    "framing",
    [b"5\nhello\r\n0\r\n\r\n", b"5\r\nhelloX\r\n0\r\n\r\n", b"zz\r\n", b"10000000000000000\r\n"],
    ids=["bare_lf", "no_crlf_after_data", "not_hex", "overflow"],
)
def test_malformed_chunked_body_is_400_and_closed(wire, framing):
    srv, _ = wire()
    req = b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + framing
    with srv.connect() as s:
        s.sendall(req + AFTER)
        s.settimeout(5)
        data = read_all(s)
    (resp,) = split_responses(data)
    code, headers, _ = head_of(resp)
    assert (code, headers["connection"]) == (400, "close")


def test_unread_body_is_drained_before_the_next_request(wire):
    srv, calls = wire()
    with srv.connect() as s:
        s.sendall(b"POST /noread HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello" + get("/next"))
        buf = bytearray()
        assert read_response(s, buf)[2] == b"ignored"
        assert read_response(s, buf)[2] == b"/next"
    assert calls() == ["POST /noread", "GET /next"]


# --- responses without a body ---


@pytest.mark.parametrize("path", ["/x", "/gen"])
def test_head_gets_headers_and_no_body(wire, path):
    srv, _ = wire()
    data = srv.raw(
        b"HEAD " + path.encode() + b" HTTP/1.1\r\n" + H + b"\r\n" + get("/after", b"Connection: close\r\n")
    )
    head, after = split_responses(data)
    code, headers, rest = head_of(head)
    assert code == 200
    assert rest == b""  # the next response follows the head directly
    assert headers.get("transfer-encoding") != "chunked"
    if path == "/x":
        assert headers["content-length"] == "2"
    assert head_of(after)[2] == b"/after"


@pytest.mark.parametrize("code", [204, 304])
@pytest.mark.parametrize("kind", ["status", "genstatus"])
def test_204_and_304_carry_no_body(wire, code, kind):
    srv, _ = wire()
    data = srv.raw(get(f"/{kind}/{code}") + get("/after", b"Connection: close\r\n"))
    first, after = split_responses(data)
    got, headers, rest = head_of(first)
    assert got == code
    assert rest == b""
    assert "transfer-encoding" not in headers
    if code == 204:
        assert "content-length" not in headers
    assert head_of(after)[2] == b"/after"


# --- Expect: 100-continue ---


def recv_until(s: socket.socket, marker: bytes, buf: bytearray) -> None:
    while marker not in buf:
        data = s.recv(65536)
        if not data:
            raise ConnectionError(f"closed before {marker!r}: {bytes(buf)!r}")
        buf += data


def test_100_continue_is_sent_once_when_the_app_reads_the_body(wire):
    srv, _ = wire()
    body = b"0123456789" * 20000  # several socket reads
    with srv.connect() as s:
        s.sendall(
            b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body)
        )
        buf = bytearray()
        recv_until(s, b"\r\n\r\n", buf)
        assert bytes(buf) == b"HTTP/1.1 100 Continue\r\n\r\n"
        buf.clear()
        s.sendall(body[:1000])
        s.sendall(body[1000:] + get("/next"))
        status, _, echoed = read_response(s, buf)
        assert (status, echoed) == (b"HTTP/1.1 200 OK", body)
        status, _, echoed = read_response(s, buf)
        assert (status, echoed) == (b"HTTP/1.1 200 OK", b"/next")


@pytest.mark.parametrize("args", [(), ("--threads", "4")], ids=["inline", "threads"])
def test_100_continue_is_not_sent_when_the_app_ignores_a_streaming_body(wire, args):
    srv, _ = wire(*args, "--no-request-buffering")  # the body streams to the app
    with srv.connect() as s:
        s.sendall(b"POST /noread HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        status, headers, body = read_response(s)
        assert (status, body) == (b"HTTP/1.1 200 OK", b"ignored")
        # The body was never sent, so the server cannot tell what comes next: it closes, and
        # the response says so.
        assert headers["connection"] == "close"
        assert_closed(s)


@pytest.mark.parametrize("args", [(), ("--threads", "4")], ids=["inline", "threads"])
def test_a_large_streaming_body_the_app_leaves_unread_closes_the_connection_and_says_so(wire, args):
    """Past what the server drains (1 MiB), an unread body closes the connection: the
    response says `Connection: close`, so the client does not send another request on it."""
    srv, _ = wire(*args, "--no-request-buffering")  # the body streams to the app
    with srv.connect() as s:
        s.sendall(b"POST /noread HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % (4 << 20) + b"x" * 65536)
        status, headers, body = read_response(s)
        assert (status, body, headers["connection"]) == (b"HTTP/1.1 200 OK", b"ignored", "close")
    # A small unread body is drained: the connection serves the next request.
    with srv.connect() as s:
        s.sendall(b"POST /noread HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello" + get("/next"))
        buf = bytearray()
        status, headers, body = read_response(s, buf)
        assert (status, body, "connection" in headers) == (b"HTTP/1.1 200 OK", b"ignored", False)
        assert read_response(s, buf)[2] == b"/next"


@pytest.mark.parametrize("args", [(), ("--threads", "4")], ids=["inline", "threads"])
def test_no_100_continue_follows_a_response_that_started_before_the_app_read_the_body(wire, args):
    """The app write()s part of its response, then reads the body the client has not sent
    (it waits for 100 Continue): no 100 goes out in the middle of the response; the client,
    seeing the final response, sends the body; the connection closes after it."""
    srv, _ = wire(*args, "--no-request-buffering")  # the body streams to the app
    with srv.connect() as s:
        s.sendall(
            b"POST /write_then_read HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        buf = bytearray()
        recv_until(s, b"head;", buf)
        assert buf.startswith(b"HTTP/1.1 200 OK\r\n"), bytes(buf)
        s.sendall(b"hello")
        status, headers, body = read_response(s, buf)
        assert (status, body, headers["connection"]) == (b"HTTP/1.1 200 OK", b"head;hello", "close")
        assert b"100 Continue" not in body
        assert_closed(s)


def test_expect_100_continue_on_http10_is_ignored(wire):
    srv, _ = wire()
    req = b"POST /echo HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello"
    data = srv.raw(req)
    assert b"100 Continue" not in data
    assert head_of(data)[2] == b"hello"


def test_server_log_has_no_panics(wire):
    srv, _ = wire()
    for raw in (b"\x00\xff\r\n\r\n", b"GET /\xff HTTP/1.1\r\n" + H + b"\r\n"):
        srv.raw(raw)
    # Empty lines before a request line are skipped (RFC 9112 section 2.2).
    data = srv.raw(b"\r\n" * 100 + get("/alive", b"Connection: close\r\n"))
    assert head_of(data)[2] == b"/alive"
    assert "panic" not in srv.text


def test_keep_alive_zero_answers_connection_close_and_closes(wire):
    srv, calls = wire("--keep-alive", "0")
    with srv.connect() as s:
        s.sendall(get("/only") + AFTER)
        status, headers, body = read_response(s)
        assert (status, body) == (b"HTTP/1.1 200 OK", b"/only")
        assert headers["connection"] == "close"
        assert_closed(s)
    assert calls() == ["GET /only"]


def test_head_sent_byte_by_byte_is_served(wire):
    srv, calls = wire(*LIMITS)
    field = b"X-Big: " + b"v" * (100 - len(b"X-Big: ")) + b"\r\n"  # exactly at the field limit
    request = get("/slow", field + b"Connection: close\r\n")
    with srv.connect() as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(request)):
            s.send(request[i : i + 1])
        status, _, body = read_response(s)
    assert (status, body) == (b"HTTP/1.1 200 OK", b"/slow")
    assert calls() == ["GET /slow"]
