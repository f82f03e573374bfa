"""Real frameworks served by Ferrule answer exactly as they do under `wsgiref.simple_server`.

Each app in tests/frameworks/ (Django's project in tests/frameworks/django/) is run twice: in a
thread of this process under the standard library's reference server, and under the real
`ferrule` process. The same requests go to both; status, body and the headers the app set must
be equal. Framing headers (wsgiref answers as HTTP/1.0 and closes) and Date/Server are not
compared; Set-Cookie is compared cookie by cookie (name, value and attributes but Expires,
which is computed from the clock).
"""

from __future__ import annotations

import importlib
import json
import sys
import threading
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests

FRAMEWORKS = Path(__file__).parent / "frameworks"
DJANGO = FRAMEWORKS / "django"

# framework -> (APP as given to ferrule, directory the app is imported from)
APPS = {
    "flask": ("flask_app:app", FRAMEWORKS),
    "django": ("mysite.wsgi:application", DJANGO),
    "pyramid": ("pyramid_app:app", FRAMEWORKS),
    "bottle": ("bottle_app:app", FRAMEWORKS),
    "falcon": ("falcon_app:app", FRAMEWORKS),
    "werkzeug": ("werkzeug_app:app", FRAMEWORKS),
}

# (method, path, keyword arguments for requests, status expected when all frameworks agree),
# in the order they are sent.
REQUESTS = [
    ("GET", "/", {}, 200),
    ("GET", "/items/42", {}, 200),
    ("GET", "/items/42?verbose=1&q=a%20b", {}, 200),
    ("POST", "/form", {"data": {"name": "Ada Lovelace", "lang": "rust & python", "accent": "é"}}, 200),
    ("POST", "/json", {"json": {"n": 1, "list": [1, 2, 3], "text": "héllo", "nested": {"ok": True}}}, 200),
    ("GET", "/cookie", {"cookies": {"visitor": "v-123"}}, 200),
    ("GET", "/cookie", {}, 200),
    ("GET", "/redirect", {}, 302),
    ("GET", "/stream", {}, 200),
    ("HEAD", "/", {}, None),  # Falcon answers 405 unless a resource has on_head
    ("HEAD", "/stream", {}, None),
    ("POST", "/json", {"json": {"big": ["x" * 100] * 800}}, 200),  # ~80 KB, under Bottle's MEMFILE_MAX
    ("GET", "/no/such/page", {}, 404),
    ("GET", "/caf%C3%A9/%3Cb%3E", {}, 404),
    ("GET", "/items/not-a-number", {}, 404),
    ("PUT", "/form", {"data": "x=1"}, None),  # 405 from most, 404 from Pyramid's predicates
]

# Ferrule's two ways of calling the app: inline on the I/O thread, and on app threads.
MODES = {"inline": (), "threads": ("--threads", "4")}

IGNORED = {"date", "server", "connection", "keep-alive", "transfer-encoding"}


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def reference() -> Iterator:
    """`reference(app)` serves `app` with wsgiref in a thread; returns its base URL."""
    servers: list[WSGIServer] = []

    def start(app) -> str:
        srv = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
        servers.append(srv)
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return f"http://127.0.0.1:{srv.server_port}"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def load(spec: str, where: Path):
    module, attr = spec.split(":")
    if str(where) not in sys.path:
        sys.path.insert(0, str(where))
    return getattr(importlib.import_module(module), attr)


def cookies(resp: requests.Response) -> dict[str, tuple[str, dict[str, str]]]:
    """Set-Cookie headers as {name: (value, attributes without expires)}."""
    out = {}
    for line in resp.raw.headers.getlist("Set-Cookie"):
        jar = SimpleCookie()
        jar.load(line)
        for name, morsel in jar.items():
            attrs = {k: str(v) for k, v in morsel.items() if v and k != "expires"}
            out[name] = (morsel.value, attrs)
    return out


