"""An app for tests/test_max_queue_wait.py: /hold?DIR waits for DIR/go to exist (having made
DIR/entered-<n>), anything else answers at once."""

import os
import time
from pathlib import Path


def app(environ, start_response):
    if environ["PATH_INFO"] == "/hold":
        where = Path(environ["QUERY_STRING"])
        (where / f"entered-{os.getpid()}-{time.monotonic_ns()}").touch()
        deadline = time.monotonic() + 30
        while not (where / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    out = environ["PATH_INFO"].encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]
