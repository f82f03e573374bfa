"""Issue 19, "No client can hold a worker": slow-client attacks on real sockets, each inline
(`--threads 1`) and with `--threads 4`. While each attack runs, a normal client is answered
within a second every time it asks; each test also says when and how the attackers' connections
end:

- request heads dripped byte by byte: `408 Request Timeout` with `Connection: close` at
  --header-timeout;
- small bodies dripped (4 x threads connections, and 200): read by the event loop before the
  app runs; the app never sees a body that does not arrive: one that stops is closed at
  --client-timeout without an answer, one still dripping below --body-min-rate gets 408 with
  `Connection: close` when the rate's 5 s window ends;
- with streaming bodies and app threads, drippers holding every thread: 408 at the rate's
  window (given for streaming), and 503 for what waited past --max-queue-wait (the normal
  client too: the one case where it waits, up to the window);
- a 2 MiB body sent in pieces, its last bytes dripped (spooled; answered whole), and a body
  dripped after `Expect: 100-continue` (408 at the rate's window);
- a client that stops reading its response: closed at --client-timeout, the app's iterable
  closed;
- 1,100 dripping connections against a worker held to 1,024 descriptors: those it cannot
  hold are closed without an answer to make room, the rest get 408 at --header-timeout.

Many connections are driven by one thread with a selector (`slowclients.Drippers`); every wait
polls against a generous deadline, and buffer sizes that matter are set on the client's socket."""

from __future__ import annotations

import resource
import socket
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from conftest import Server, read_all, read_response
from slowclients import DRIP_EVERY, Conn, Drippers, wait_until
from test_body_buffering import post_head
from test_request_timeouts import PARTIAL, assert_408
from test_slow_clients import closed_count

pytestmark = pytest.mark.timeout(120)

# A normal client's request, from connect to the last byte of its answer, while an attack runs.
ANSWERED_WITHIN = 1.0
# Seconds the tests allow beyond a server time limit before they call it missed.
SLACK = 10.0


