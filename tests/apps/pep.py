"""Apps for the PEP 3333 tests (tests/test_wsgi_*.py). `app` routes on PATH_INFO.

Apps that must show what happened out of band (close() called, an error caught) write a line to
`wsgi.errors`, which reaches the server's error log."""

import io
import json
import os
import sys
import tempfile
import threading
import time
from urllib.parse import parse_qs


def _query(environ, name, default=None):
    values = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    return values[0] if values else default


def _plain(start_response, body, status="200 OK", extra=()):
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), *extra])
    return [body]


def _json(start_response, obj, status="200 OK"):
    return _plain(start_response, json.dumps(obj).encode(), status)


def _lines(chunks):
    return [c.decode("latin-1") for c in chunks]


def _vmhwm_kib():
    """The worker's peak resident memory so far, in KiB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


# --- environ ---


def show_environ(environ, start_response):
    """The environ's plain values (tuples as lists) and the type name of every value."""
    data = {}
    for k, v in environ.items():
        if isinstance(v, (str, bool, int)):
            data[k] = v
        elif isinstance(v, tuple):
            data[k] = list(v)
    data["types"] = {k: type(v).__name__ for k, v in environ.items()}
    return _json(start_response, data)


def show_then_change(environ, start_response):
    """The environ and the body as sent; then changes, adds and removes environ keys, which
    must not reach the next request."""
    body = environ["wsgi.input"].read()
    data = {k: v for k, v in environ.items() if isinstance(v, str)}
    data["body"] = body.decode("latin-1")
    environ["PATH_INFO"] = "/changed"
    environ["REMOTE_PORT"] = "0"
    environ["HTTP_X_ADDED_BY_APP"] = "1"
    for k in ("HTTP_HOST", "CONTENT_TYPE", "HTTP_COOKIE"):
        environ.pop(k, None)
    return _json(start_response, data)


def errors(environ, start_response):
    """Writes to wsgi.errors; answers with what write() returned."""
    err = environ["wsgi.errors"]
    n = err.write("wsgi.errors says h\xe9llo\n")
    err.writelines(["line one\n", "line two\n"])
    err.flush()
    return _json(start_response, {"written": n})


# --- wsgi.input ---


def _read_sizes(inp, n):
    out = []
    while True:
        block = inp.read(n)
        out.append(block)
        if not block:
            return out


def _readlines_by_limit(inp, n):
    out = []
    while line := inp.readline(n):
        out.append(line)
    return out


INPUT = {
    "read": lambda inp, q: [inp.read()],
    "read_n": lambda inp, q: _read_sizes(inp, int(q)),
    "readline": lambda inp, q: [inp.readline(), inp.readline(), inp.read()],
    "readline_limit": lambda inp, q: _readlines_by_limit(inp, int(q)),
    "readlines": lambda inp, q: inp.readlines(),
    "readlines_hint": lambda inp, q: [*inp.readlines(int(q)), b"|", inp.read()],
    "iterate": lambda inp, q: list(inp),
    "past_end": lambda inp, q: [
        inp.read(),
        inp.read(),
        inp.read(10),
        inp.readline(),
        inp.readlines(),
        list(inp),
    ],
}


def input_app(environ, start_response):
    """/input/KIND?q=N: reads the body the KIND way; answers with the pieces as JSON."""
    kind = environ["PATH_INFO"].rsplit("/", 1)[1]
    pieces = INPUT[kind](environ["wsgi.input"], _query(environ, "q"))
    return _json(start_response, [_lines(p) if isinstance(p, list) else p.decode("latin-1") for p in pieces])


def memory(environ, start_response):
    """GET: the peak RSS. POST: reads the body in 64 KiB blocks; answers with its size, the
    largest block and the peak RSS after it."""
    inp = environ["wsgi.input"]
    total = largest = 0
    while block := inp.read(65536):
        total += len(block)
        largest = max(largest, len(block))
    return _json(start_response, {"total": total, "largest": largest, "hwm_kib": _vmhwm_kib()})


def slow_read(environ, start_response):
    """Reads the body only after a second: `100 Continue` must wait for it."""
    time.sleep(1.0)
    return _plain(start_response, environ["wsgi.input"].read())


# --- start_response ---

