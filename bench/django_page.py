"""Issue 20's figures: a Django page served threaded and inline, beside the threaded peers.

A Django project is written into a temporary directory (sqlite, 50 rows, one ORM query and a
templated page of about 6.5 KB at `/items/`, a 2-byte `/plain/` view, Django's usual
middleware) and served by one worker of each server, pinned to CPU 0; `wrk -t1 -c32` on CPU 1
loads one path at a time. Servers alternate inside each round; the table gives medians of the
rounds: requests/s, p50 and p99, the server's context switches per request (voluntary plus
involuntary, summed over the threads of all its processes from /proc/PID/task/*/status, before
and after the load, divided by the requests wrk counted) and its CPU time per request (user
plus system, /proc/PID/stat), which moves less than req/s when the machine is shared. All of
a server's processes count: uWSGI's HTTP router, as well as its worker, serves each request.
Each round also times Django alone (its handler called in a loop in one process, no server
and no sockets): the CPU per request below which no server can go, so the best ratio to a peer
that a server costing nothing would reach.

  python django_page.py --rounds 3 --duration 5
  python django_page.py --before /tmp/base   # adds ferrule-threads-before: another build
  python django_page.py --only ferrule-threads ferrule-inline --paths /plain/
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import PINNED, Server, children, write_fragment

THREADS = 4
BIN = Path(sys.executable).parent
FERRULE = BIN / "ferrule" if (BIN / "ferrule").exists() else Path("ferrule")
TARGET = "benchsite.wsgi:application"

# name -> command line ({port}); one worker each, four app threads where the server has them.
SERVERS: dict[str, str] = {
    "ferrule-threads": f"{FERRULE} --bind 127.0.0.1:{{port}} --workers 1 --threads {THREADS} {TARGET}",
    "ferrule-inline": f"{FERRULE} --bind 127.0.0.1:{{port}} --workers 1 --threads 1 {TARGET}",
    "granian": f"{BIN}/granian --interface wsgi --workers 1 --blocking-threads {THREADS} "
    f"--host 127.0.0.1 --port {{port}} {TARGET}",
    "gunicorn-gthread": f"{BIN}/gunicorn --workers 1 --threads {THREADS} --bind 127.0.0.1:{{port}} {TARGET}",
    # uWSGI's HTTP router process in front of its one worker (keep-alive, as wrk expects): its
    # --http11-socket serves one connection per thread, so 28 of wrk's 32 wait unserved.
    "uwsgi": f"{BIN}/uwsgi --master --http 127.0.0.1:{{port}} --http-keepalive --module {TARGET} "
    f"--processes 1 --threads {THREADS} --disable-logging --die-on-term",
}

SETTINGS = """
from pathlib import Path
BASE = Path(__file__).resolve().parent.parent
SECRET_KEY = "bench-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.contenttypes", "items"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "benchsite.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE / "db.sqlite3"}}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
"""

URLS = """
from django.urls import path
from items import views
urlpatterns = [
    path("", views.plain),
    path("plain/", views.plain),
    path("items/", views.items),
]
"""

WSGI = """
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")
from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()
"""

MODELS = """
from django.db import models
class Item(models.Model):
    name = models.CharField(max_length=60)
    price = models.DecimalField(max_digits=8, decimal_places=2)
    stock = models.IntegerField()
"""

VIEWS = """
from django.http import HttpResponse
from django.shortcuts import render
from items.models import Item
def plain(request):
    return HttpResponse(b"ok", content_type="text/plain")
def items(request):
    return render(request, "items/list.html", {"items": list(Item.objects.order_by("id")[:50])})
