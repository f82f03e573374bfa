"""APP forms for tests/test_cli.py: each callable answers with its own name."""


def _named(name):
    def wsgi(environ, start_response):
        body = name.encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return wsgi


application = _named("application")
app = _named("app")
other = _named("other")


def factory():
    return _named("factory()")


def create_app(env, debug=False):
    return _named(f"create_app({env!r}, debug={debug!r})")
