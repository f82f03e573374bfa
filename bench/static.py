"""Static files and compression side by side (issue 18), one worker each, the server on CPU 0
and wrk on CPU 1, rounds alternating the servers, medians.

Rows:
- static: a 4 KiB and a 1 MiB file under /static/, served by Ferrule's `--static`, Granian's
  `--static-path-mount` and nginx (one worker process, sendfile on), `wrk -c 16`.
- compress: a 64 KiB JSON body gzip-compressed: Ferrule's `--compress` against the same app
  wrapped in a Python gzip middleware (the WhiteNoise / flask-compress way) on Ferrule and on
  gunicorn.

  python static.py --rounds 3 --duration 5
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import PINNED, write_fragment

BIN = Path(os.sys.executable).parent

APP = """
import gzip, json
ITEMS = [{"id": i, "name": "item %d" % i, "tags": ["a", "b", "c"]} for i in range(1100)]
BODY = json.dumps(ITEMS).encode()[:65536]
def plain(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]
def gzipped(environ, start_response):
    # What a Python compression middleware does: compress the whole body in the app.
    if "gzip" not in environ.get("HTTP_ACCEPT_ENCODING", ""):
        return plain(environ, start_response)
    body = gzip.compress(BODY, 6)
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Encoding", "gzip"),
                              ("Vary", "Accept-Encoding"), ("Content-Length", str(len(body)))])
    return [body]
"""

NGINX = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{{port}};
        location /static/ {{ alias {root}/; }}
    }}
}}
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(port: int, path: str, proc: subprocess.Popen, timeout: float = 30) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            return False
        out = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}{path}"],
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        if out == "200":
            return True
        time.sleep(0.1)
    return False


def wrk(port: int, path: str, duration: int, headers: list[str]) -> float:
    pin = ["taskset", "-c", "1"] if PINNED else []
    hdr = [a for h in headers for a in ("-H", h)]
    out = subprocess.run(
        [*pin, "wrk", "-t1", "-c16", f"-d{duration}s", *hdr, f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m or "Non-2xx" in out:
        raise SystemExit(f"wrk failed on {path}:\n{out}")
    return float(m[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="staticbench-"))
    tmp.chmod(0o755)  # nginx workers run as another user when started by root
    root = tmp / "files"
    root.mkdir()
    (root / "4k.bin").write_bytes(os.urandom(4096))
    (root / "1m.bin").write_bytes(os.urandom(1 << 20))
    (tmp / "bapp.py").write_text(APP)
    (tmp / "nginx.conf").write_text(NGINX.format(tmp=tmp, root=root))
    for d in ("body", "proxy", "fcgi", "uwsgi", "scgi"):
        (tmp / d).mkdir()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    ferrule = f"{BIN}/ferrule --bind 127.0.0.1:{{port}} --workers 1 --threads 1"
    servers = {
        "static": {
            "ferrule": f"{ferrule} --static /static={root} bapp:plain",
            "granian": f"{BIN}/granian --interface wsgi --workers 1 --blocking-threads 1 --host 127.0.0.1 "
            f"--port {{port}} --static-path-route /static --static-path-mount {root} bapp:plain",
            "nginx": None,  # made below, with its port
        },
        "compress": {
            "ferrule --compress": f"{ferrule} --compress bapp:plain",
            "ferrule + Python gzip": f"{ferrule} bapp:gzipped",
            "gunicorn + Python gzip": f"{BIN}/gunicorn --workers 1 --bind 127.0.0.1:{{port}} bapp:gzipped",
        },
    }
    rows = [("static", "/static/4k.bin"), ("static", "/static/1m.bin"), ("compress", "/")]
    results: dict[tuple[str, str], list[float]] = {}
    env = dict(os.environ, PYTHONPATH=str(tmp))
    for _ in range(args.rounds):
        for group, path in rows:
            for name, cmd in servers[group].items():
                port = free_port()
                if name == "nginx":
                    conf = tmp / f"nginx-{port}.conf"
                    conf.write_text((tmp / "nginx.conf").read_text().replace("{port}", str(port)))
                    cmd = f"{nginx} -c {conf} -p {tmp}"
                cmd = cmd.format(port=port)
                if PINNED:
                    cmd = "exec taskset -c 0 " + cmd
                proc = subprocess.Popen(
                    cmd, shell=True, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )  # fmt: skip
                try:
                    if not ready(port, path, proc):
                        raise SystemExit(f"{name} did not start: {cmd}")
                    headers = ["Accept-Encoding: gzip"] if group == "compress" else []
                    results.setdefault((name, path), []).append(wrk(port, path, args.duration, headers))
                finally:
                    os.killpg(proc.pid, 15)
                    proc.wait(timeout=15)
    lines = []
    for group, path in rows:
        names = list(servers[group])
        base = statistics.median(results[(names[0], path)])
        cells = []
        for n in names:
            rate = statistics.median(results[(n, path)])
            cells.append(f"{n}: {rate:,.0f} ({rate / base:.2f})")
        lines.append(f"| {group} `{path}` | " + " | ".join(cells) + " |")
    body = (
        "| row | req/s (ratio to the first) |\n|---|---|\n" + "\n".join(lines) + "\n\n"
        f"One worker each, `wrk -t1 -c16`, medians of {args.rounds} alternating rounds of {args.duration} s; "
        "compress rows send `Accept-Encoding: gzip` and get a 64 KiB JSON body compressed."
    )
    write_fragment("static", "Static files and compression", body)


if __name__ == "__main__":
    main()