BAD_STATUS = {
    "bare_code": "200",
    "four_digits": "2000 X",
    "two_digits": "20 OK",
    "letters": "abc OK",
    "no_space": "200OK",
    "not_str": 200,
    "bytes": b"200 OK",
    "crlf": "200 OK\r\nX-Injected: 1",
    "lf": "200 OK\nX",
    "non_latin1": "200 \u20ac",
}

BAD_HEADERS = {
    "not_a_list": "Content-Type: text/plain",
    "dict": {"Content-Type": "text/plain"},
    "not_tuple": [["Content-Type", "text/plain"]],
    "three_tuple": [("Content-Type", "text/plain", "x")],
    "name_not_str": [(b"Content-Type", "text/plain")],
    "value_not_str": [("X-Number", 1)],
    "crlf_in_value": [("X-Thing", "a\r\nX-Injected: 1")],
    "lf_in_value": [("X-Thing", "a\nb")],
    "crlf_in_name": [("X-Thing\r\n", "a")],
    "colon_in_name": [("X:Thing", "a")],
    "non_latin1_value": [("X-Thing", "\u20ac")],
    "differing_content_length": [("Content-Length", "3"), ("Content-Length", "4")],
    "content_length_not_decimal": [("Content-Length", "3x")],
}


def bad_start_response(environ, start_response):
    """/bad_status/CASE or /bad_headers/CASE: start_response with a malformed argument; the
    error is caught and reported in the body (`?catch=0`: not caught)."""
    _, what, case = environ["PATH_INFO"].split("/")
    args = (
        (BAD_STATUS[case], [("Content-Type", "text/plain")])
        if what == "bad_status"
        else ("200 OK", BAD_HEADERS[case])
    )
    if _query(environ, "catch", "1") == "0":
        start_response(*args)
        return [b"not reached"]
    try:
        start_response(*args)
    except Exception as e:
        return _plain(start_response, f"{type(e).__name__}: {e}".encode("latin-1", "replace"), "200 OK")
    return _plain(start_response, b"accepted", "200 OK")


