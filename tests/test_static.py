"""--static PREFIX=DIR: files answered from the event loop without calling the app (types,
validators and 304, ranges, precompressed siblings, caching, traversal safety, fallthrough)."""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import trustme
from conftest import APPS, read_all, read_response
from tlscerts import write_leaf

pytestmark = pytest.mark.timeout(60)

APP = "basic:echo_environ"
CSS = b"body { color: red }\n"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A static directory (`root`) beside a file that must never be served (`secret.txt`)."""
    root = tmp_path / "root"
    (root / "css").mkdir(parents=True)
    (root / "css" / "a.css").write_bytes(CSS)
    (tmp_path / "secret.txt").write_bytes(b"secret\n")
    return root


def fetch(srv, target: str, headers: dict[str, str] | None = None, method: str = "GET"):
    """One request on a fresh connection (closed by the server after it): the raw target as
    given, so nothing normalises it. Returns (code, headers with lower-case names, body)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: x", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with srv.connect() as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        raw = read_all(s)
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *fields = head.decode("latin-1").split("\r\n")
    parsed = {}
    for f in fields:
        k, _, v = f.partition(":")
        parsed[k.strip().lower()] = v.strip()
    return int(status.split()[1]), parsed, body


def app_path(body: bytes) -> str:
    """PATH_INFO from the echo app's JSON answer."""
    return json.loads(body)["PATH_INFO"]


def http_date(path: Path) -> str:
    return email.utils.formatdate(int(path.stat().st_mtime), usegmt=True)


def test_get_serves_the_file_with_type_length_and_validators(serve, site):
    srv = serve(APP, "--static", f"/static={site}")
    code, h, body = fetch(srv, "/static/css/a.css")
    assert code == 200
    assert body == CSS
    assert h["content-type"] == "text/css; charset=utf-8"
    assert h["content-length"] == str(len(CSS))
    assert h["etag"].startswith('"') and h["etag"].endswith('"')  # strong: no W/
    assert h["last-modified"] == http_date(site / "css" / "a.css")
    assert h["accept-ranges"] == "bytes"
    assert "cache-control" not in h
    assert "vary" not in h
    assert "content-encoding" not in h
    # The query is not part of the file's name.
    assert fetch(srv, "/static/css/a.css?v=3")[2] == CSS


@pytest.mark.parametrize(
    "name,ctype",
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("index.html", "text/html; charset=utf-8"),
        ("data.json", "application/json"),
        ("logo.svg", "image/svg+xml"),
        ("logo.PNG", "image/png"),
        ("font.woff2", "font/woff2"),
        ("notes.txt", "text/plain; charset=utf-8"),
        ("blob.unknownext", "application/octet-stream"),
        ("README", "application/octet-stream"),
    ],
)
def test_content_type_from_the_extension(serve, site, name, ctype):
    (site / name).write_bytes(b"x")
    srv = serve(APP, "--static", f"/static={site}")
    code, h, _ = fetch(srv, f"/static/{name}")
    assert (code, h["content-type"]) == (200, ctype)


def test_head_has_the_get_headers_and_no_body(serve, site):
    srv = serve(APP, "--static", f"/static={site}")
    _, get_h, _ = fetch(srv, "/static/css/a.css")
    code, head_h, body = fetch(srv, "/static/css/a.css", method="HEAD")
    assert code == 200
    assert body == b""
    get_h.pop("date"), head_h.pop("date")
    assert head_h == get_h
    code, h, body = fetch(srv, "/static/missing.css", method="HEAD")
    assert (code, body) == (404, b"")
    assert int(h["content-length"]) > 0


