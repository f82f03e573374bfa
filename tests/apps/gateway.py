"""An app that reports what it saw, for comparing the front protocols with direct HTTP."""

import hashlib
import json
import os
import tempfile

FILE = os.path.join(tempfile.gettempdir(), f"ferrule-gateway-{os.getpid()}.bin")


def _file_path(mib: int = 1) -> str:
    path = f"{FILE}.{mib}"
    if not os.path.exists(path):
        with open(path + ".tmp", "wb") as f:
            for _ in range(mib):
                f.write(bytes(range(256)) * 4096)
        os.replace(path + ".tmp", path)
    return path


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/error":
        raise RuntimeError("the app failed on purpose")
    if path == "/notmod":
        start_response("304 Not Modified", [("ETag", '"v1"'), ("X-App", "yes")])
        return []
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("X-App", "yes")])
        return (bytes([i]) * 65536 for i in range(64))
    if path == "/forever":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _Forever(environ["QUERY_STRING"])
    if path == "/file":
        f = open(_file_path(int(environ["QUERY_STRING"] or 1)), "rb")
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("X-App", "yes")])
        return environ["wsgi.file_wrapper"](f, 65536)
    digest = hashlib.sha256()
    size = 0
    stream = environ["wsgi.input"]
    while block := stream.read(65536):
        digest.update(block)
        size += len(block)
    seen = {
        "method": environ["REQUEST_METHOD"],
        "path_info": environ["PATH_INFO"],
        "script_name": environ["SCRIPT_NAME"],
        "query": environ["QUERY_STRING"],
        "content_type": environ.get("CONTENT_TYPE"),
        "content_length": environ.get("CONTENT_LENGTH"),
        "body_sha256": digest.hexdigest(),
        "body_len": size,
        "x_custom": environ.get("HTTP_X_CUSTOM"),
        "scheme": environ["wsgi.url_scheme"],
    }
    body = json.dumps(seen, sort_keys=True).encode()
    headers = [("Content-Type", "application/json"), ("X-App", "yes"), ("Content-Length", str(len(body)))]
    headers.append(("Set-Cookie", "seen=1; Path=/"))
    start_response("200 OK", headers)
    return [body]


class _Forever:
    """Yields a block every 20 ms until closed; close() leaves a marker file (the query)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __iter__(self):
        import time

        while True:
            time.sleep(0.02)
            yield b"x" * 1024

    def close(self) -> None:
        with open(self.marker, "w") as f:
            f.write("closed")
