"""Responses for the --compress tests: text of a known size, streamed blocks, and the cases
compression must leave alone."""

import os
import time

TEXT = b"".join(b"line %d of a compressible text body\n" % i for i in range(4000))  # ~150 KB


def _query(environ) -> dict[str, str]:
    pairs = (p.partition("=") for p in environ.get("QUERY_STRING", "").split("&") if p)
    return {k: v for k, _, v in pairs}


def app(environ, start_response):
    path = environ["PATH_INFO"]
    q = _query(environ)
    headers = [("Content-Type", q.get("type", "text/plain; charset=utf-8"))]
    if path == "/text":
        headers += [("Content-Length", str(len(TEXT))), ("ETag", '"abc"')]
        if "encoding" in q:
            headers.append(("Content-Encoding", q["encoding"]))
        if "cc" in q:
            headers.append(("Cache-Control", q["cc"]))
        start_response(q.get("status", "200 OK").replace("+", " "), headers)
        return [TEXT]
    if path == "/small":
        start_response("200 OK", headers + [("Content-Length", "5")])
        return [b"small"]
    if path == "/stream":
        # Ten blocks; after the first, waits until the test has received it (a flag file).
        flag = q.get("flag")
        start_response("200 OK", headers)

        def blocks():
            for i in range(10):
                yield b"block %d " % i + b"x" * 2000 + b"\n"
                if i == 0 and flag:
                    end = time.monotonic() + 20
                    while not os.path.exists(flag) and time.monotonic() < end:
                        time.sleep(0.01)

        return blocks()
    if path == "/big":
        n = int(q["n"])
        start_response("200 OK", headers)
        block = TEXT[: 64 * 1024]

        def big():
            left = n
            while left > 0:
                yield block[: min(left, len(block))]
                left -= len(block)

        return big()
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"none"]