def normal(name: str, value: str) -> str:
    if name == "allow":
        # Flask/Werkzeug build Allow from a set of str: its order follows the process's hash seed.
        return ", ".join(sorted(m.strip() for m in value.split(",")))
    return value


def answer(session: requests.Session, base: str, method: str, path: str, kw: dict) -> dict:
    """What one request gets back, normalised so two servers' answers compare."""
    r = session.request(method, base + path, allow_redirects=False, timeout=10, **kw)
    headers = sorted(
        (k.lower(), normal(k.lower(), v.replace(base, "{base}")))
        for k, v in r.raw.headers.items()
        if k.lower() not in IGNORED and k.lower() != "set-cookie"
    )
    return {
        "status": r.status_code,
        "reason": r.reason,
        "body": r.content.replace(base.encode(), b"{base}"),
        "headers": headers,
        "cookies": cookies(r),
        "chunked": r.headers.get("Transfer-Encoding") == "chunked",
    }


@pytest.mark.filterwarnings("ignore:'cgi' is deprecated:DeprecationWarning")  # webob, under Pyramid
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("framework", list(APPS))
def test_framework_answers_as_under_wsgiref(framework, mode, serve, reference):
    spec, where = APPS[framework]
    ref_url = reference(load(spec, where))
    srv = serve(spec, *MODES[mode], cwd=where)
    # One session each: Ferrule keeps the connection alive across all the requests.
    ref_session, session = requests.Session(), requests.Session()
    for method, path, kw, status in REQUESTS:
        want = answer(ref_session, ref_url, method, path, kw)
        got = answer(session, srv.url, method, path, kw)
        assert status in (None, want["status"]), f"{framework}: the app answers {method} {path} wrongly"
        if want["chunked"] != got["chunked"]:
            # One side streamed without a length: Content-Length is framing, not the app's.
            for side in (want, got):
                side["headers"] = [h for h in side["headers"] if h[0] != "content-length"]
        assert not want.pop("chunked")  # wsgiref never chunks; Ferrule must for the streams
        streamed = path == "/stream" and method != "HEAD"
        assert got.pop("chunked") == streamed, f"{framework}: {method} {path} framing"
        assert got == want, f"{framework}: {method} {path} differs\nferrule log:\n{srv.text}"
    assert not [line for line in srv.log if "[WARNING]" in line or "[ERROR]" in line], srv.text


# Why a framework cannot read a chunked request body (no Content-Length) when Ferrule serves it.
CHUNKED_UPLOAD_FAILS = {
    "django": "Django reads CONTENT_LENGTH bytes only; it ignores wsgi.input_terminated",
    "falcon": "Falcon bounds wsgi.input by CONTENT_LENGTH (or 0); it ignores wsgi.input_terminated",
    "bottle": "Bottle reads CONTENT_LENGTH bytes unless HTTP_TRANSFER_ENCODING says chunked, and then it "
    "decodes the framing itself; Ferrule's wsgi.input is already decoded, so it drops that header",
}


@pytest.mark.parametrize(
    "framework",
    [
        pytest.param(f, marks=pytest.mark.xfail(reason=CHUNKED_UPLOAD_FAILS[f], strict=True))
        if f in CHUNKED_UPLOAD_FAILS
        else f
        for f in APPS
    ],
)
def test_chunked_upload_answers_as_content_length_upload(framework, serve):
    spec, where = APPS[framework]
    srv = serve(spec, cwd=where)
    body = json.dumps({"parts": ["y" * 50] * 400, "text": "héllo"}).encode()
    headers = {"Content-Type": "application/json"}
    sized = requests.post(srv.url + "/json", data=body, headers=headers, timeout=10)
    pieces = (body[i : i + 4096] for i in range(0, len(body), 4096))
    chunked = requests.post(srv.url + "/json", data=pieces, headers=headers, timeout=10)
    assert chunked.request.headers.get("Transfer-Encoding") == "chunked"
    assert sized.status_code == 200
    assert (chunked.status_code, chunked.content) == (200, sized.content)
