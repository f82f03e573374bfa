"""`--mount PREFIX=APP`: several apps in one server, each at a URL prefix (as mod_wsgi's
WSGIScriptAlias and uWSGI's --mount): the longest prefix on a segment boundary wins,
SCRIPT_NAME gets the prefix (after --root-path) and PATH_INFO the rest."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import APPS, Server

MOUNTS = ("--mount", "/api=mounted:api", "--mount", "/api/v2=mounted:v2", "--mount", "/=mounted:site")

# path -> (app, SCRIPT_NAME, PATH_INFO) with no --root-path.
CASES = {
    "/": ("site", "", "/"),
    "/api": ("api", "/api", ""),
    "/api/": ("api", "/api", "/"),
    "/api/x": ("api", "/api", "/x"),
    "/apix": ("site", "", "/apix"),
    "/api/v2": ("v2", "/api/v2", ""),
    "/api/v2/": ("v2", "/api/v2", "/"),
    "/api/v2/y": ("v2", "/api/v2", "/y"),
    "/api/v2x": ("api", "/api", "/v2x"),
    "/other/page": ("site", "", "/other/page"),
    "/api/caf%C3%A9": ("api", "/api", "/caf\u00c3\u00a9"),
}


def seen(base: str, path: str) -> tuple[str, str, str]:
    r = requests.get(base + path, timeout=10)
    assert r.status_code == 200, (path, r.status_code, r.text)
    j = r.json()
    return j["app"], j["script_name"], j["path_info"]


def test_each_boundary_goes_to_the_longest_matching_prefix(serve_both):
    srv = serve_both(None, *MOUNTS)
    for path, want in CASES.items():
        assert seen(srv.url, path) == want, path
    r = requests.get(srv.url + "/api/x?a=1", timeout=10)
    assert r.json()["query"] == "a=1"


@pytest.mark.parametrize("root", ["/site", "/site/"])
def test_root_path_comes_first_in_script_name(serve, root):
    srv = serve(None, "--root-path", root, *MOUNTS)
    for path, (app, script, info) in CASES.items():
        assert seen(srv.url, "/site" + path) == (app, "/site" + script, info), path
    assert seen(srv.url, "/site") == ("site", "/site", "")
    assert requests.get(srv.url + "/api/x", timeout=10).status_code == 404
    assert requests.get(srv.url + "/sitex", timeout=10).status_code == 404


def test_a_path_no_mount_matches_gets_404(serve):
    srv = serve(None, "--mount", "/api=mounted:api")
    assert seen(srv.url, "/api/x") == ("api", "/api", "/x")
    for path in ("/", "/apix", "/other"):
        assert requests.get(srv.url + path, timeout=10).status_code == 404, path


def test_app_beside_mounts_is_the_mount_at_the_root(serve):
    srv = serve("mounted:site", "--mount", "/api=mounted:api")
    assert seen(srv.url, "/api/x") == ("api", "/api", "/x")
    assert seen(srv.url, "/x") == ("site", "", "/x")


def test_each_app_is_imported_once_per_worker(serve):
    srv = serve(
        None,
        "--mount",
        '/a=mounted:make("a")',
        "--mount",
        '/b=mounted:make("a")',
        "--mount",
        '/=mounted:make("r")',
    )
    made = {requests.get(srv.url + p, timeout=10).json()["made"] for p in ("/a", "/b", "/", "/a/x")}
    # Two distinct specs: two factory calls, whichever app answers.
    assert made == {2}


def test_mounts_from_a_toml_config_file(serve, tmp_path):
    conf = tmp_path / "ferrule.toml"
    conf.write_text('mount = ["/api=mounted:api", "/=mounted:site"]\nroot_path = "/r"\n')
    srv = serve(None, "-c", str(conf))
    assert seen(srv.url, "/r/api/x") == ("api", "/r/api", "/x")
    assert seen(srv.url, "/r/x") == ("site", "/r", "/x")


def test_mounts_over_a_uwsgi_socket(serve):
    srv = serve(None, "-b", "uwsgi://127.0.0.1:0", *MOUNTS)
    assert [s for s, _ in srv.binds] == ["http", "uwsgi"]
    # Over the gateways the bridge chooses the app just as over HTTP (nginx below checks it
    # end to end); here a uwsgi packet made by hand.
    host, port = srv.binds[1][1].rsplit(":", 1)

    def var(k: bytes, v: bytes) -> bytes:
        return struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v

    body = b"".join(
        var(k, v)
        for k, v in [
            (b"REQUEST_METHOD", b"GET"),
            (b"REQUEST_URI", b"/api/v2/y"),
            (b"PATH_INFO", b"/api/v2/y"),
            (b"QUERY_STRING", b""),
            (b"SERVER_NAME", b"x"),
            (b"SERVER_PORT", b"80"),
            (b"SERVER_PROTOCOL", b"HTTP/1.0"),
        ]
    )
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack("<BHB", 0, len(body), 0) + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert b'"app": "v2"' in data
    assert b'"script_name": "/api/v2"' in data
    assert b'"path_info": "/y"' in data


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mount", "api=mounted:api"], "a prefix must start with '/'"),
        (["--mount", "/api"], "give PREFIX=APP"),
        (["--mount", "/api=mounted:api", "--mount", "/api/=mounted:v2"], "two apps at"),
        (["--mount", "/=mounted:api", "mounted:site"], "already the app at /"),
    ],
)
def test_bad_mounts_are_refused_with_the_reason(args, message):
    r = subprocess.run(
        [sys.executable, "-m", "ferrule", *args], cwd=APPS, capture_output=True, text=True, timeout=30
    )
    assert r.returncode != 0
    assert message in r.stderr


NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed (make test installs it)")
@pytest.mark.timeout(60)
def test_mounts_behind_nginx_over_uwsgi(tmp_path):
    from test_nginx import MAIN, free_port

    ferrule = Server(["-b", "127.0.0.1:0", "-b", "uwsgi://127.0.0.1:0", "--root-path", "/site", *MOUNTS])
    nginx = None
    try:
        port = free_port()
        (tmp_path / "servers").mkdir()
        shutil.copy("/etc/nginx/uwsgi_params", tmp_path / "servers" / "uwsgi_params")
        (tmp_path / "servers" / "site.conf").write_text(
            f"server {{ listen 127.0.0.1:{port}; location / {{ include {tmp_path}/servers/uwsgi_params;"
            f" uwsgi_pass {ferrule.binds[1][1]}; }} }}\n"
        )
        (tmp_path / "nginx.conf").write_text(MAIN.format(tmp=tmp_path))
        nginx = subprocess.Popen(
            [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], stderr=subprocess.PIPE
        )
        base = f"http://127.0.0.1:{port}"
        end = time.monotonic() + 15
        while True:
            try:
                requests.get(base + "/", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < end and nginx.poll() is None, "nginx did not start"
                time.sleep(0.05)
        for path, (app, script, info) in CASES.items():
            if path == "/":
                continue
            assert seen(base, "/site" + path) == (app, "/site" + script, info), path
        assert requests.get(base + "/api/x", timeout=10).status_code == 404
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(10)
        ferrule.stop()
