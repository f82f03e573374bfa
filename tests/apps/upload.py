"""Apps for the request body buffering tests (tests/test_body_buffering.py)."""

import hashlib
import os


def app(environ, start_response):
    """Routes on PATH_INFO:

    /sha        the body read in 64 KiB blocks: "<sha256 hex> <length> <files>", files being
                how many entries the directory named by the query string holds meanwhile
    /up/...     reads one block of 4 KiB, creates the file named by the query string, then
                reads the rest: "<sha256 hex> <length>"
    anything else: the path, as text"""
    path = environ["PATH_INFO"]
    query = environ.get("QUERY_STRING", "")
    body = environ["wsgi.input"]
    if path == "/sha":
        h = hashlib.sha256()
        n = 0
        while block := body.read(65536):
            h.update(block)
            n += len(block)
        files = len(os.listdir(query)) if query else 0
        out = f"{h.hexdigest()} {n} {files}".encode()
    elif path.startswith("/up/"):
        h = hashlib.sha256()
        first = body.read(4096)
        h.update(first)
        n = len(first)
        with open(query, "w") as f:
            f.write("first block read\n")
        while block := body.read(65536):
            h.update(block)
            n += len(block)
        out = f"{h.hexdigest()} {n}".encode()
    else:
        out = path.encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]
