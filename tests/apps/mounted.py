"""Apps for `--mount`: each answers with its name, SCRIPT_NAME and PATH_INFO as JSON."""

from __future__ import annotations

import json

#: How many apps `make` built in this worker (a mount's factory runs once per worker).
MADE: list[str] = []


def _app(name: str):
    def app(environ, start_response):
        body = json.dumps(
            {
                "app": name,
                "script_name": environ["SCRIPT_NAME"],
                "path_info": environ["PATH_INFO"],
                "query": environ["QUERY_STRING"],
                "made": len(MADE),
            }
        ).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app


site = _app("site")
api = _app("api")
v2 = _app("v2")


def make(name: str):
    MADE.append(name)
    return _app(name)