"""

TEMPLATE = """<!doctype html>
<html><head><title>Items</title></head><body>
<h1>{{ items|length }} items</h1>
<table>
{% for item in items %}<tr class="{% cycle 'odd' 'even' %}"><td>{{ item.id }}</td>\
<td>{{ item.name|title }}</td><td>{{ item.price }}</td><td>{{ item.stock }}</td>\
<td><a href="/items/{{ item.id }}/">details</a></td></tr>
{% endfor %}</table>
</body></html>
"""


def make_project(root: Path) -> None:
    """The Django project and its sqlite database (50 items) under ROOT."""
    files = {
        "benchsite/__init__.py": "",
        "benchsite/settings.py": SETTINGS,
        "benchsite/urls.py": URLS,
        "benchsite/wsgi.py": WSGI,
        "items/__init__.py": "",
        "items/models.py": MODELS,
        "items/views.py": VIEWS,
        "items/templates/items/list.html": TEMPLATE,
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip("\n"))
    setup = (
        "import django; django.setup()\n"
        "from django.core.management import call_command\n"
        "call_command('migrate', run_syncdb=True, verbosity=0)\n"
        "from items.models import Item\n"
        "Item.objects.bulk_create([Item(name=f'item number {i} of the catalogue', "
        "price=i * 1.25, stock=i * 7) for i in range(1, 51)])\n"
    )
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="benchsite.settings", PYTHONPATH=str(root))
    subprocess.run([sys.executable, "-c", setup], cwd=root, env=env, check=True)


# Django's own work per request, no server: the handler called in a loop with a fresh
# environ, the response iterated and closed, as a server would. Prints CPU us per request.
FLOOR = """
import io, sys, time
from benchsite.wsgi import application
path, n = sys.argv[1], int(sys.argv[2])
def start_response(status, headers, exc_info=None):
    return lambda data: None
def once():
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000", "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "wrk", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
        "wsgi.multiprocess": False, "wsgi.run_once": False}
    result = application(environ, start_response)
    for _ in result:
        pass
    result.close()
