"""`wsgi.input`: the file-like methods, chunked bodies, streaming, `Expect: 100-continue`."""

import json
import select
import time

import pytest
from conftest import read_response

BODY = b"first line\nsecond line\n\nfourth, no newline"
LINES = ["first line\n", "second line\n", "\n", "fourth, no newline"]


def post(path: str, body: bytes = BODY, chunked: bool = False, extra: bytes = b"") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode() + extra
    if not chunked:
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    framed = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7]) for i in range(0, len(body), 7)
    )
    return head + b"Transfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"


def pieces(srv, path: str, **kw) -> list:
    with srv.connect() as s:
        s.sendall(post(path, **kw))
        status, _, body = read_response(s)
    assert status == b"HTTP/1.1 200 OK", body
    return json.loads(body)


@pytest.fixture(params=["length", "chunked"])
def chunked(request):
    return request.param == "chunked"


@pytest.fixture
def srv(serve):
    return serve("pep:app")


def test_read_returns_the_whole_body(srv, chunked):
    assert pieces(srv, "/input/read", chunked=chunked) == [BODY.decode()]


@pytest.mark.parametrize("n", [1, 5, 1000])
def test_read_n_returns_at_most_n_bytes_then_empty(srv, chunked, n):
    got = pieces(srv, f"/input/read_n?q={n}", chunked=chunked)
    assert got[-1] == ""
    assert all(len(p) == n for p in got[:-2])
    assert 0 < len(got[-2]) <= n
    assert "".join(got) == BODY.decode()


def test_readline_returns_one_line_with_its_newline(srv, chunked):
    assert pieces(srv, "/input/readline", chunked=chunked) == [
        "first line\n",
        "second line\n",
        "\nfourth, no newline",
    ]


@pytest.mark.parametrize("limit", [1, 4, 11, 12, 100])
def test_readline_honours_its_limit(srv, chunked, limit):
    got = pieces(srv, f"/input/readline_limit?q={limit}", chunked=chunked)
    assert "".join(got) == BODY.decode()
    assert all(len(line) <= limit for line in got)
    # A piece ends at a newline or at the limit, never past either.
    assert all(line.endswith("\n") or len(line) == limit for line in got[:-1])
    assert all("\n" not in line[:-1] for line in got)


def test_readlines_returns_every_line(srv, chunked):
    assert pieces(srv, "/input/readlines", chunked=chunked) == LINES


def test_readlines_stops_once_the_hint_is_reached(srv, chunked):
    # The hint (5) is reached by the first line: that line alone, the rest stays readable.
    assert pieces(srv, "/input/readlines_hint?q=5", chunked=chunked) == [
        "first line\n",
        "|",
        "second line\n\nfourth, no newline",
    ]


def test_iteration_yields_lines(srv, chunked):
    assert pieces(srv, "/input/iterate", chunked=chunked) == LINES


def test_reading_past_the_end_returns_empty_bytes(srv, chunked):
    assert pieces(srv, "/input/past_end", chunked=chunked) == [BODY.decode(), "", "", "", [], []]


def test_reading_an_empty_body(srv):
    assert pieces(srv, "/input/past_end", body=b"") == ["", "", "", "", [], []]
    with srv.connect() as s:
        s.sendall(b"GET /input/readlines HTTP/1.1\r\nHost: x\r\n\r\n")
        assert json.loads(read_response(s)[2]) == []


def test_requests_without_a_body_between_requests_with_one_read_only_their_own(srv):
    """Requests without a body share one empty input; pipelined around bodies, each request
    reads exactly its own body and the connection goes on."""
    get = b"GET /input/past_end HTTP/1.1\r\nHost: x\r\n\r\n"
    with srv.connect() as s:
        s.sendall(get + post("/input/past_end") + get + post("/input/read", b"second") + get)
        buf = bytearray()
        got = [json.loads(read_response(s, buf)[2]) for _ in range(5)]
    empty = ["", "", "", "", [], []]
    assert got == [empty, [BODY.decode(), "", "", "", [], []], empty, ["second"], empty]


def test_chunked_body_with_extensions_and_trailers_is_decoded(srv):
    raw = (
        b"POST /input/read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;name=value\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    with srv.connect() as s:
        s.sendall(raw)
        assert json.loads(read_response(s)[2]) == ["abc0123456789"]


def test_chunked_upload_of_50_mb_is_streamed_with_flat_memory(serve_both):
    srv = serve_both("pep:app")
    block = bytes(range(256)) * 256  # 64 KiB
    n_blocks = 800  # 50 MiB
    with srv.connect(timeout=60) as s:
        s.sendall(b"GET /memory HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = bytearray()
        before = json.loads(read_response(s, buf)[2])["hwm_kib"]
        s.sendall(b"POST /memory HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (len(block), block)
        for _ in range(n_blocks):
            s.sendall(chunk)
        s.sendall(b"0\r\n\r\n")
        status, _, body = read_response(s, buf)
    got = json.loads(body)
    assert status == b"HTTP/1.1 200 OK"
    assert got["total"] == len(block) * n_blocks
    assert got["largest"] == 65536
    growth_mib = (got["hwm_kib"] - before) / 1024
    assert growth_mib < 16, f"peak RSS grew by {growth_mib:.1f} MiB during a 50 MiB upload"


def wait_readable(s, seconds: float) -> bool:
    return bool(select.select([s], [], [], seconds)[0])


def test_100_continue_waits_until_the_app_reads_when_the_body_streams(serve_both):
    srv = serve_both("pep:app", "--no-request-buffering")
    with srv.connect() as s:
        start = time.monotonic()
        s.sendall(b"POST /slow_read HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        # The app sleeps 1 s before reading: nothing may come meanwhile.
        assert not wait_readable(s, 0.5)
        buf = bytearray()
        status, _, _ = read_response(s, buf)
        assert status == b"HTTP/1.1 100 Continue"
        assert time.monotonic() - start >= 0.9
        s.sendall(b"hello")
        status, _, body = read_response(s, buf)
        assert (status, body) == (b"HTTP/1.1 200 OK", b"hello")


def test_100_continue_is_not_sent_when_the_body_came_with_the_head(srv):
    # The client did not wait: the body is there, the app reads it, no 100 is needed...
    # but a 100 is still allowed; what matters is that the final response is right and only once.
    with srv.connect() as s:
        s.sendall(post("/input/read", b"abc", extra=b"Expect: 100-continue\r\n"))
        buf = bytearray()
        status, _, body = read_response(s, buf)
        if status == b"HTTP/1.1 100 Continue":
            status, _, body = read_response(s, buf)
        assert (status, json.loads(body)) == (b"HTTP/1.1 200 OK", ["abc"])


def test_unread_chunked_body_is_drained_before_the_next_request(serve_both):
    srv = serve_both("pep:app")
    with srv.connect() as s:
        # /generator never reads its body.
        s.sendall(
            post("/generator", b"x" * 100_000, chunked=True) + b"GET /input/read HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        buf = bytearray()
        assert read_response(s, buf)[2] == b"generated"
        status, _, body = read_response(s, buf)
        assert (status, json.loads(body)) == (b"HTTP/1.1 200 OK", [""])


def test_partly_read_body_is_drained_before_the_next_request(srv):
    with srv.connect() as s:
        s.sendall(post("/input/readline", b"one\ntwo\nthree\n" * 1000) + post("/input/read", b"next"))
        buf = bytearray()
        read_response(s, buf)
        status, _, body = read_response(s, buf)
        assert (status, json.loads(body)) == (b"HTTP/1.1 200 OK", ["next"])