def test_if_none_match_gives_304_and_wins_over_if_modified_since(serve, site):
    srv = serve(APP, "--static", f"/static={site}")
    _, h, _ = fetch(srv, "/static/css/a.css")
    etag, modified = h["etag"], h["last-modified"]
    for inm in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        code, h304, body = fetch(srv, "/static/css/a.css", {"If-None-Match": inm})
        assert (code, body) == (304, b""), inm
        assert h304["etag"] == etag
        assert h304["last-modified"] == modified
        assert "content-length" not in h304
    assert fetch(srv, "/static/css/a.css", {"If-None-Match": '"other"'})[0] == 200
    # If-Modified-Since alone: not modified since then (or later), 304; before it, 200.
    assert fetch(srv, "/static/css/a.css", {"If-Modified-Since": modified})[0] == 304
    assert fetch(srv, "/static/css/a.css", {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"})[0] == 200
    assert fetch(srv, "/static/css/a.css", {"If-Modified-Since": "garbage"})[0] == 200
    # If-None-Match takes precedence: a non-matching tag means 200 whatever the date says.
    both = {"If-None-Match": '"other"', "If-Modified-Since": modified}
    assert fetch(srv, "/static/css/a.css", both)[0] == 200


def test_a_changed_file_gets_a_new_etag(serve, site):
    srv = serve(APP, "--static", f"/static={site}")
    path = site / "css" / "a.css"
    _, h1, _ = fetch(srv, "/static/css/a.css")
    # Same length, new content and a new modification time.
    path.write_bytes(CSS.replace(b"red", b"tan"))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    code, h2, body = fetch(srv, "/static/css/a.css", {"If-None-Match": h1["etag"]})
    assert code == 200
    assert body == CSS.replace(b"red", b"tan")
    assert h2["etag"] != h1["etag"]


def test_a_deleted_file_is_404(serve, site):
    srv = serve(APP, "--static", f"/static={site}")
    assert fetch(srv, "/static/css/a.css")[0] == 200
    (site / "css" / "a.css").unlink()
    code, h, body = fetch(srv, "/static/css/a.css")
    assert (code, body) == (404, b"Not Found\n")
    assert h["content-type"] == "text/plain; charset=utf-8"


def test_a_remembered_file_shows_its_changes_new_siblings_and_deletion(serve, site):
    """A worker remembers the files of a directory that has not changed for a while (its
    mtime is put an hour back here, each time before the file is asked for): what changes
    after that still shows on the next request."""
    css = site / "css"

    def settle() -> None:
        past = time.time() - 3600
        os.utime(css, (past, past))

    srv = serve(APP, "--static", f"/static={site}")
    settle()
    gzip = {"Accept-Encoding": "gzip"}
    _, first, _ = fetch(srv, "/static/css/a.css", gzip)
    assert "vary" not in first
    assert fetch(srv, "/static/css/a.css", gzip)[1]["etag"] == first["etag"]
    (css / "a.css.gz").write_bytes(b"gzipped")
    code, h, body = fetch(srv, "/static/css/a.css", gzip)
    assert (code, body, h["content-encoding"], h["vary"]) == (200, b"gzipped", "gzip", "Accept-Encoding")
    settle()
    assert fetch(srv, "/static/css/a.css")[::2] == (200, CSS)
    path = css / "a.css"
    path.write_bytes(CSS.replace(b"red", b"tan"))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    code, h, body = fetch(srv, "/static/css/a.css", {"If-None-Match": first["etag"]})
    assert (code, body) == (200, CSS.replace(b"red", b"tan"))
    assert h["etag"] != first["etag"]
    settle()
    assert fetch(srv, "/static/css/a.css")[0] == 200
    path.unlink()
    assert fetch(srv, "/static/css/a.css")[0] == 404


def test_single_ranges(serve, site):
    data = bytes(range(256)) * 400  # 102400 bytes: the large-file path (sendfile)
    (site / "big.bin").write_bytes(data)
    srv = serve(APP, "--static", f"/static={site}")
    n = len(data)
    cases = [
        ("bytes=0-0", 0, 0),
        ("bytes=10-19", 10, 19),
        ("bytes=100000-", 100000, n - 1),
        ("bytes=-100", n - 100, n - 1),
        ("bytes=5-999999", 5, n - 1),
        ("bytes=1000-60000", 1000, 60000),
    ]
    for spec, first, last in cases:
        code, h, body = fetch(srv, "/static/big.bin", {"Range": spec})
        assert code == 206, spec
        assert h["content-range"] == f"bytes {first}-{last}/{n}", spec
        assert h["content-length"] == str(last - first + 1)
        assert body == data[first : last + 1], spec
    for spec in ("bytes=102400-", "bytes=999999-1000000", "bytes=-0"):
        code, h, body = fetch(srv, "/static/big.bin", {"Range": spec})
        assert (code, body) == (416, b""), spec
        assert h["content-range"] == f"bytes */{n}"
    # Several ranges, another unit, or nonsense: the whole file.
    for spec in ("bytes=0-1,5-6", "items=0-5", "bytes=5-2", "bytes=x-y"):
        code, h, body = fetch(srv, "/static/big.bin", {"Range": spec})
        assert (code, len(body)) == (200, n), spec
        assert "content-range" not in h
    # HEAD ignores Range (GET is the only method range handling is defined for).
    code, h, _ = fetch(srv, "/static/big.bin", {"Range": "bytes=0-9"}, method="HEAD")
    assert (code, h["content-length"]) == (200, str(n))


def test_if_range_with_an_etag_or_a_date(serve, site):
    srv = serve(APP, "--static", f"/static={site}")
    _, h, _ = fetch(srv, "/static/css/a.css")
    etag, modified = h["etag"], h["last-modified"]
    ranged = {"Range": "bytes=0-3"}
    assert fetch(srv, "/static/css/a.css", {**ranged, "If-Range": etag})[:3:2] == (206, CSS[:4])
    assert fetch(srv, "/static/css/a.css", {**ranged, "If-Range": modified})[0] == 206
    assert fetch(srv, "/static/css/a.css", {**ranged, "If-Range": '"stale"'})[:3:2] == (200, CSS)
    assert fetch(srv, "/static/css/a.css", {**ranged, "If-Range": f"W/{etag}"})[0] == 200
    old = "Sat, 01 Jan 2000 00:00:00 GMT"
    assert fetch(srv, "/static/css/a.css", {**ranged, "If-Range": old})[0] == 200


def test_a_sparse_file_past_4_gib_with_a_range_past_2_to_the_32(serve, site):
    size = (5 << 30) + 7
    path = site / "huge.bin"
    with open(path, "wb") as f:
        f.truncate(size)  # sparse: no disk used
        f.seek((1 << 32) + 10)
        f.write(b"marker")
    srv = serve(APP, "--static", f"/static={site}")
    code, h, _ = fetch(srv, "/static/huge.bin", method="HEAD")
    assert (code, h["content-length"]) == (200, str(size))
    first = (1 << 32) + 8
    code, h, body = fetch(srv, "/static/huge.bin", {"Range": f"bytes={first}-{first + 9}"})
    assert code == 206
    assert h["content-range"] == f"bytes {first}-{first + 9}/{size}"
    assert body == b"\0\0marker\0\0"
    code, h, body = fetch(srv, "/static/huge.bin", {"Range": "bytes=-3"})
    assert (code, h["content-range"], body) == (206, f"bytes {size - 3}-{size - 1}/{size}", b"\0\0\0")
    code, h, _ = fetch(srv, "/static/huge.bin", {"Range": f"bytes={size}-"})
    assert (code, h["content-range"]) == (416, f"bytes */{size}")


@pytest.mark.parametrize(
    "target",
    [
        "/static/../secret.txt",
        "/static/css/../../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E/secret.txt",
        "/static/.%2e/secret.txt",
        "/static/..%2fsecret.txt",
        "/static/css%2f..%2f..%2fsecret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static/..\\secret.txt",
        "/static/..%5csecret.txt",
        "/static/css/a.css%00.png",
        "/static/css/a%zz.css",
        "/static/./css/a.css",
    ],
)
@pytest.mark.parametrize("fallthrough", [False, True])
def test_traversal_attempts_get_404(serve, site, target, fallthrough):
    args = ["--static", f"/static={site}"] + (["--static-fallthrough"] if fallthrough else [])
    srv = serve(APP, *args)
    code, _, body = fetch(srv, target)
    assert code == 404
    assert b"secret" not in body


def test_symlinks_inside_are_followed_and_those_leading_out_get_404(serve, site):
    outside = site.parent
    (site / "in.css").symlink_to("css/a.css")
    (site / "cssdir").symlink_to("css")
    (site / "out.txt").symlink_to(outside / "secret.txt")
    (site / "up").symlink_to("..")
    srv = serve(APP, "--static", f"/static={site}")
    assert fetch(srv, "/static/in.css")[::2] == (200, CSS)
    assert fetch(srv, "/static/cssdir/a.css")[::2] == (200, CSS)
    assert fetch(srv, "/static/out.txt")[0] == 404
    assert fetch(srv, "/static/up/secret.txt")[0] == 404
    # Even with --static-fallthrough, a way out is refused rather than passed on.
    srv = serve(APP, "--static", f"/static={site}", "--static-fallthrough")
    assert fetch(srv, "/static/out.txt")[0] == 404
    srv = serve(APP, "--static", f"/static={site}", "--static-follow-symlinks")
    assert fetch(srv, "/static/out.txt")[::2] == (200, b"secret\n")
    assert fetch(srv, "/static/up/secret.txt")[::2] == (200, b"secret\n")


def test_directories_are_never_listed_and_serve_index_html_with_static_index(serve, site):
    (site / "docs").mkdir()
    (site / "docs" / "index.html").write_bytes(b"<h1>docs</h1>")
    srv = serve(APP, "--static", f"/static={site}")
    for target in ("/static", "/static/", "/static/css/", "/static/docs/"):
        assert fetch(srv, target)[0] == 404, target
    srv = serve(APP, "--static", f"/static={site}", "--static-index")
    code, h, body = fetch(srv, "/static/docs/")
    assert (code, body, h["content-type"]) == (200, b"<h1>docs</h1>", "text/html; charset=utf-8")
    code, h, _ = fetch(srv, "/static/docs?x=1")
    assert (code, h["location"]) == (301, "/static/docs/?x=1")
    assert fetch(srv, "/static/css/")[0] == 404  # no index.html there, no listing
    assert fetch(srv, "/static/css/a.css/")[0] == 404


def test_missing_files_fall_through_to_the_app_only_with_static_fallthrough(serve, site):
    srv = serve(APP, "--static", f"/static={site}")
    assert fetch(srv, "/static/nope.css")[0] == 404
    assert fetch(srv, "/elsewhere")[0] == 200  # outside the prefix: the app's
    srv = serve(APP, "--static", f"/static={site}", "--static-fallthrough")
    code, _, body = fetch(srv, "/static/nope.css")
    assert code == 200
    assert app_path(body) == "/static/nope.css"
    # Another method: to the app when nothing is there, 405 when a file is.
    assert fetch(srv, "/static/nope.css", method="POST")[0] == 200
    assert fetch(srv, "/static/css/a.css", method="POST")[0] == 405


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_get_405_with_allow(serve, site, method):
    srv = serve(APP, "--static", f"/static={site}")
    code, h, _ = fetch(srv, "/static/css/a.css", method=method)
    assert code == 405
    assert h["allow"] == "GET, HEAD"


def test_precompressed_siblings_chosen_by_accept_encoding(serve, site):
    js = site / "app.js"
    js.write_bytes(b"plain")
    (site / "app.js.br").write_bytes(b"brotli")
    (site / "app.js.gz").write_bytes(b"gzip")
    (site / "app.js.zst").write_bytes(b"zstandard")
    (site / "only.css").write_bytes(b"plain css")
    (site / "only.css.gz").write_bytes(b"gzipped css")
    srv = serve(APP, "--static", f"/static={site}")
    cases = [
        ("gzip, deflate, br, zstd", "br", b"brotli"),
        ("gzip, zstd", "zstd", b"zstandard"),
        ("gzip", "gzip", b"gzip"),
        ("br;q=0, gzip", "gzip", b"gzip"),
        ("gzip;q=1, br;q=0.5", "gzip", b"gzip"),
        ("*", "br", b"brotli"),
        ("identity", None, b"plain"),
        ("br;q=0, zstd;q=0, gzip;q=0", None, b"plain"),
        (None, None, b"plain"),
    ]
    etags = set()
    for accept, coding, body in cases:
        code, h, got = fetch(srv, "/static/app.js", {"Accept-Encoding": accept} if accept else {})
        assert (code, got) == (200, body), accept
        assert h.get("content-encoding") == coding, accept
        assert h["vary"] == "Accept-Encoding", accept
        assert h["content-type"] == "text/javascript; charset=utf-8"
        assert h["content-length"] == str(len(body))
        etags.add((coding, h["etag"]))
    assert len({e for _, e in etags}) == 4  # each representation has its own tag
    code, h, got = fetch(srv, "/static/only.css", {"Accept-Encoding": "br, zstd"})
    assert (code, got, h.get("content-encoding"), h["vary"]) == (200, b"plain css", None, "Accept-Encoding")
    code, h, got = fetch(srv, "/static/only.css", {"Accept-Encoding": "br, gzip"})
    assert (got, h["content-encoding"]) == (b"gzipped css", "gzip")


def test_max_age_and_immutable_hashed_names(serve, site):
    (site / "app.0123abcd.css").write_bytes(b"hashed")
    (site / "base.5af66c1b1797.css").write_bytes(b"django")
    (site / "jquery.min.js").write_bytes(b"not hashed")
    immutable = "public, max-age=31536000, immutable"
    srv = serve(APP, "--static", f"/static={site}")
    assert "cache-control" not in fetch(srv, "/static/jquery.min.js")[1]
    assert fetch(srv, "/static/app.0123abcd.css")[1]["cache-control"] == immutable
    srv = serve(APP, "--static", f"/static={site}", "--static-max-age", "600")
    assert fetch(srv, "/static/jquery.min.js")[1]["cache-control"] == "public, max-age=600"
    assert fetch(srv, "/static/css/a.css")[1]["cache-control"] == "public, max-age=600"
    assert fetch(srv, "/static/base.5af66c1b1797.css")[1]["cache-control"] == immutable
    code, h, _ = fetch(srv, "/static/base.5af66c1b1797.css", {"If-None-Match": "*"})
    assert (code, h["cache-control"]) == (304, immutable)


def test_large_file_is_sent_whole(serve, site):
    data = os.urandom(3 << 20)
    (site / "big.bin").write_bytes(data)
    srv = serve(APP, "--static", f"/static={site}")
    code, h, body = fetch(srv, "/static/big.bin")
    assert (code, h["content-length"]) == (200, str(len(data)))
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()


def test_pipelined_static_and_app_requests_on_one_connection(serve_both, site):
    srv = serve_both(APP, "--static", f"/static={site}")
    with srv.connect() as s:
        s.sendall(
            b"GET /static/css/a.css HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /app/1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /static/missing HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /static/css/a.css HTTP/1.1\r\nHost: x\r\nIf-None-Match: *\r\n\r\n"
            b"GET /app/2 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /static/css/a.css HTTP/1.1\r\nHost: x\r\nRange: bytes=0-3\r\n\r\n"
        )
        buf = bytearray()
        got = [read_response(s, buf) for _ in range(6)]
    codes = [int(status.split()[1]) for status, _, _ in got]
    assert codes == [200, 200, 404, 304, 200, 206]
    assert got[0][2] == CSS
    assert json.loads(got[1][2])["PATH_INFO"] == "/app/1"
    assert json.loads(got[4][2])["PATH_INFO"] == "/app/2"
    assert got[5][2] == CSS[:4]
    assert buf == b""


def test_a_request_body_to_a_static_file_closes_the_connection(serve, site):
    srv = serve(APP, "--static", f"/static={site}")
    with srv.connect() as s:
        s.sendall(b"GET /static/css/a.css HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        raw = read_all(s)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nConnection: close" in head
    assert body == CSS


def test_http10_keep_alive(serve, site):
    srv = serve(APP, "--static", f"/static={site}")
    with srv.connect() as s:
        s.sendall(b"GET /static/css/a.css HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, h, body = read_response(s)
        assert h["connection"] == "keep-alive"
        s.sendall(b"GET /static/css/a.css HTTP/1.0\r\n\r\n")
        status, h, body = read_response(s)
        assert body == CSS
        assert s.recv(10) == b""  # 1.0 without keep-alive: closed


def test_longest_prefix_wins(serve, site, tmp_path):
    other = tmp_path / "other"
    (other / "css").mkdir(parents=True)
    (other / "css" / "a.css").write_bytes(b"from other")
    srv = serve(APP, "--static", f"/static={site}", "--static", f"/static/css={other / 'css'}")
    assert fetch(srv, "/static/css/a.css")[2] == b"from other"
    assert app_path(fetch(srv, "/staticx/css/a.css")[2]) == "/staticx/css/a.css"  # the app's


def test_access_log_has_a_line_for_static_answers(serve, site):
    srv = serve(APP, "--static", f"/static={site}", "--access-logfile", "-")
    fetch(srv, "/static/css/a.css", {"User-Agent": "static-test"})
    fetch(srv, "/static/nothing", method="HEAD")
    srv.stop()
    out = "".join(srv.stdout)
    assert f'"GET /static/css/a.css HTTP/1.1" 200 {len(CSS)} "-" "static-test"' in out
    assert '"HEAD /static/nothing HTTP/1.1" 404 -' in out


def test_options_from_a_config_file(serve, site, tmp_path):
    conf = tmp_path / "ferrule.conf.py"
    (site / "docs").mkdir()
    (site / "docs" / "index.html").write_bytes(b"index")
    conf.write_text(f"static = [{f'/s={site}'!r}]\nstatic_max_age = 60\nstatic_index = True\n")
    srv = serve(APP, "-c", str(conf))
    code, h, body = fetch(srv, "/s/docs/")
    assert (code, body, h["cache-control"]) == (200, b"index", "public, max-age=60")


@pytest.mark.parametrize(
    "value,message",
    [
        ("static", "give PREFIX=DIR"),
        ("static=/tmp", "the prefix must start with '/'"),
        ("/s=/nonexistent/dir", "No such file or directory"),
        (f"/s={APPS / 'basic.py'}", "not a directory"),
    ],
)
def test_bad_static_values_stop_with_a_message(value, message):
    r = subprocess.run(
        [sys.executable, "-m", "ferrule", "-b", "127.0.0.1:0", "--static", value, APP],
        cwd=APPS,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode != 0
    assert message in r.stderr
    assert f"--static {value}" in r.stderr


def test_static_over_https(serve, site, tmp_path):
    certs = write_leaf(trustme.CA(), tmp_path)
    data = os.urandom(200_000)  # past the one-write size: sendfile into the TLS pump
    (site / "big.bin").write_bytes(data)
    srv = serve(APP, "--static", f"/static={site}", *certs.args())
    with requests.Session() as s:
        r = s.get(f"{srv.url}/static/big.bin", verify=str(certs.ca))
        assert (r.status_code, r.content) == (200, data)
        r = s.get(f"{srv.url}/static/css/a.css", headers={"Range": "bytes=0-3"}, verify=str(certs.ca))
        assert (r.status_code, r.content) == (206, CSS[:4])
        assert s.get(f"{srv.url}/app", verify=str(certs.ca)).json()["PATH_INFO"] == "/app"


def test_help_names_each_static_option_with_its_default():
    r = subprocess.run(
        [sys.executable, "-m", "ferrule", "--help"], capture_output=True, text=True, timeout=30
    )
    # One block per option: its line (indented less than the descriptions) and its text.
    blocks = [" ".join(b.split()) for b in re.split(r"\n {2,6}(?=-)", r.stdout)]
    for option, default in [
        ("--static <PREFIX=DIR>", "[default: none]"),
        ("--static-max-age <SECONDS>", "[default: 0]"),
        ("--static-index", "[default: off"),
        ("--static-follow-symlinks", "[default: off"),
        ("--static-fallthrough", "[default: off"),
    ]:
        block = next(b for b in blocks if b.startswith(option + " "))
        assert default in block, option