def hop_by_hop(environ, start_response):
    body = b"hop"
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            ("Connection", "upgrade"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("X-Kept", "yes"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]


def connection_close(environ, start_response):
    """`Connection: close` from the app, with a body of each framing (`?gen`: chunked)."""
    headers = [("Content-Type", "text/plain"), ("connection", "Keep-Alive, CLOSE")]
    if environ["QUERY_STRING"] == "gen":
        start_response("200 OK", headers)
        return (part for part in (b"clo", b"se"))
    start_response("200 OK", [*headers, ("Content-Length", "5")])
    return [b"close"]


def same_content_length(environ, start_response):
    start_response(
        "200 OK", [("Content-Length", "3"), ("Content-Type", "text/plain"), ("Content-Length", "3")]
    )
    return [b"abc"]


def constant_headers(environ, start_response):
    """Header tuples written as constants (the same objects on every call) beside one built
    per request; `?n=` sets X-Value and a second Content-Length (differing from 2: an error)."""
    n = _query(environ, "n", "2")
    headers = [
        ("Date", "Tue, 01 Jan 2030 00:00:00 GMT"),
        ("Server", "app/1"),
        ("Content-Length", "2"),
        ("X-Value", n),
        ("Content-Length", n),
    ]
    try:
        start_response("200 OK", headers)
    except ValueError as e:
        return _plain(start_response, str(e).encode(), "400 Bad Request")
    return [b"ok"]


def second_call(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        start_response("201 Created", [("Content-Type", "text/plain")])
    except Exception as e:
        return [f"{type(e).__name__}: {e}".encode()]
    return [b"second call accepted"]


class _ReenteringHeaders(tuple):
    """Headers whose iteration calls start_response again, from inside start_response."""

    start_response = None

    def __iter__(self):
        try:
            type(self).start_response("202 Accepted", [])
        except Exception as e:
            yield ("X-Reentry", f"{type(e).__name__}: {e}")
        yield from tuple.__iter__(self)


def reentrant_start_response(environ, start_response):
    _ReenteringHeaders.start_response = start_response
    start_response("200 OK", _ReenteringHeaders([("Content-Type", "text/plain")]))
    return [b"served"]


_KEPT: list = []


def keep_start_response(environ, start_response):
    """Keeps start_response and its write() past the request."""
    _KEPT[:] = [start_response, start_response("200 OK", [("Content-Type", "text/plain")])]
    return [b"kept"]


def use_kept_start_response(environ, start_response):
    """Calls what /keep_start_response kept, then answers: what each call raised."""
    outcome = []
    for call in (lambda: _KEPT[0]("201 Created", [("X-Stale", "1")]), lambda: _KEPT[1](b"stale")):
        try:
            call()
            outcome.append("accepted")
        except Exception as e:
            outcome.append(type(e).__name__)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [" ".join(outcome).encode()]


_KEPT_WRITE: list = []


def keep_write(environ, start_response):
    """Keeps only the write() start_response returns, past the request."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"kept ")
    _KEPT_WRITE[:] = [write]
    return [b"write"]


def use_kept_write(environ, start_response):
    """Calls the write() /keep_write kept, then answers with what it raised, through a
    write() of its own."""
    try:
        _KEPT_WRITE[0](b"stale")
        outcome = "accepted"
    except Exception as e:
        outcome = type(e).__name__
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(outcome.encode())
    return [b" " + str(write is _KEPT_WRITE[0]).encode()]


def exc_info_before_headers(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
    try:
        raise ValueError("changed my mind")
    except ValueError:
        start_response(
            "503 Service Unavailable", [("Content-Type", "text/plain"), ("X-Second", "1")], sys.exc_info()
        )
    return [b"replaced"]


def exc_info_after_headers(environ, start_response):
    """Headers go out with the first block; start_response(exc_info) then re-raises."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first,"
    err = ValueError("too late")
    try:
        raise err
    except ValueError:
        try:
            start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
        except ValueError as again:
            environ["wsgi.errors"].write(f"start_response re-raised the same error: {again is err}\n")
            yield b"reraised"
            return
    yield b"not re-raised"


def exc_info_after_headers_uncaught(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first,"
    try:
        raise ValueError("too late, uncaught")
    except ValueError:
        start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
    yield b"not reached"


def write_only(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written ")
    write(b"")
    write(b"by write()")
    return []


def write_then_iterable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"write,")
    return [b"list"]


def write_then_error(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written before the error")
    raise RuntimeError("error after write()")


def empty_chunk_then_error(environ, start_response):
    """Headers are not sent with an empty block: the error can still become a 500."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b""
    raise RuntimeError("error after an empty block")


def empty_chunk_then_new_status(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b""
    try:
        raise KeyError("missing")
    except KeyError:
        start_response("404 Not Found", [("Content-Type", "text/plain")], sys.exc_info())
    yield b"not found after all"


# --- the response iterable ---


class Tracked:
    """An iterable whose close() writes `close() called for TAG` to wsgi.errors."""

    def __init__(self, environ, blocks, fail_at=None):
        self.errors = environ["wsgi.errors"]
        self.tag = _query(environ, "tag", "-")
        self.blocks = blocks
        self.fail_at = fail_at

    def __iter__(self):
        for i, block in enumerate(self.blocks):
            if i == self.fail_at:
                raise RuntimeError(f"failed mid-stream for {self.tag}")
            yield block

    def close(self):
        self.errors.write(f"close() called for {self.tag}\n")
        self.errors.flush()


def close_normal(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Tracked(environ, [b"one,", b"two"])


def close_error_mid_stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Tracked(environ, [b"sent before the error,", b"also sent,", b"never"], fail_at=2)


def close_error_before_headers(environ, start_response):
    return Tracked(environ, [b"never"], fail_at=0)


class HeldClose:
    """A one-block response whose close() waits (up to 30 s) for /release_close."""

    released = threading.Event()

    def __init__(self, body: bytes):
        self.body = body

    def __iter__(self):
        yield self.body

    def close(self):
        self.released.wait(30)


def _held_body(environ) -> bytes:
    """The body of /close_held and /gen_held, made after `slow_ms` of work (a request that
    took that long before its response)."""
    time.sleep(int(_query(environ, "slow_ms", "0")) / 1000)
    return ("held " + _query(environ, "tag", "-")).encode()


def close_held(environ, start_response):
    body = _held_body(environ)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return HeldClose(body)


def gen_held(environ, start_response):
    """Yields its whole body, then waits (up to 30 s) for /release_close before it ends."""
    body = _held_body(environ)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])

    def blocks():
        yield body
        HeldClose.released.wait(30)

    return blocks()


def release_close(environ, start_response):
    HeldClose.released.set()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "8")])
    return [b"released"]


def _endless():
    block = b"x" * 65536
    for _ in range(100_000):  # 6.5 GB: the client leaves long before
        yield block


def close_client_gone(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Tracked(environ, _endless())


def single_list(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"one element"]


def single_tuple(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (b"one element",)


def generator(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"gen"
    yield b"erated"


def declared_longer(environ, start_response):
    """Declares 5 bytes, yields 11."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    yield b"hello"
    yield b" world"


def declared_shorter(environ, start_response):
    """Declares 100 bytes, yields 5."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
    yield b"hel"
    yield b"lo"


FILE_BODY = bytes(range(256)) * 1000  # 256 000 bytes


def _real_file():
    fd, path = tempfile.mkstemp(prefix="ferrule-fw-")
    with os.fdopen(fd, "wb") as f:
        f.write(FILE_BODY)
    f = open(path, "rb")  # noqa: SIM115 - the server closes it through the wrapper
    os.unlink(path)
    return f


def file_wrapper_real(environ, start_response):
    """A real file from offset `?offset=N` (default 0)."""
    f = _real_file()
    f.seek(int(_query(environ, "offset", "0")))
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](f, 32768)


class LoggedBytesIO(io.BytesIO):
    def __init__(self, data, errors):
        super().__init__(data)
        self.errors = errors

    def close(self):
        self.errors.write("BytesIO closed\n")
        super().close()


def file_wrapper_bytesio(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](LoggedBytesIO(FILE_BODY, environ["wsgi.errors"]), 10000)


def _inner_failure():
    raise RuntimeError("raised inside _inner_failure")


def error_before_headers(environ, start_response):
    _inner_failure()


def write_until_gone(environ, start_response):
    """write()s 256 MiB; a client that leaves early makes write() raise, uncaught."""
    write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
    try:
        for _ in range(4096):
            write(b"x" * 65536)
    finally:
        environ["wsgi.errors"].write("write_until_gone: finished\n")
    return []


ROUTES = {
    "/write_until_gone": write_until_gone,
    "/errors": errors,
    "/memory": memory,
    "/slow_read": slow_read,
    "/hop_by_hop": hop_by_hop,
    "/connection_close": connection_close,
    "/same_content_length": same_content_length,
    "/second_call": second_call,
    "/reentrant_start_response": reentrant_start_response,
    "/constant_headers": constant_headers,
    "/keep_start_response": keep_start_response,
    "/use_kept_start_response": use_kept_start_response,
    "/keep_write": keep_write,
    "/use_kept_write": use_kept_write,
    "/exc_info_before_headers": exc_info_before_headers,
    "/exc_info_after_headers": exc_info_after_headers,
    "/exc_info_after_headers_uncaught": exc_info_after_headers_uncaught,
    "/write_only": write_only,
    "/write_then_iterable": write_then_iterable,
    "/write_then_error": write_then_error,
    "/empty_chunk_then_error": empty_chunk_then_error,
    "/empty_chunk_then_new_status": empty_chunk_then_new_status,
    "/close_normal": close_normal,
    "/close_held": close_held,
    "/gen_held": gen_held,
    "/release_close": release_close,
    "/close_error_mid_stream": close_error_mid_stream,
    "/close_error_before_headers": close_error_before_headers,
    "/close_client_gone": close_client_gone,
    "/single_list": single_list,
    "/single_tuple": single_tuple,
    "/generator": generator,
    "/declared_longer": declared_longer,
    "/declared_shorter": declared_shorter,
    "/file_wrapper_real": file_wrapper_real,
    "/file_wrapper_bytesio": file_wrapper_bytesio,
    "/error_before_headers": error_before_headers,
}


def app(environ, start_response):
    """Routes on PATH_INFO (see ROUTES, INPUT, BAD_STATUS, BAD_HEADERS)."""
    path = environ["PATH_INFO"]
    if path.startswith("/change/"):
        return show_then_change(environ, start_response)
    if path.startswith("/input/"):
        return input_app(environ, start_response)
    if path.startswith(("/bad_status/", "/bad_headers/")):
        return bad_start_response(environ, start_response)
    # Any other path: the environ.
    return ROUTES.get(path, show_environ)(environ, start_response)
