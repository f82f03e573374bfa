"""Where options come from: PORT, WEB_CONCURRENCY, pyproject.toml's [tool.ferrule], a TOML or
Python config file (-c, or ./ferrule.conf.py / ./gunicorn.conf.py), FERRULE_<OPTION>,
GUNICORN_CMD_ARGS / FERRULE_CMD_ARGS, the command line; in that order of precedence."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from conftest import APPS, Server
from test_supervisor import wait_until, workers

pytestmark = pytest.mark.timeout(60)

# Variables the runner may have set that would change what these tests see.
CLEAN = {
    "PORT": "",
    "WEB_CONCURRENCY": "",
    "GUNICORN_CMD_ARGS": "",
    "FERRULE_CMD_ARGS": "",
}
LINE_RE = re.compile(r"^(#\s*)?(\w+)(?: = (.*?))?(?: \(not set\))?\s+# (.*)$")


def ferrule(*args: str, cwd: Path = APPS, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("FERRULE_")}
    full.update(CLEAN)
    full.update(env or {})
    argv = [sys.executable, "-m", "ferrule", *args]
    return subprocess.run(argv, cwd=cwd, env=full, capture_output=True, text=True, timeout=30)


def printed(*args: str, cwd: Path = APPS, env: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """`ferrule --print-config ARGS`: {option: (value, source)}."""
    r = ferrule("--print-config", *args, cwd=cwd, env=env)
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        m = LINE_RE.match(line)
        assert m, line
        out[m.group(2)] = (m.group(3), m.group(4))
    return out


def start(args: list[str], cwd: Path = APPS, env: dict[str, str] | None = None) -> Server:
    return Server(args, cwd=cwd, env={**CLEAN, **(env or {})})


def test_port_binds_every_interface_and_web_concurrency_sets_the_workers():
    srv = start(["config_env:app"], env={"PORT": "0", "WEB_CONCURRENCY": "2"})
    try:
        assert srv.binds[0][1].startswith("0.0.0.0:")
        assert requests.get(f"http://127.0.0.1:{srv.port}/").status_code == 200
        wait_until(lambda: len(workers(srv)) == 2)
    finally:
        srv.stop()


def test_gunicorn_cmd_args_beat_ferrule_variables_and_web_concurrency():
    env = {
        "WEB_CONCURRENCY": "3",
        "FERRULE_WORKERS": "1",
        "GUNICORN_CMD_ARGS": "--bind 127.0.0.1:0 --workers 2 -k gthread -e 'GREETING=from cmd args'",
    }
    srv = start(["config_env:app"], env=env)
    try:
        assert requests.get(srv.url).json()["value"] == "from cmd args"
        wait_until(lambda: len(workers(srv)) == 2)
        assert srv.text.count("worker_class gthread has no meaning in Ferrule") == 1
    finally:
        srv.stop()


def test_precedence_of_every_source(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.ferrule]\nbind = ["127.0.0.1:0"]\nworkers = 2\nthreads = 2\n'
        "timeout = 2\nmax-requests = 2\nbacklog = 2\n"
    )
    (tmp_path / "ferrule.toml").write_text("workers = 4\nthreads = 4\ntimeout = 4\nmax_requests = 4\n")
    env = {
        "PORT": "8123",
        "WEB_CONCURRENCY": "9",
        "FERRULE_THREADS": "5",
        "FERRULE_TIMEOUT": "5",
        "FERRULE_MAX_REQUESTS": "5",
        "GUNICORN_CMD_ARGS": "--timeout 6 --max-requests 6",
        "FERRULE_CMD_ARGS": "--max-requests=7",
    }
    seen = printed("-c", "ferrule.toml", "--graceful-timeout", "8", cwd=tmp_path, env=env)
    assert seen["bind"] == ('["127.0.0.1:0"]', "pyproject.toml:5")
    assert seen["backlog"] == ("2", "pyproject.toml:10")
    assert seen["workers"] == ("4", "ferrule.toml:1")
    assert seen["threads"] == ("5", "environment FERRULE_THREADS")
    assert seen["timeout"] == ("6", "GUNICORN_CMD_ARGS")
    assert seen["max_requests"] == ("7", "FERRULE_CMD_ARGS")
    assert seen["graceful_timeout"] == ("8", "command line")
    assert seen["keep_alive"] == ("2", "default")
    assert seen["config"] == ('"ferrule.toml"', "command line")
    assert seen["pid"] == (None, "default")
    # Without the files, PORT and WEB_CONCURRENCY fill in.
    seen = printed(cwd=APPS, env={"PORT": "8123", "WEB_CONCURRENCY": "9"})
    assert seen["bind"] == ('["0.0.0.0:8123"]', "environment PORT")
    assert seen["workers"] == ("9", "environment WEB_CONCURRENCY")


def test_pyproject_tool_ferrule_serves(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.ferrule]\napp = "config_env:app"\nbind = ["127.0.0.1:0"]\npythonpath = "{APPS}"\n'
        'env = ["GREETING=from pyproject"]\n'
    )
    srv = start([], cwd=tmp_path)
    try:
        assert requests.get(srv.url).json()["value"] == "from pyproject"
    finally:
        srv.stop()


def test_toml_config_file_with_tls_lists(tmp_path):
    trustme = pytest.importorskip("trustme")
    from tlscerts import write_leaf

    files = write_leaf(trustme.CA(), tmp_path / "certs")
    conf = tmp_path / "ferrule.toml"
    conf.write_text(
        f'bind = ["127.0.0.1:0"]\ncertfile = ["{files.cert}"]\nkeyfile = ["{files.key}"]\n'
        'http = "1"\nstatic = ["/s=' + str(tmp_path) + '"]\n'
    )
    srv = start(["-c", str(conf), "config_env:app"])
    try:
        assert srv.url.startswith("https://")
        assert requests.get(srv.url, verify=str(files.ca)).json()["scheme"] == "https"
        assert requests.get(srv.url + "/s/ferrule.toml", verify=str(files.ca)).text == conf.read_text()
    finally:
        srv.stop()


GUNICORN_CONF = """
import multiprocessing
import os
from pathlib import Path

