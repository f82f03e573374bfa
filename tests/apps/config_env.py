"""An app for the configuration tests: answers with a variable of os.environ (named by the
query string, GREETING by default) and its URL scheme; /print writes to stdout and stderr."""

import json
import os
import sys


def app(environ, start_response):
    if environ["PATH_INFO"] == "/print":
        print("printed by the app", flush=True)
        sys.stderr.write("written to stderr by the app\n")
        sys.stderr.flush()
    name = environ.get("QUERY_STRING") or "GREETING"
    body = json.dumps({"value": os.environ.get(name), "scheme": environ["wsgi.url_scheme"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