for _ in range(n // 5):
    once()
began = time.process_time()
for _ in range(n):
    once()
print((time.process_time() - began) / n * 1e6)
"""


def floor(root: Path, path: str, seconds: float) -> float:
    """CPU us per request of Django alone on PATH (FLOOR), pinned like the servers, run for
    about SECONDS."""
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="benchsite.settings", PYTHONPATH=str(root))
    cmd = ["taskset", "-c", "0"] if PINNED else []

    def run(n: int) -> float:
        out = subprocess.run(
            [*cmd, sys.executable, "-c", FLOOR, path, str(n)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return float(out.stdout.strip())

    return run(max(100, int(seconds * 1e6 / run(200))))


def tree(pid: int) -> list[int]:
    """PID and its descendants."""
    out = [pid]
    for p in out:
        out += children(p)
    return out


def switches(pids: list[int]) -> int:
    """Context switches of every thread of PIDS so far."""
    total = 0
    for task in (t for pid in pids for t in Path(f"/proc/{pid}/task").iterdir()):
        try:
            text = (task / "status").read_text()
        except OSError:
            continue
        total += sum(int(n) for n in re.findall(r"ctxt_switches:\s+(\d+)", text))
    return total


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of PIDS (all their threads) so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def wrk(port: int, path: str, conns: int, duration: int) -> tuple[float, float, float, int, int]:
    """(req/s, p50 ms, p99 ms, requests, errors) of one wrk run."""
    cmd = ["taskset", "-c", "1"] if PINNED else []
    cmd += ["wrk", "--latency", "--timeout", "10s", "-t1", f"-c{conns}", f"-d{duration}s"]
    out = subprocess.run([*cmd, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True).stdout

    def ms(text: str) -> float:
        m = re.match(r"([\d.]+)(us|ms|s)$", text)
        if not m:
            return float("nan")
        return float(m[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m[2]]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (rps and total and p50 and p99):
        raise SystemExit(f"wrk gave no figures:\n{out}")
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(non2xx[1]) if non2xx else 0
    return float(rps[1]), ms(p50[1]), ms(p99[1]), int(total[1]), errors


# Servers that import `ferrule` from another directory (`--before`): name -> directory.
ELSEWHERE: dict[str, str] = {}


def measure(name: str, root: Path, paths: list[str], conns: int, duration: int) -> dict[str, tuple]:
    """One server started, each path loaded in turn: path -> (req/s, p50, p99, cs/req, errors,
    CPU us/req)."""
    path = os.pathsep.join([*filter(None, [ELSEWHERE.get(name)]), str(root)])
    env = {"PYTHONPATH": path, "DJANGO_SETTINGS_MODULE": "benchsite.settings"}
    out: dict[str, tuple] = {}
    with Server(name, template=SERVERS[name], env=env, cwd=root) as server:
        pids = tree(server.proc.pid)
        for path in paths:
            # Warm up each path just before it is measured: when wrk stops, the requests it
            # had sent are still served (32 of /items/, about 90 ms), and the next path's
            # first second would carry that stall into its p99.
            wrk(server.port, path, conns, 1)
            before, cpu = switches(pids), cpu_seconds(pids)
            rps, p50, p99, total, errors = wrk(server.port, path, conns, duration)
            per = max(total, 1)
            cs = (switches(pids) - before) / per
            out[path] = (rps, p50, p99, cs, errors, (cpu_seconds(pids) - cpu) / per * 1e6)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds of load per path and round")
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--paths", nargs="+", default=["/items/", "/plain/"])
    ap.add_argument("--only", nargs="+", choices=list(SERVERS), default=list(SERVERS))
    ap.add_argument("--no-write", action="store_true", help="print, do not write results/django.md")
    ap.add_argument(
        "--before",
        metavar="DIR",
        help="also run ferrule-threads-before: `--threads 4` importing ferrule from DIR (an unpacked "
        "wheel of another commit), for a before/after in one run",
    )
    args = ap.parse_args()
    if args.before:
        SERVERS["ferrule-threads-before"] = SERVERS["ferrule-threads"]
        ELSEWHERE["ferrule-threads-before"] = str(Path(args.before).resolve())
        args.only.insert(1, "ferrule-threads-before")
    results: dict[str, dict[str, list[tuple]]] = {s: {p: [] for p in args.paths} for s in args.only}
    floors: dict[str, list[float]] = {p: [] for p in args.paths}
    with tempfile.TemporaryDirectory(prefix="django-bench-") as tmp:
        root = Path(tmp)
        make_project(root)
        for _ in range(args.rounds):
            for name in args.only:
                for path, figures in measure(name, root, args.paths, args.conns, args.duration).items():
                    results[name][path].append(figures)
            for path in args.paths:
                floors[path].append(floor(root, path, args.duration))
    base = args.only[0]
    lines = [
        f"`wrk -t1 -c{args.conns}`, {args.duration} s per path, medians of {args.rounds} rounds "
        f"(servers alternating); ratios to `{base}`; cs/req: the server's context switches per request; "
        "CPU us/req: its user and system time per request (all its processes).",
        "",
        "| server | path | req/s | ratio | p50 ms | p99 ms | cs/req | CPU us/req | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for path in args.paths:
        first = statistics.median(r[0] for r in results[base][path])
        for name in args.only:
            rs = results[name][path]
            rps = statistics.median(r[0] for r in rs)
            lines.append(
                f"| {name} | `{path}` | {rps:,.0f} | {rps / first:.2f} | "
                f"{statistics.median(r[1] for r in rs):.1f} | {statistics.median(r[2] for r in rs):.1f} | "
                f"{statistics.median(r[3] for r in rs):.1f} | {statistics.median(r[5] for r in rs):,.0f} | "
                f"{sum(r[4] for r in rs)} |"
            )
    lines += [
        "",
        "Django alone, its handler called in a loop without a server (a fresh environ per call, "
        "the response iterated and closed), pinned to CPU 0, medians of the rounds: the CPU per "
        "request no server can go below, and the ratio to each server's CPU per request that a "
        "server costing nothing would reach.",
        "",
        "| path | Django alone, CPU us/req | "
        + " | ".join(f"{name} CPU / alone" for name in args.only)
        + " |",
        "|---|---:|" + "---:|" * len(args.only),
    ]
    for path in args.paths:
        alone = statistics.median(floors[path])
        ratios = " | ".join(
            f"{statistics.median(r[5] for r in results[name][path]) / alone:.2f}" for name in args.only
        )
        lines.append(f"| `{path}` | {alone:,.1f} | {ratios} |")
    body = "\n".join(lines)
    if args.no_write:
        print(body)
    else:
        write_fragment("django", "A Django page, threaded and inline (issue 20)", body)


if __name__ == "__main__":
    main()