_here = Path(__file__).parent
cores = multiprocessing.cpu_count()

wsgi_app = "config_env:app"
bind = ["127.0.0.1:0"]
backlog = 512
workers = 2
worker_class = "gthread"
threads = 4
worker_connections = 1000
max_requests = 1000
max_requests_jitter = 50
timeout = 60
graceful_timeout = 20
keepalive = 5
limit_request_line = 8190
limit_request_fields = 200
limit_request_field_size = 16380
reload = False
reload_engine = "auto"
reload_extra_files = []
spew = False
preload_app = False
sendfile = True
reuse_port = False
chdir = {apps!r}
daemon = False
raw_env = ["GREETING=hello from raw_env", "OTHER=1"]
pidfile = str(_here / "gunicorn.pid")
worker_tmp_dir = "/dev/shm"
umask = 0o022
user = None
group = None
initgroups = False
tmp_upload_dir = None
secure_scheme_headers = {{
    "X-FORWARDED-PROTOCOL": "ssl",
    "X-FORWARDED-PROTO": "https",
    "X-FORWARDED-SSL": "on",
}}
forwarded_allow_ips = ["127.0.0.1", "::1"]
proxy_protocol = False
proxy_allow_ips = "127.0.0.1"
accesslog = str(_here / "access.log")
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" took=%(M)sms'
errorlog = "-"
loglevel = "info"
capture_output = False
logger_class = "gunicorn.glogging.Logger"
logconfig_dict = {{}}
syslog = False
statsd_host = None
proc_name = "myapp"
enable_stdio_inheritance = False
ssl_version = 2


def post_fork(server, worker):
    pass


def on_reload(server):
    pass


def worker_int(worker):
    pass
