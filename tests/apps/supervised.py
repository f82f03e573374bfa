"""An app for supervisor tests: it reports its worker's pid and the VERSION it was loaded with.

The tests copy this file into a temporary directory and rewrite VERSION to watch reloads."""

import ctypes
import os
import threading
import time
from urllib.parse import parse_qs

VERSION = 1
#: The process that imported this module: the master with --preload, else the worker.
IMPORTED_IN = os.getpid()
_hoard: list[bytes] = []


def _wedge_gil() -> None:
    time.sleep(0.3)
    # ctypes.PyDLL keeps the GIL held through the C call: the whole interpreter is wedged.
    ctypes.PyDLL(None).sleep(60)


def app(environ, start_response):
    path = environ["PATH_INFO"]
    q = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
    if path == "/sleep":
        time.sleep(float(q.get("s", "10")))
    elif path == "/spin":
        while True:
            pass
    elif path == "/grow":
        _hoard.append(b"x" * (int(q.get("mb", "100")) << 20))
    elif path == "/wedge":
        threading.Thread(target=_wedge_gil, daemon=True).start()
    elif path == "/stream-then-sleep":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream_then_sleep()
    body = f"version={VERSION} pid={os.getpid()} imported={IMPORTED_IN}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _stream_then_sleep():
    yield b"first block\n"
    time.sleep(10)
    yield b"never\n"
