"""The smallest WSGI app: `ferrule examples.hello:app` (or `cd examples && ferrule hello:app`)."""


def app(environ, start_response):
    body = b"Hello, World!\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
