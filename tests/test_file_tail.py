"""A large file response to a slow reader does not hold up an inline worker: what the socket
cannot take at once is sent by the connection's task while the worker serves others."""

from __future__ import annotations

import hashlib
import socket
import time

import requests
from conftest import read_response


def test_slow_reader_of_a_big_file_does_not_block_other_requests(serve):
    srv = serve("gateway:app")  # one inline worker
    expected = hashlib.sha256(bytes(range(256)) * 4096 * 32).hexdigest()
    with srv.connect() as slow:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        slow.sendall(b"GET /file?32 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)  # the worker has sent what fits and moved on
        started = time.monotonic()
        r = requests.get(srv.url + "/hello", timeout=5)
        assert r.status_code == 200
        assert time.monotonic() - started < 1.0
        status, headers, body = read_response(slow)
        assert b" 200 " in status
        assert headers["content-length"] == str(32 << 20)
        assert hashlib.sha256(body).hexdigest() == expected
        # The connection is still good for another request.
        slow.sendall(b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = read_response(slow)
        assert len(body) == 1 << 20
