"""An app for the metrics tests: answers the status it is asked for, holds a request until a
file appears, grows its memory, and says which worker answered."""

import os
import time
from urllib.parse import parse_qs

_hoard: list[bytes] = []


def app(environ, start_response):
    path = environ["PATH_INFO"]
    q = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
    if path == "/hold":
        # Held in the app until the test creates the file.
        while not os.path.exists(q["until"]):
            time.sleep(0.01)
    elif path == "/grow":
        _hoard.append(b"x" * (int(q["mb"]) << 20))
    environ["wsgi.input"].read()
    status = int(q.get("status", "200"))
    body = f"pid={os.getpid()}\n".encode()
    start_response(f"{status} X", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
