"""The error log's forms and the process titles: `--log-json` writes each record as one JSON
object (a traceback stays in its message), and `ps` shows `ferrule: master [NAME]` and
`ferrule: worker [NAME]`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import requests


def cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0")


def worker_pid(srv) -> int:
    return int(srv.wait_for_log(r"Booting worker with pid: (\d+)").group(1))


def test_log_json_writes_each_record_as_one_json_object(serve):
    srv = serve("basic:raises", "--log-json")
    assert requests.get(srv.url + "/", timeout=10).status_code == 500
    srv.wait_for_log(r"boom from the app")
    records = [json.loads(line) for line in srv.text.splitlines() if line.strip()]
    assert {r["level"] for r in records} >= {"INFO", "ERROR"}
    assert all(set(r) == {"time", "level", "pid", "message"} for r in records), records
    listening = next(r for r in records if r["message"].startswith("Listening at: http://127.0.0.1:"))
    assert listening["pid"] == srv.proc.pid
    error = next(r for r in records if r["level"] == "ERROR")
    # The traceback is inside the one record, its lines joined by newlines.
    assert "Traceback (most recent call last)" in error["message"]
    assert "\n" in error["message"]
    assert error["time"].endswith("Z") and "T" in error["time"]


def test_processes_are_titled_with_their_role_and_the_app(serve):
    srv = serve("basic:hello", "-w", "2")
    worker = worker_pid(srv)
    assert cmdline(srv.proc.pid) == b"ferrule: master [basic:hello]"
    assert cmdline(worker) == b"ferrule: worker [basic:hello]"
    assert Path(f"/proc/{worker}/comm").read_text().strip() == "ferrule: worker"
    ps = subprocess.run(["ps", "-o", "args=", "-p", str(srv.proc.pid)], capture_output=True, text=True)
    if ps.returncode == 0:  # procps may be missing on a minimal machine
        assert ps.stdout.strip() == "ferrule: master [basic:hello]"


def test_name_sets_the_titles(serve):
    srv = serve("basic:hello", "--name", "shop")
    assert cmdline(srv.proc.pid) == b"ferrule: master [shop]"
    assert cmdline(worker_pid(srv)) == b"ferrule: worker [shop]"


def test_a_repeated_error_is_written_once_then_counted(serve, tmp_path):
    """Every upload fails to spool (the directory is gone): each gets 500, and the log one
    line, not one per request."""
    gone = tmp_path / "gone"
    srv = serve("upload:app", "--body-spool-dir", str(gone))
    for _ in range(5):
        r = requests.post(srv.url + "/sha", data=b"x" * 100_000, timeout=10)
        assert r.status_code == 500
    srv.wait_for_log(r"cannot write a request body to a spool file")
    assert srv.text.count("cannot write a request body to a spool file") == 1, srv.text
