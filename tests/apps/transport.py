"""One app for the request suite every transport must pass (HTTP/1.1 plain and over TLS,
HTTP/2): methods, streamed uploads and downloads, HEAD, errors after the head, a lazy
start_response, write(), wsgi.file_wrapper."""

import hashlib
import json
import os
import tempfile
import threading

BLOCK = 64 * 1024
_FILE_BODY = bytes(range(256)) * 4096  # 1 MiB
_FILE = os.path.join(tempfile.gettempdir(), f"ferrule-transport-{os.getuid()}.bin")
if not os.path.exists(_FILE) or os.path.getsize(_FILE) != len(_FILE_BODY):
    with open(_FILE + f".{os.getpid()}", "wb") as f:
        f.write(_FILE_BODY)
    os.replace(_FILE + f".{os.getpid()}", _FILE)


def _query(environ) -> dict[str, str]:
    pairs = (p.partition("=") for p in environ.get("QUERY_STRING", "").split("&") if p)
    return {k: v for k, _, v in pairs}


def echo(environ, start_response):
    """The environ's plain values as JSON."""
    data = {k: v for k, v in environ.items() if isinstance(v, (str, bool, int))}
    body = json.dumps(data).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def upload(environ, start_response):
    """Reads the body in blocks; answers its length and SHA-256."""
    digest = hashlib.sha256()
    n = 0
    inp = environ["wsgi.input"]
    while block := inp.read(BLOCK):
        digest.update(block)
        n += len(block)
    body = json.dumps({"length": n, "sha256": digest.hexdigest()}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def download(environ, start_response):
    """?n=BYTES of a repeating pattern, streamed in 64 KiB blocks, without a length."""
    n = int(_query(environ).get("n", "0"))
    start_response("200 OK", [("Content-Type", "application/octet-stream")])

    def blocks():
        pattern = bytes(range(256)) * (BLOCK // 256)
        left = n
        while left > 0:
            yield pattern[: min(left, BLOCK)]
            left -= BLOCK

    return blocks()


def error_after_head(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first"
    raise RuntimeError("failed after the head")


def lazy(environ, start_response):
    def gen():
        start_response("201 Created", [("Content-Type", "text/plain")])
        yield b"lazy"

    return gen()


def write(environ, start_response):
    w = start_response("200 OK", [("Content-Type", "text/plain")])
    w(b"written ")
    return [b"then returned"]


def write_big(environ, start_response):
    """?n=BYTES of the download's pattern through write() in 1 MiB blocks, which wait until
    each is on its way (the socket fills up: the writes block)."""
    n = int(_query(environ).get("n", "0"))
    w = start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))])
    block = bytes(range(256)) * 4096
    left = n
    while left > 0:
        w(block[: min(left, len(block))])
        left -= len(block)
    return []


def file(environ, start_response):
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(_FILE_BODY)))],
    )
    return environ["wsgi.file_wrapper"](open(_FILE, "rb"), BLOCK)  # noqa: SIM115


_BARRIERS: dict[str, threading.Barrier] = {}
_BARRIERS_LOCK = threading.Lock()


def barrier(environ, start_response):
    """Waits (10 s at most) until ?n= requests with the same ?key= are all in the app: they
    can only meet when the server runs them concurrently."""
    q = _query(environ)
    with _BARRIERS_LOCK:
        b = _BARRIERS.setdefault(q["key"], threading.Barrier(int(q["n"])))
    try:
        b.wait(timeout=10)
        met = b"met"
    except threading.BrokenBarrierError:
        met = b"alone"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [met]


def sleep(environ, start_response):
    """Answers after ?ms= milliseconds."""
    import sys
    import time

    print("sleep started", file=sys.stderr, flush=True)
    time.sleep(int(_query(environ).get("ms", "0")) / 1000)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"slept"]


def file_sha256() -> str:
    return hashlib.sha256(_FILE_BODY).hexdigest()


ROUTES = {
    "/echo": echo,
    "/upload": upload,
    "/download": download,
    "/error_after_head": error_after_head,
    "/lazy": lazy,
    "/write": write,
    "/write_big": write_big,
    "/file": file,
    "/barrier": barrier,
    "/sleep": sleep,
}


def app(environ, start_response):
    route = ROUTES.get(environ["PATH_INFO"])
    if route is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such route\n"]
    return route(environ, start_response)
