"""-c FILE: a Python config file sets options (the command line wins) and server hooks."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from conftest import APPS, Server
from test_supervisor import wait_until, workers

pytestmark = pytest.mark.timeout(60)

HOOKS = """
import os

_LOG = {log!r}


def _note(*words):
    with open(_LOG, "a") as f:
        f.write(" ".join(str(w) for w in words) + "\\n")


def on_starting(server):
    _note("on_starting", server.pid, server.cfg.workers)


def when_ready(server):
    _note("when_ready", server.pid)
    raise RuntimeError("when_ready blew up")


def post_fork(server, worker):
    _note("post_fork", worker.pid, worker.ppid == server.pid)


def pre_request(worker, environ):
    environ["HOOKED"] = "yes"
    if environ["PATH_INFO"] == "/raise":
        raise ValueError("pre_request blew up")


def post_request(worker, environ, status):
    _note("post_request", worker.pid, environ["PATH_INFO"], status)


def worker_exit(server, worker):
    _note("worker_exit", worker.pid)


def child_exit(server, worker):
    _note("child_exit", worker.pid, worker.exitcode)


def on_exit(server):
    _note("on_exit", server.pid)
"""


def write_conf(tmp_path: Path, text: str) -> Path:
    conf = tmp_path / "ferrule.conf.py"
    conf.write_text(text)
    return conf


def notes(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def refused(conf: Path) -> subprocess.CompletedProcess:
    """Runs ferrule with `conf`, expecting it to refuse to start."""
    return subprocess.run(
        [sys.executable, "-m", "ferrule", "-c", str(conf), "basic:hello"],
        cwd=APPS,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_config_file_sets_options_and_the_command_line_wins(tmp_path):
    conf = write_conf(tmp_path, 'import os\nbind = ["127.0.0.1:0"]\nworkers = 3\ntimeout = 5\n_helper = 1\n')
    srv = Server(["-c", str(conf), "basic:hello"])
    try:
        srv.wait_for_log(r"Booting worker with pid", count=3)
        wait_until(lambda: len(workers(srv)) == 3)
        assert requests.get(srv.url).status_code == 200
    finally:
        srv.stop()
    srv = Server(["-c", str(conf), "-w", "1", "basic:hello"])
    try:
        assert requests.get(srv.url).status_code == 200
        assert len(workers(srv)) == 1
    finally:
        srv.stop()


def test_unknown_names_in_the_config_file_are_an_error_naming_them(tmp_path):
    conf = write_conf(tmp_path, "workers = 2\nworkerz = 3\ndef post_frok(server, worker): pass\n")
    r = refused(conf)
    assert r.returncode == 2
    assert f"{conf}:2: unknown setting workerz (did you mean workers?)" in r.stderr
    assert f"{conf}:3: unknown setting post_frok (did you mean post_fork?)" in r.stderr


def test_bad_value_in_the_config_file_names_the_file(tmp_path):
    conf = write_conf(tmp_path, 'workers = "many"\n')
    r = refused(conf)
    assert r.returncode == 2
    assert str(conf) in r.stderr and "--workers" in r.stderr


def test_hooks_run_with_their_arguments_and_a_raising_hook_is_only_logged(serve, tmp_path):
    log = tmp_path / "hooks.log"
    conf = write_conf(tmp_path, HOOKS.format(log=str(log)))
    atexit_file = tmp_path / "atexit.txt"
    srv = serve("hooked:app", "-c", str(conf), env={"FERRULE_TEST_ATEXIT_FILE": str(atexit_file)})
    assert requests.get(srv.url + "/x").text.startswith("hooked=yes")
    # A hook that raises is logged with its traceback; the request is still served.
    assert requests.get(srv.url + "/raise").text.startswith("hooked=yes")
    srv.wait_for_log(r"Exception in the when_ready hook")
    assert "RuntimeError: when_ready blew up" in srv.text
    assert "ValueError: pre_request blew up" in srv.text
    worker = int(srv.wait_for_log(r"Booting worker with pid: (\d+)").group(1))
    master = srv.proc.pid
    assert srv.stop() == 0
    seen = notes(log)
    assert seen[0] == ["on_starting", str(master), "1"]
    assert ["post_fork", str(worker), "True"] in seen
    assert ["when_ready", str(master)] in seen
    assert ["post_request", str(worker), "/x", "200"] in seen
    assert ["post_request", str(worker), "/raise", "200"] in seen
    assert ["worker_exit", str(worker)] in seen
    assert ["child_exit", str(worker), "0"] in seen
    assert seen[-1] == ["on_exit", str(master)]
    # The worker exited gracefully: Python's atexit handlers ran in it.
    assert f"atexit {worker}" in atexit_file.read_text()


def test_hup_rereads_the_config_file(serve, tmp_path):
    conf = write_conf(tmp_path, "workers = 1\n")
    srv = serve("basic:hello", "-c", str(conf))
    wait_until(lambda: len(workers(srv)) == 1)
    conf.write_text("workers = 2\nmax_requests = 1000\n")
    srv.signal(signal.SIGHUP)
    srv.wait_for_log(r"Reload: new workers serving")
    wait_until(lambda: len(workers(srv)) == 2, timeout=15)
    conf.write_text("workers = \n")
    srv.signal(signal.SIGHUP)
    srv.wait_for_log(r"cannot re-read the configuration; keeping the current one")
    wait_until(lambda: len(workers(srv)) == 2, timeout=15)
    assert requests.get(srv.url).status_code == 200
