"""nginx in front of Ferrule over uwsgi, SCGI and FastCGI (TCP and Unix sockets), with the
configs in examples/nginx/: each request gives what it gives over direct HTTP."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import Server

EXAMPLES = Path(__file__).parent.parent / "examples" / "nginx"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PROTOCOLS = ["uwsgi", "scgi", "fastcgi"]
KINDS = [(p, k) for p in PROTOCOLS for k in ("tcp", "unix")]

pytestmark = [
    pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed (make test installs it)"),
    pytest.mark.timeout(120),
]

MAIN = """
worker_processes 1;
daemon off;
user root;
error_log {tmp}/error.log info;
pid {tmp}/nginx.pid;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    fastcgi_temp_path {tmp}/fastcgi;
    include {tmp}/servers/*.conf;
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Front:
    """Ferrule listening on HTTP and on every front protocol, and nginx before each of them."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        binds = ["-b", "127.0.0.1:0"]
        for proto in PROTOCOLS:
            binds += ["-b", f"{proto}://127.0.0.1:0", "-b", f"{proto}://unix:{tmp}/{proto}.sock"]
        self.ferrule = Server([*binds, "-w", "2", "gateway:app"])
        self.direct = self.ferrule.url
        upstream = {}
        for scheme, addr in self.ferrule.binds[1:]:
            kind = "unix" if addr.startswith("unix:") else "tcp"
            upstream[(scheme, kind)] = addr
        (tmp / "servers").mkdir()
        for name in ("uwsgi_params", "scgi_params", "fastcgi_params"):
            shutil.copy(f"/etc/nginx/{name}", tmp / "servers" / name)
        self.ports: dict[tuple[str, str], int] = {}
        for proto, kind in KINDS:
            port = free_port()
            self.ports[(proto, kind)] = port
            conf = (EXAMPLES / f"{proto}.conf").read_text()
            conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
            conf = conf.replace(f"unix:/run/ferrule/{proto}.sock", upstream[(proto, kind)])
            conf = conf.replace("ferrule_fastcgi", f"ferrule_fastcgi_{kind}")
            conf = conf.replace("include ", f"include {tmp}/servers/")
            (tmp / "servers" / f"{proto}-{kind}.conf").write_text(conf)
        (tmp / "nginx.conf").write_text(MAIN.format(tmp=tmp))
        self.nginx = subprocess.Popen(
            [NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for port in self.ports.values():
            self._wait(port)

    def _wait(self, port: int) -> None:
        end = time.monotonic() + 15
        while time.monotonic() < end:
            if self.nginx.poll() is not None:
                raise AssertionError(f"nginx exited: {self.nginx.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"nginx is not listening on {port}")

    def url(self, proto: str, kind: str) -> str:
        return f"http://127.0.0.1:{self.ports[(proto, kind)]}"

    def stop(self) -> None:
        self.nginx.terminate()
        self.nginx.wait(10)
        self.ferrule.stop()


@pytest.fixture(scope="module")
def front(tmp_path_factory) -> Iterator[Front]:
    f = Front(tmp_path_factory.mktemp("nginx", numbered=True))
    yield f
    f.stop()


BIG = bytes(range(256)) * (20 * 4096)  # 20 MiB


def chunks():
    for i in range(0, len(BIG), 1 << 20):
        yield BIG[i : i + (1 << 20)]


REQUESTS = {
    "get": dict(method="GET", path="/hello/world?a=1&b=two"),
    "quoted_path": dict(method="GET", path="/files/a%2Fb/caf%C3%A9?q=%2F%E2%82%AC&x=%20"),
    "post_form": dict(
        method="POST",
        path="/form",
        data=b"name=ferrule&kind=server",
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Custom": "custom value"},
    ),
    "put_json": dict(
        method="PUT",
        path="/api/item/7",
        data=b'{"a": [1, 2, 3]}',
        headers={"Content-Type": "application/json"},
    ),
    "delete": dict(method="DELETE", path="/api/item/7"),
    "upload_20mb": dict(
        method="POST", path="/upload", data=BIG, headers={"Content-Type": "application/octet-stream"}
    ),
    "head": dict(method="HEAD", path="/head"),
    "not_modified": dict(method="GET", path="/notmod"),
    "error": dict(method="GET", path="/error"),
    "stream": dict(method="GET", path="/stream"),
    "file": dict(method="GET", path="/file"),
}


def fetch(base: str, spec: dict) -> requests.Response:
    return requests.request(
        spec["method"], base + spec["path"], data=spec.get("data"), headers=spec.get("headers"), timeout=60
    )


def comparable(r: requests.Response) -> dict:
    out = {
        "status": r.status_code,
        "x_app": r.headers.get("X-App"),
        "cookie": r.cookies.get("seen"),
        "etag": r.headers.get("ETag"),
        "body_sha256": hashlib.sha256(r.content).hexdigest(),
        "body_len": len(r.content),
    }
    if r.headers.get("Content-Type") == "application/json" and r.content:
        out["seen"] = r.json()
        out["seen"].pop("scheme")
    return out


@pytest.mark.parametrize("name", REQUESTS)
@pytest.mark.parametrize(("proto", "kind"), KINDS)
def test_request_through_nginx_matches_direct_http(front, proto, kind, name):
    spec = REQUESTS[name]
    direct = comparable(fetch(front.direct, spec))
    proxied = comparable(fetch(front.url(proto, kind), spec))
    if name == "error":
        # The app's error is a 500 from Ferrule (its body is the server's, not nginx's 502).
        assert direct["status"] == proxied["status"] == 500
        return
    if proto == "scgi" and direct.get("seen", {}).get("content_length") == "0":
        # SCGI always carries CONTENT_LENGTH ("0" without a body), so an explicit
        # `Content-Length: 0` cannot be told from none: the app sees it absent.
        direct["seen"]["content_length"] = None
        direct["body_sha256"] = proxied["body_sha256"]
        direct["body_len"] = proxied["body_len"]
    assert proxied == direct


@pytest.mark.parametrize(("proto", "kind"), KINDS)
def test_chunked_upload_through_nginx_reaches_the_app_whole(front, proto, kind):
    r = requests.post(front.url(proto, kind) + "/chunked", data=chunks(), timeout=60)
    seen = r.json()
    assert r.status_code == 200
    assert seen["body_len"] == len(BIG)
    assert seen["body_sha256"] == hashlib.sha256(BIG).hexdigest()
    # nginx buffers a chunked body and passes its length on.
    assert seen["content_length"] == str(len(BIG))


def tcp_states(port: int) -> dict[str, int]:
    """Counts of the TCP states of connections with 127.0.0.1:`port` at either end (a
    connection's TIME_WAIT lies on the side that closed it first)."""
    names = {"01": "established", "06": "time_wait"}
    counts = {"established": 0, "time_wait": 0}
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            ends = {int(fields[i].rsplit(":", 1)[1], 16) for i in (1, 2)}
            if port in ends and fields[3] in names:
                counts[names[fields[3]]] += 1
    return counts


def test_fastcgi_connections_are_reused(front):
    port = int(front.ferrule.binds[[s for s, _ in front.ferrule.binds].index("fastcgi")][1].rsplit(":", 1)[1])
    before = tcp_states(port)
    complaints = front.ferrule.text.count("FastCGI")
    with requests.Session() as s:
        for _ in range(50):
            assert s.get(front.url("fastcgi", "tcp") + "/again").status_code == 200
    after = tcp_states(port)
    # nginx keeps its connections to Ferrule open: 50 requests closed (almost) none of them,
    # whichever side would have closed.
    assert after["time_wait"] - before["time_wait"] < 5
    assert front.ferrule.text.count("FastCGI") == complaints  # no protocol complaint logged
    log = (front.tmp / "error.log").read_text()
    assert "upstream prematurely closed" not in log
    assert "upstream sent" not in log