"""


def test_a_gunicorn_conf_py_in_the_current_directory_is_read_and_serves(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text(GUNICORN_CONF.format(apps=str(APPS)))
    srv = start([], cwd=tmp_path)
    try:
        answer = requests.get(srv.url)
        assert answer.json() == {"value": "hello from raw_env", "scheme": "http"}
        assert requests.get(srv.url, params="OTHER").json()["value"] == "1"
        wait_until(lambda: len(workers(srv)) == 2)
        assert (tmp_path / "gunicorn.pid").read_text().strip() == str(srv.proc.pid)
        wait_until(lambda: "GET / HTTP/1.1" in (tmp_path / "access.log").read_text())
        # gunicorn's access_log_format is --access-logformat.
        assert re.search(
            r'"GET / HTTP/1.1" 200 \d+ "-" "[^"]*" took=\d+ms\n', (tmp_path / "access.log").read_text()
        )
        for name in (
            "worker_class gthread",
            "reload_engine",
            "spew",
            "sendfile",
            "daemon",
            "worker_tmp_dir",
            "initgroups",
            "logger_class",
            "logconfig_dict",
            "syslog",
            "enable_stdio_inheritance",
            "ssl_version",
            "the on_reload hook",
            "the worker_int hook",
            "cores is not a setting",
        ):
            assert len(re.findall(rf"WARNING\] \S*gunicorn\.conf\.py:\d+: .*\b{name}\b", srv.text)) == 1, name
        assert "X-FORWARDED-SSL: on" in srv.text
        # proc_name names the processes.
        assert Path(f"/proc/{srv.proc.pid}/cmdline").read_bytes().rstrip(b"\0") == b"ferrule: master [myapp]"
    finally:
        srv.stop()


def test_misspelt_settings_and_wrong_types_name_the_key_file_and_line(tmp_path):
    conf = tmp_path / "g.conf.py"
    conf.write_text("workers = 2\nworkerz = 3\n\ndef post_frok(server, worker):\n    pass\nthreads = 'x'\n")
    r = ferrule("-c", str(conf), "basic:hello")
    assert r.returncode == 2
    assert f"{conf}:2: unknown setting workerz (did you mean workers?)" in r.stderr
    assert f"{conf}:4: unknown setting post_frok (did you mean post_fork?)" in r.stderr
    assert f"{conf}:6: threads: invalid value 'x' for '--threads" in r.stderr
    toml = tmp_path / "g.toml"
    toml.write_text('bind = "127.0.0.1:0"\nkeepalive = "long"\nworker_connections = "lots"\n')
    r = ferrule("-c", str(toml), "basic:hello")
    assert r.returncode == 2
    assert f"{toml}:2: keepalive: invalid value 'long' for '--keep-alive" in r.stderr
    assert f"{toml}:3: worker_connections: invalid value 'lots'" in r.stderr


def test_an_asgi_worker_class_is_refused():
    r = ferrule("-k", "uvicorn.workers.UvicornWorker", "basic:hello")
    assert r.returncode == 2
    assert "uvicorn.workers.UvicornWorker is an ASGI worker, and Ferrule serves WSGI apps only" in r.stderr


def test_check_config_imports_the_app():
    good = ferrule("--check-config", "cli_app:app")
    assert good.returncode == 0, good.stderr
    assert "Configuration OK; cli_app:app loads." in good.stdout
    bad = ferrule("--check-config", "cli_import_raises:app")
    assert bad.returncode != 0
    assert "RuntimeError: settings are missing at import" in bad.stderr
    bad_config = ferrule("--check-config", "--workers", "0", "cli_app:app")
    assert bad_config.returncode == 2


def test_capture_output_sends_the_apps_prints_to_the_error_log(tmp_path):
    log = tmp_path / "error.log"
    srv = Server(
        ["-b", "127.0.0.1:0", "--error-logfile", str(log), "--capture-output", "config_env:app"],
        env=CLEAN,
        wait=False,
    )
    try:
        listening = r"Listening at: http://127\.0\.0\.1:(\d+)"
        m = wait_until(lambda: re.search(listening, log.read_text() if log.exists() else ""))
        wait_until(lambda: "Booting worker" in log.read_text())
        assert requests.get(f"http://127.0.0.1:{m.group(1)}/print").status_code == 200
        wait_until(lambda: "written to stderr by the app" in log.read_text())
        assert "printed by the app" in log.read_text()
    finally:
        srv.stop()
