"""Answers with the worker's uid and gid (imports nothing a dropped user might not read)."""

import os


def app(environ, start_response):
    body = f"uid={os.getuid()} gid={os.getgid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