def answered_in(srv: Server) -> float:
    """One normal request on a new connection: the seconds until its whole answer came."""
    started = time.monotonic()
    with srv.connect(timeout=5) as s:
        s.sendall(b"GET /normal HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, _, body = read_response(s)
    assert (status, body) == (b"HTTP/1.1 200 OK", b"/normal")
    return time.monotonic() - started


def normal_client_while(srv: Server, attacking: Callable[[], bool], least: int = 3) -> list[float]:
    """A normal client asks every 0.1 s while `attacking()` holds (at least `least` times, the
    first while it holds); each answer must come within ANSWERED_WITHIN."""
    assert attacking(), "the attack ended before the normal client asked"
    took: list[float] = []
    while attacking() or len(took) < least:
        took.append(answered_in(srv))
        assert took[-1] < ANSWERED_WITHIN, f"a normal request took {took[-1]:.2f} s during the attack"
        time.sleep(0.1)
    return took


def served(c: Conn, body: bytes) -> bool:
    """`c` received a whole 200 response carrying `body`."""
    head, sep, rest = bytes(c.received).partition(b"\r\n\r\n")
    return bool(sep) and head.startswith(b"HTTP/1.1 200 ") and rest == body


def send_slowly(s: socket.socket, data: bytes, piece: int, pause: float) -> Iterator[int]:
    """Sends `data` `piece` bytes at a time, `pause` seconds apart; yields the bytes sent so
    far after each piece (the caller acts between pieces)."""
    for i in range(0, len(data), piece):
        s.sendall(data[i : i + piece])
        yield min(i + piece, len(data))
        time.sleep(pause)


def test_500_dripped_heads_get_408_at_the_header_timeout(serve_both):
    srv = serve_both("big:app", "--header-timeout", "3", "--client-timeout", "30")
    with Drippers((srv.host, srv.port), 500, PARTIAL) as attack:
        attack.wait_opened()
        first = min(c.sent_at or 0 for c in attack.conns)
        normal_client_while(srv, lambda: len(attack.still_open()) == 500)
        attack.wait_closed(attack.conns, 3 + SLACK)
        for c in attack.conns:
            assert_408(bytes(c.received))
            assert c.sent_at is not None and c.closed_at is not None
            # Not before the limit (counted from the head's first byte, which the server
            # read after it went out), and not long after.
            assert c.closed_at - c.sent_at > 3 - 0.05
            assert c.closed_at - first < 3 + SLACK
    assert answered_in(srv) < ANSWERED_WITHIN


def dripped_bodies(srv: Server, n: int) -> None:
    """`n` connections drip a 4,000-byte body (5 bytes/s, under the default --body-min-rate of
    500 bytes/s); the normal client is answered meanwhile. Then a third send the rest and are
    answered with their body; a third stop and are closed at --client-timeout (2 s) without an
    answer; the rest go on dripping and get 408 with `Connection: close` when the rate's first
    window (5 s of waiting for the body) ends. The app saw only the bodies that came whole."""
    length = 4000
    with Drippers((srv.host, srv.port), n, post_head("/echo", length)) as attack:
        attack.wait_opened()
        wait_until(lambda: all(c.dripped >= 3 for c in attack.conns), 30)
        asking = time.monotonic()
        normal_client_while(srv, lambda: time.monotonic() - asking < 1)
        assert len(attack.still_open()) == n
        finishing, stopping, dripping = attack.conns[::3], attack.conns[1::3], attack.conns[2::3]
        for c in finishing:
            attack.finish(c, length)
        attack.stall(stopping)
        wait_until(lambda: all(served(c, b"a" * length) for c in finishing), 30)
        attack.wait_closed(stopping, 2 + SLACK)
        for c in stopping:
            assert c.received == b""
            assert c.closed_at is not None and c.last_sent_at is not None
            assert c.closed_at - c.last_sent_at > 2 - 0.05
        # Still dripping until the window ends: the normal client is served meanwhile.
        if all(c.open for c in dripping):
            normal_client_while(srv, lambda: all(c.open for c in dripping), least=1)
        attack.wait_closed(dripping, 5 + SLACK)
        for c in dripping:
            assert_408(bytes(c.received))
            assert c.closed_at is not None and c.sent_at is not None
            assert 5 - 0.05 < c.closed_at - c.sent_at < 5 + SLACK
    assert srv_echoes(srv) == len(finishing)


def srv_echoes(srv: Server) -> int:
    with srv.connect() as s:
        s.sendall(b"GET /echoes HTTP/1.1\r\nHost: x\r\n\r\n")
        return int(read_response(s)[2])


def test_dripped_small_bodies_from_4_per_thread_do_not_hold_an_app_thread(serve_both):
    srv = serve_both("big:app", "--client-timeout", "2")
    dripped_bodies(srv, 4 * (4 if serve_both.threaded else 1))


def test_200_dripped_small_bodies_do_not_hold_the_worker(serve_both):
    srv = serve_both("big:app", "--client-timeout", "2")
    dripped_bodies(srv, 200)


def test_streamed_bodies_holding_every_app_thread_are_cut_at_the_rate_and_the_queue_answered_503(serve):
    """Streaming bodies (--no-request-buffering) with app threads: 4 x threads drippers hold
    every app thread and fill the queue, so a normal client waits, but not past the first
    rate window: the app's reads fail at --body-min-rate (given, as streaming paths need) and
    those drippers get 408; whatever waited longer than --max-queue-wait for a thread, the
    normal client too, gets 503 with Retry-After at once when one frees. The trade-off
    buffering removes; every connection ends answered."""
    srv = serve(
        "big:app",
        "--threads", "4",
        "--no-request-buffering",
        "--body-min-rate", "500",
        "--max-queue-wait", "0.5",
        "--client-timeout", "30",
    )  # fmt: skip
    with Drippers((srv.host, srv.port), 16, post_head("/echo", 4000)) as attack:
        attack.wait_opened()
        wait_until(lambda: all(c.dripped >= 3 for c in attack.conns), 30)
        started = time.monotonic()
        with srv.connect(timeout=5 + SLACK) as s:
            s.sendall(b"GET /normal HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, _ = read_response(s)
        waited = time.monotonic() - started
        attack.wait_closed(attack.conns, 5 + SLACK)
    assert status == b"HTTP/1.1 503 Service Unavailable", status
    assert headers.get("retry-after") and headers.get("connection") == "close"
    assert waited < 5 + SLACK
    heads = [bytes(c.received).split(b"\r\n", 1)[0] for c in attack.conns]
    assert heads.count(b"HTTP/1.1 408 Request Timeout") >= 4, heads
    assert set(heads) <= {b"HTTP/1.1 408 Request Timeout", b"HTTP/1.1 503 Service Unavailable"}, heads
    # The app was called for the streamed bodies that got a thread (and the 408), no others.
    assert srv_echoes(srv) == heads.count(b"HTTP/1.1 408 Request Timeout")


def test_a_dripped_2_mib_body_does_not_hold_the_worker_and_arrives_whole(serve_both):
    srv = serve_both("big:app", "--client-timeout", "5")
    body = bytes(range(256)) * (8 * 1024)  # 2 MiB: spooled
    with srv.connect(timeout=30) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        s.sendall(post_head("/echo", len(body)))
        took = []
        for sent in send_slowly(s, body[:-10], 64 * 1024, 0.05):
            if sent % (512 * 1024) == 0:
                took.append(answered_in(srv))
        # The last ten bytes one at a time.
        took += [answered_in(srv) for _ in send_slowly(s, body[-10:], 1, DRIP_EVERY)]
        assert len(took) == 13 and max(took) < ANSWERED_WITHIN, took
        status, _, echoed = read_response(s)
    assert status == b"HTTP/1.1 200 OK" and echoed == body


def test_a_body_dripped_after_100_continue_gets_408_at_the_minimum_rate(serve_both):
    """`100 Continue` at once (the body is buffered), then a body dripped at 5 bytes/s: others
    are answered meanwhile, and the dripper gets 408 with `Connection: close` when the default
    --body-min-rate's first window (5 s) ends; the app is not called."""
    srv = serve_both("big:app", "--client-timeout", "30")
    with srv.connect() as s:
        s.sendall(post_head("/echo", 1000, b"Expect: 100-continue\r\n"))
        buf = bytearray()
        status, _, _ = read_response(s, buf)
        assert status == b"HTTP/1.1 100 Continue"
        continued = time.monotonic()
        s.settimeout(DRIP_EVERY)
        took = []
        while True:
            try:
                s.send(b"a")
                if data := s.recv(65536):
                    buf += data
                    break
            except TimeoutError:
                took.append(answered_in(srv))
                continue
            except OSError:
                break
        answered = time.monotonic() - continued
        s.settimeout(10)
        buf += read_all(s)
    assert_408(bytes(buf))
    assert len(took) >= 3 and max(took) < ANSWERED_WITHIN, took
    assert 5 - 0.05 < answered < 5 + SLACK
    assert srv_echoes(srv) == 0


def test_a_client_that_stops_reading_is_closed_at_the_client_timeout_and_the_iterable_closed(serve_both):
    srv = serve_both("big:app", "--client-timeout", "2")
    blocks = 512  # 32 MiB: far beyond the client's receive buffer and the server's send buffer
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # before connect: the window
        s.settimeout(10)
        s.connect((srv.host, srv.port))
        s.sendall(b"GET /gen?%d HTTP/1.1\r\nHost: x\r\n\r\n" % blocks)
        asked = time.monotonic()
        normal_client_while(srv, lambda: closed_count(srv) == 0 and time.monotonic() - asked < 1.5)
        wait_until(lambda: closed_count(srv) == 1, 2 + SLACK)
        closed = time.monotonic()
        assert closed - asked > 2 - 0.3
        # The connection is closed: reading drains what was sent, then ends short of the body.
        received = len(read_all(s))
    assert received < blocks * 65536
    assert closed - asked < 2 + SLACK


# The server's descriptor limit, soft and hard: it cannot raise it.
FD_LIMIT = 1024
ATTACKERS = 1100
HELD = (
    "import os, resource, sys; "
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({FD_LIMIT}, {FD_LIMIT})); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


@pytest.fixture
def many_descriptors() -> Iterator[None]:
    """This process's soft descriptor limit raised to its hard limit for the attack."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = ATTACKERS + 200
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"the hard RLIMIT_NOFILE is {hard}; the test opens {need} descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_1100_dripping_connections_against_1024_descriptors(serve_both, many_descriptors):
    srv = serve_both(
        "big:app", "--header-timeout", "6", "--client-timeout", "30", prefix=[sys.executable, "-c", HELD]
    )
    srv.wait_for_log(rf"File descriptor limit: {FD_LIMIT}\s*$")
    assert "raised from" not in srv.wait_for_log(r"File descriptor limit").string
    with Drippers((srv.host, srv.port), ATTACKERS, PARTIAL) as attack:
        attack.wait_opened()
        # The worker runs out of descriptors and closes connections sending a head to make room.
        srv.wait_for_log(r"out of file descriptors .*accepting paused", timeout=SLACK)
        wait_until(lambda: len(attack.still_open()) <= FD_LIMIT, SLACK)
        asking = time.monotonic()
        normal_client_while(
            srv, lambda: time.monotonic() - asking < 1 and len(attack.still_open()) > FD_LIMIT // 2
        )
        attack.wait_closed(attack.conns, 6 + SLACK)
    # Those closed to make room got no answer. (Which ones is not asserted: "oldest" is by the
    # millisecond their head began, and a thousand begin within a few.) The rest, accepted as
    # room was made, got 408 at the header timeout.
    evicted = [c for c in attack.conns if not c.received]
    answered = [c for c in attack.conns if c.received]
    assert len(evicted) >= ATTACKERS - FD_LIMIT
    assert len(answered) >= FD_LIMIT // 2
    for c in answered:
        assert_408(bytes(c.received))
        assert c.sent_at is not None and c.closed_at is not None and c.closed_at - c.sent_at > 6 - 0.05
    assert srv.proc.poll() is None
    assert answered_in(srv) < ANSWERED_WITHIN
