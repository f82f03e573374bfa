"""Apps for the request body buffering tests (tests/test_body_buffering.py)."""

import hashlib
import os
import threading
import time


def app(environ, start_response):
    """Routes on PATH_INFO:

    /sha        the body read in 64 KiB blocks: "<sha256 hex> <length> <files>", files being
                how many entries the directory named by the query string holds meanwhile
    /up/...     reads one block of 4 KiB, creates the file named by the query string, then
                reads the rest: "<sha256 hex> <length>"
    /raise/...  reads one block of 4 KiB, creates the file named by the query string, then
                raises RuntimeError
    /hang/...   reads one block of 4 KiB, creates the file named by the query string, then
                sleeps for a minute (for --timeout)
    /partial/...  reads one block of 4 KiB, creates the file named by the query string, then
                answers "partial", the rest of the body unread
    /thread     the body read whole: "<the Python thread's name> <length>"
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
    elif path == "/thread":
        n = len(body.read())
        out = f"{threading.current_thread().name} {n}".encode()
    elif path.startswith(("/raise/", "/hang/", "/partial/")):
        body.read(4096)
        with open(query, "w") as f:
            f.write("first block read\n")
        if path.startswith("/raise/"):
            raise RuntimeError("the app failed mid-upload")
        if path.startswith("/hang/"):
            time.sleep(60)
        out = path.split("/")[1].encode()
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
