"""Small PEP 3333 apps for the integration tests."""

import json


def hello(environ, start_response):
    body = b"Hello, World!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def echo_environ(environ, start_response):
    """Answers with the environ's str/bool/int/tuple values as JSON, and the body's bytes count."""
    data = {k: v for k, v in environ.items() if isinstance(v, (str, bool, int, tuple))}
    data["body"] = environ["wsgi.input"].read().decode("latin-1")
    body = json.dumps(data).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def generator(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    for i in range(3):
        yield f"part {i}\n".encode()


def lazy_start(environ, start_response):
    """A generator that calls start_response on its first iteration."""

    def gen():
        start_response("201 Created", [("Content-Type", "text/plain")])
        yield b"lazy"

    return gen()


def raises(environ, start_response):
    raise RuntimeError("boom from the app")


def slow_stream(environ, start_response):
    """First block at once, the second after 3 s: the first must reach the client meanwhile."""
    import time

    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first block\n"
    time.sleep(3)
    yield b"second block\n"


def mixed_write_and_yield(environ, start_response):
    """write() between yielded blocks keeps the order."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"a"
        write(b"b")
        yield b"c"
        write(b"d")

    return gen()


def lingering_after_last_block(environ, start_response):
    """The whole body (its Content-Length) at once, then 3 s of work before the iterable ends."""
    import time

    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    yield b"whole"
    time.sleep(3)


def lingering_after_write(environ, start_response):
    """The whole body through write(), then 3 s of work before the app returns."""
    import time

    write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    write(b"whole")
    time.sleep(3)
    return []


class _SlowClose:
    def __init__(self) -> None:
        self.blocks = iter([b"whole"])

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        return next(self.blocks)

    def close(self) -> None:
        import time

        time.sleep(3)


def lingering_in_close(environ, start_response):
    """The whole body, then an iterable whose close() takes 3 s."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return _SlowClose()
