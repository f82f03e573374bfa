"""An app wrapped in `wsgiref.validate.validator`; any warning it raises is an error (a 500 and
a traceback in the log), so a clean log proves the server kept to PEP 3333."""

import warnings
from wsgiref.validate import validator

warnings.simplefilter("error")


def _inner(environ, start_response):
    path = environ["PATH_INFO"]
    headers = [("Content-Type", "text/plain")]
    if path == "/post":
        inp = environ["wsgi.input"]
        body = inp.read(int(environ.get("CONTENT_LENGTH") or 0))
        rest = inp.readline(), inp.readlines(), list(inp)
        body = b"got " + body + repr(rest).encode()
        start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
        return [body]
    if path == "/write":
        write = start_response("200 OK", headers)
        write(b"via ")
        write(b"write")
        return []
    if path == "/generator":
        start_response("200 OK", headers)
        return (b"gen %d;" % i for i in range(3))
    if path == "/no_content":
        start_response("204 No Content", [])
        return []
    environ["wsgi.errors"].write("")
    environ["wsgi.errors"].flush()
    start_response("200 OK", [*headers, ("Content-Length", "5")])
    return [b"hello"]


application = validator(_inner)
