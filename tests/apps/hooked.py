"""An app for config-file tests: it shows what the pre_request hook put in the environ, and
registers an atexit handler that writes a file named by FERRULE_TEST_ATEXIT_FILE."""

import atexit
import os

_ATEXIT_FILE = os.environ.get("FERRULE_TEST_ATEXIT_FILE")


def _goodbye() -> None:
    if _ATEXIT_FILE:
        with open(_ATEXIT_FILE, "a") as f:
            f.write(f"atexit {os.getpid()}\n")


atexit.register(_goodbye)


def app(environ, start_response):
    body = f"hooked={environ.get('HOOKED', '-')} pid={os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
