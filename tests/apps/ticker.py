"""An app with a background thread of its own: answers how often that thread has ticked."""

import threading
import time

_ticks = 0


def _tick() -> None:
    global _ticks
    while True:
        time.sleep(0.01)
        _ticks += 1


threading.Thread(target=_tick, daemon=True).start()


def app(environ, start_response):
    body = str(_ticks).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
