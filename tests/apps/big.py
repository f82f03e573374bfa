"""Large generated responses and request bodies, for tests/test_slow_clients.py.

Routes on PATH_INFO, N from the query string (blocks of 64 KiB, default 64: 4 MiB):

/gen      a generator of N blocks, chunked (no Content-Length)
/genlen   the same with a Content-Length
/list     one bytes object of N blocks in a list
/write    N blocks through the write() callable
/pieces   N small blocks of 1 to 300 bytes (piece(i)), chunked: many pieces per write
/closed   how many of the generators above had close() called, as text
/echo     the request body, read whole
/echoes   how many requests /echo has had, as text
anything else: the path, as text

Block i is bytes((i + j) % 256 for j in range(65536)), so a client can check every byte."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

BLOCK = 65536
closed = 0
echoes = 0


def block(i: int) -> bytes:
    return (bytes(range(256)) * 257)[i % 256 : i % 256 + BLOCK]


def piece(i: int) -> bytes:
    return bytes((i + j) % 251 for j in range(i * 37 % 300 + 1))


class Blocks:
    """N blocks, counting its close()."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Iterator[bytes]:
        return (block(i) for i in range(self.n))

    def close(self) -> None:
        global closed
        closed += 1
        print(f"close() of {self.n} blocks", file=sys.stderr, flush=True)


def app(environ: dict, start_response: Callable) -> object:
    path = environ["PATH_INFO"]
    n = int(environ.get("QUERY_STRING") or 64)
    if path == "/pieces":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (piece(i) for i in range(n))
    if path == "/gen":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Blocks(n)
    if path == "/genlen":
        start_response(
            "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n * BLOCK))]
        )
        return Blocks(n)
    if path == "/list":
        body = b"".join(block(i) for i in range(n))
        length = str(len(body))
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", length)])
        return [body]
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
        for i in range(n):
            write(block(i))
        return []
    if path == "/echo":
        global echoes
        echoes += 1
        body = environ["wsgi.input"].read()
    else:
        body = {"/closed": str(closed), "/echoes": str(echoes)}.get(path, path).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
