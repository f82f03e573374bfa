"""Apps for the HTTP/1.1 wire tests (tests/test_http1_wire.py).

Every call appends "METHOD TARGET" to the file named by FERRULE_WIRE_CALLS (when set), so a test
can prove the app was, or was not, called for a request."""

import os
import time


def _record(environ):
    path = os.environ.get("FERRULE_WIRE_CALLS")
    if path:
        target = environ.get("RAW_URI", environ.get("PATH_INFO", ""))
        with open(path, "a", encoding="latin-1") as f:
            f.write(f"{environ['REQUEST_METHOD']} {target}\n")


def _plain(start_response, status, body, extra=()):
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), *extra])
    return [body]


def app(environ, start_response):
    """Routes on PATH_INFO:

    /echo     the request body, read whole
    /gen      a generator response (no Content-Length)
    /sleepy   after 5 ms of work, "sleepy" from a generator with a Content-Length (a request
              slower than the flusher's deadline: its whole response is written at once)
    /noread   "ignored" without reading the body
    /write_then_read  "head;" through write(), then the request body, read whole
    /status/N status N with a body the server must not send for 204/304
    /genstatus/N  the same from a generator
    anything else: the path, as text"""
    _record(environ)
    path = environ["PATH_INFO"]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        return _plain(start_response, "200 OK", body)
    if path == "/gen":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (f"part {i}\n".encode() for i in range(3))
    if path == "/sleepy":
        time.sleep(0.005)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
        return (b for b in [b"sleepy"])
    if path == "/noread":
        return _plain(start_response, "200 OK", b"ignored")
    if path == "/write_then_read":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"head;")
        return [environ["wsgi.input"].read()]
    if path.startswith("/status/"):
        code = path.rsplit("/", 1)[1]
        start_response(f"{code} Whatever", [("Content-Type", "text/plain")])
        return [b"must not be sent"]
    if path.startswith("/genstatus/"):
        code = path.rsplit("/", 1)[1]
        start_response(f"{code} Whatever", [("Content-Type", "text/plain")])
        return iter([b"must not ", b"be sent"])
    return _plain(start_response, "200 OK", path.encode("latin-1"))
