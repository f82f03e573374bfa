"""The `ferrule` command line: APP forms, --chdir/--pythonpath, failures, --version/--help."""

import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import ferrule
import pytest
import requests
from conftest import APPS, read_response


def ferrule_cmd(*args: str, cwd: Path = APPS, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ferrule", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    "app,answer",
    [
        ("cli_app:other", "other"),
        ("cli_app:factory()", "factory()"),
        ('cli_app:create_app("prod")', "create_app('prod', debug=False)"),
        ("cli_app:create_app('dev', debug=True)", "create_app('dev', debug=True)"),
        ("cli_app", "application"),  # bare module: `application` first
        ("cli_only_app", "only app"),  # then `app`
    ],
)
def test_app_forms(serve, app, answer):
    srv = serve(app)
    assert requests.get(srv.url).text == answer


def test_app_as_a_file_path(serve):
    srv = serve("apps/cli_app.py:other", cwd=APPS.parent)
    assert requests.get(srv.url).text == "other"


def test_chdir_puts_the_directory_first_on_sys_path(serve, tmp_path):
    srv = serve("cli_app:app", "--chdir", str(APPS), cwd=tmp_path)
    assert requests.get(srv.url).text == "app"


def test_pythonpath_adds_directories(serve, tmp_path):
    srv = serve("cli_app:app", "--pythonpath", f"{tmp_path},{APPS}", cwd=tmp_path)
    assert requests.get(srv.url).text == "app"


def failed_start(app: str, cwd: Path = APPS) -> str:
    r = ferrule_cmd("-b", "127.0.0.1:0", app, cwd=cwd)
    assert r.returncode != 0, r.stderr
    return r.stderr


@pytest.mark.parametrize(
    "app,message",
    [
        ("no_such_module_here:app", "Failed to find application module 'no_such_module_here'"),
        ("cli_app:missing", "Failed to find attribute 'missing' in 'cli_app'"),
        ("cli_not_callable:app", "'cli_not_callable:app' is a int, not a callable"),
        ("cli_not_callable:nope()", "Failed to find attribute 'nope'"),
        ("apps/no_such_file.py:app", "Failed to find application file 'apps/no_such_file.py'"),
    ],
)
def test_bad_app_exits_with_one_clear_message(app, message):
    err = failed_start(app, cwd=APPS.parent if app.startswith("apps/") else APPS)
    assert err.count(message) == 1, err
    assert "panic" not in err


def test_app_whose_import_raises_exits_with_the_import_traceback():
    err = failed_start("cli_import_raises:app")
    assert err.count("Error importing application module 'cli_import_raises'") == 1, err
    assert "Traceback (most recent call last)" in err
    assert re.search(r'cli_import_raises\.py", line \d+, in _configure', err), err
    assert err.count("RuntimeError: settings are missing at import") == 1


def test_factory_that_raises_exits_with_its_traceback():
    err = failed_start("cli_app:create_app()")  # missing argument
    assert "Error calling the application factory" in err
    assert "TypeError" in err and "create_app()" in err


def test_port_in_use_names_the_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = ferrule_cmd("-b", f"127.0.0.1:{port}", "cli_app:app")
    assert r.returncode != 0
    assert f"127.0.0.1:{port}" in r.stderr
    assert "in use" in r.stderr


def test_version():
    r = ferrule_cmd("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"ferrule {ferrule.__version__}"


OPTIONS = [
    "--bind",
    "--workers",
    "--threads",
    "--chdir",
    "--pythonpath",
    "--root-path",
    "--backlog",
    "--keep-alive",
    "--limit-request-line",
    "--limit-request-fields",
    "--limit-request-field_size",
    "--limit-request-body",
    "--no-server-header",
    "--log-level",
    "--error-logfile",
    "--access-logfile",
    "--graceful-timeout",
    "--client-timeout",
    "--timeout",
    "--max-requests",
    "--max-requests-jitter",
    "--max-worker-memory",
    "--pid",
    "--reuse-port",
    "--umask",
    "--user",
    "--group",
    "--version",
    "--help",
    "--config",
    "--preload",
    "--reload",
    "--reload-extra-file",
    "--print-config",
    "--check-config",
    "--env",
    "--capture-output",
]


def test_help_mentions_every_option_and_its_default():
    r = ferrule_cmd("--help")
    assert r.returncode == 0
    missing = [o for o in OPTIONS if o not in r.stdout]
    assert missing == []
    text = " ".join(r.stdout.split())  # help text wraps to the terminal's width
    assert "[default: 0.0.0.0:$PORT when PORT is set, else 127.0.0.1:8000]" in text
    assert "module:attr" in r.stdout


def test_bind_to_a_unix_socket(serve):
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        path = f"{d}/ferrule.sock"
        srv = serve("pep:app", "-b", f"unix:{path}")
        assert any(addr == f"unix:{path}" for _, addr in srv.binds), srv.text
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(path)
            s.sendall(b"GET /unix?x=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status, _, body = read_response(s)
        assert status == b"HTTP/1.1 200 OK"
        assert b'"PATH_INFO": "/unix"' in body
        srv.stop()


def test_no_app_serves_the_demo_page(serve):
    srv = serve(None)
    r = requests.get(srv.url + "/some/path?q=1")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert ferrule.__version__ in r.text
    assert "/some/path" in r.text
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in r.text
