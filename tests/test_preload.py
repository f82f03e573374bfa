"""--preload: the app imported once in the master; HUP re-executes the master in place."""

from __future__ import annotations

import signal

import pytest
import requests
from conftest import LISTEN_RE, Server
from test_supervisor import (
    Load,
    breaking_and_fixing_the_code_keeps_serving,
    set_version,
    version_of,
    wait_until,
    workers,
)

pytestmark = pytest.mark.timeout(60)


def imported_in(text: str) -> int:
    return int(text.split()[2].split("=")[1])


def listening(srv: Server) -> list[tuple[str, str, str]]:
    return [m.groups() for line in srv.log if (m := LISTEN_RE.search(line))]


def test_preload_imports_the_app_once_in_the_master(serve, appdir):
    srv = serve("supervised:app", "--preload", "-w", "2", cwd=appdir)
    srv.wait_for_log(r"Booting worker with pid", count=2)
    seen = set()
    with requests.Session() as s:
        for _ in range(20):
            r = s.get(srv.url)
            seen.add(imported_in(r.text))
    assert seen == {srv.proc.pid}


def test_hup_with_preload_reexecutes_the_master_in_place_under_load(serve, appdir):
    srv = serve("supervised:app", "--preload", "-w", "2", cwd=appdir)
    srv.wait_for_log(r"Booting worker with pid", count=2)
    before = workers(srv)
    load = Load(srv.url, clients=4)
    try:
        wait_until(lambda: load.ok > 20)
        for v in (2, 3, 4):
            set_version(appdir, f"VERSION = {v}")
            srv.signal(signal.SIGHUP)
            srv.wait_for_log(r"re-executing the master \(--preload\)", count=v - 1)
            wait_until(lambda v=v: version_of(requests.get(srv.url).text) == v, timeout=20)
            srv.wait_for_log(r"Reload: new workers serving; old workers draining", count=v - 1)
            ok_at_switch = load.ok
            wait_until(lambda ok=ok_at_switch: load.ok > ok + 20)
    finally:
        load.stop()
    assert load.errors == []
    assert load.versions == {1, 2, 3, 4}
    assert srv.proc.poll() is None
    r = requests.get(srv.url)
    # Same master: it still imported the new code itself (copy-on-write for the workers).
    assert imported_in(r.text) == srv.proc.pid
    # The new image adopted the same sockets: the same addresses, under the same pid.
    lines = listening(srv)
    assert len(lines) == 4 and set(lines) == {lines[0]} and lines[0][2] == str(srv.proc.pid)
    # The old workers drained and left; the new ones are children of the same master.
    wait_until(lambda: len(workers(srv)) == 2 and not workers(srv) & before, timeout=15)


def test_hup_with_preload_and_broken_code_keeps_the_old_workers_serving(serve, appdir):
    srv = serve("supervised:app", "--preload", "-w", "2", cwd=appdir)
    srv.wait_for_log(r"Booting worker with pid", count=2)
    breaking_and_fixing_the_code_keeps_serving(
        srv,
        appdir,
        lambda: srv.signal(signal.SIGHUP),
        r"Reload failed: the new code cannot be imported; the old workers keep serving",
    )
