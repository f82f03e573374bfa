"""PasteDeploy: `pserve app.ini` with `[server:main] use = egg:ferrule`, and `ferrule --paste
app.ini[#name]` serving the same Pyramid app (with the ini's server options and logging)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from conftest import APPS, Server

pytest.importorskip("paste.deploy")
pytest.importorskip("pyramid")

INI = """
[app:main]
use = call:paste_app:main
greeting = hello from main

[app:other]
use = call:paste_app:main
greeting = hello from other

[server:main]
use = egg:ferrule
host = 127.0.0.1
port = 0
workers = 2
threads = 2
root_path = /app

[loggers]
keys = root, paste_app

[handlers]
keys = console

[formatters]
keys = plain

[logger_root]
level = WARNING
handlers = console

[logger_paste_app]
level = INFO
handlers =
qualname = paste_app

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = plain

[formatter_plain]
format = PASTELOG %(name)s: %(message)s
"""


@pytest.fixture
def ini(tmp_path: Path) -> Path:
    path = tmp_path / "app.ini"
    path.write_text(INI)
    return path


def env() -> dict[str, str]:
    return {
        "PYTHONPATH": str(APPS),
        "PORT": "",
        "WEB_CONCURRENCY": "",
        "GUNICORN_CMD_ARGS": "",
        "FERRULE_CMD_ARGS": "",
    }


def check(srv: Server, greeting: str = "hello from main") -> None:
    r = requests.get(f"{srv.url}/app/hello/world", timeout=10)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["name"] == "world"
    assert j["greeting"] == greeting
    assert (j["script_name"], j["path_info"]) == ("/app", "/hello/world")
    assert j["server"].startswith("ferrule/")
    # workers = 2 and threads = 2 from [server:main].
    assert j["threads"] is True and j["multiprocess"] is True
    srv.wait_for_log(r"Booting worker with pid", count=2)
    assert requests.get(f"{srv.url}/hello/world", timeout=10).status_code == 404


def test_pserve_serves_the_ini_with_ferrule(ini):
    pserve = [sys.executable, "-c", "import sys; from pyramid.scripts.pserve import main; sys.exit(main())"]
    srv = Server([str(ini)], cwd=ini.parent, env=env(), command=pserve)
    try:
        check(srv)
        srv.wait_for_log(r"PASTELOG paste_app: pyramid app built with greeting hello from main")
    finally:
        srv.stop()


def test_ferrule_paste_serves_the_same_with_the_ini_options_and_logging(ini):
    srv = Server(["--paste", str(ini)], cwd=ini.parent, env=env())
    try:
        check(srv)
        srv.wait_for_log(r"PASTELOG paste_app: pyramid app built with greeting hello from main")
    finally:
        srv.stop()


def test_ferrule_paste_with_a_name_loads_that_app(ini):
    srv = Server(["--paste", f"{ini}#other", "-w", "2"], cwd=ini.parent, env=env())
    try:
        check(srv, "hello from other")
    finally:
        srv.stop()


def test_paste_from_gunicorn_settings_in_a_config_file(ini, tmp_path):
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(f"paste = {str(ini)!r}\n")
    srv = Server(["-c", str(conf)], cwd=ini.parent, env=env())
    try:
        check(srv)
    finally:
        srv.stop()


def test_paste_mounts_beside_another_app(ini):
    srv = Server(["--paste", str(ini), "--mount", "/api=mounted:api"], cwd=ini.parent, env=env())
    try:
        check(srv)
        r = requests.get(f"{srv.url}/app/api/x", timeout=10)
        assert (r.json()["app"], r.json()["script_name"], r.json()["path_info"]) == ("api", "/app/api", "/x")
    finally:
        srv.stop()


def test_server_options_only_count_for_egg_ferrule(tmp_path):
    path = tmp_path / "app.ini"
    path.write_text(INI.replace("use = egg:ferrule", "use = egg:waitress#main"))
    r = subprocess.run(
        [sys.executable, "-m", "ferrule", "--paste", str(path), "--print-config"],
        cwd=tmp_path,
        env={**os.environ, **env()},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert "root_path = /app" not in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "ferrule", "--paste", str(tmp_path / "missing.ini")],
        cwd=tmp_path,
        env={**os.environ, **env()},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode != 0
    assert "no such file" in r.stderr
