"""A `wsgi.file_wrapper` in a reference cycle (the file refers back to its wrapper), for
tests/test_wsgi_response.py: the app says in its answer whether Python's garbage collector
freed the wrapper and the file, as seen through weak references to both."""

import gc
import io
import json
import time
import weakref

BODY = b"a file in a cycle with its wrapper"

# Weak references to the wrapper and the file of the last /served response.
_served: list[weakref.ref] = []


class CycleFile(io.BytesIO):
    """A file-like object holding the FileWrapper around it: a cycle only the GC can free."""

    wrapper = None


def _cycle(environ):
    f = CycleFile(BODY)
    w = environ["wsgi.file_wrapper"](f, 8)
    f.wrapper = w
    return w, f


def _collected(refs, timeout=2.0):
    """{"wrapper": freed?, "file": freed?} once gc.collect() freed both, or after `timeout`
    (the server may still hold the wrapper for a moment after the client has its answer)."""
    end = time.monotonic() + timeout
    while True:
        gc.collect()
        dead = {name: ref() is None for name, ref in zip(("wrapper", "file"), refs, strict=True)}
        if all(dead.values()) or time.monotonic() > end:
            return dead
        time.sleep(0.02)


def app(environ, start_response):
    """/dropped: a cycle made and dropped within the request, then collected. /served: a cycle
    served as the response. /served_collected: whether /served's cycle was collected."""
    path = environ["PATH_INFO"]
    if path == "/served":
        w, f = _cycle(environ)
        _served[:] = [weakref.ref(w), weakref.ref(f)]
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return w
    if path == "/dropped":
        w, f = _cycle(environ)
        refs = [weakref.ref(w), weakref.ref(f)]
        del w, f
        result = _collected(refs)
    elif path == "/served_collected" and _served:
        result = _collected(_served)
    else:
        result = {"error": f"nothing to check at {path}"}
    body = json.dumps(result).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
