"""The deployment examples in examples/ (docs/deployment.md) are true: the systemd units pass
`systemd-analyze verify` and serve under `systemd-socket-activate` as the unit runs Ferrule; the
Dockerfile's CMD and the Kubernetes Deployment's args are a command line Ferrule accepts
(`--check-config`), and the Deployment's probes and grace period agree with those args. The
nginx examples are run by tests/test_nginx.py."""

from __future__ import annotations

import json
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FERRULE = str(Path(sys.executable).with_name("ferrule"))


def site(tmp_path: Path) -> Path:
    """A project directory standing in for `myproject`: its app, and a static directory."""
    (tmp_path / "myproject").mkdir()
    (tmp_path / "myproject" / "__init__.py").write_text("")
    shutil.copy(EXAMPLES / "hello.py", tmp_path / "myproject" / "wsgi.py")
    (tmp_path / "myproject" / "wsgi.py").write_text(
        (tmp_path / "myproject" / "wsgi.py").read_text() + "\napplication = app\n"
    )
    (tmp_path / "staticfiles").mkdir()
    return tmp_path


def check_config(argv: list[str], cwd: Path) -> None:
    assert argv[0] == "ferrule", argv
    r = subprocess.run(
        [FERRULE, *argv[1:], "--check-config"], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_lines() -> dict[str, str]:
    lines = (EXAMPLES / "systemd" / "ferrule.service").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_units_verify(tmp_path):
    # The unit's paths made real: the virtualenv's ferrule and an existing directory.
    unit = (EXAMPLES / "systemd" / "ferrule.service").read_text()
    unit = unit.replace("/srv/myproject/.venv/bin/ferrule", FERRULE).replace("/srv/myproject", str(tmp_path))
    (tmp_path / "ferrule.service").write_text(unit)
    shutil.copy(EXAMPLES / "systemd" / "ferrule.socket", tmp_path)
    r = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "ferrule.socket"), str(tmp_path / "ferrule.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(not shutil.which("systemd-socket-activate"), reason="systemd-socket-activate is missing")
def test_systemd_socket_activation_serves_as_the_unit_runs_ferrule(tmp_path):
    argv = shlex.split(service_lines()["ExecStart"])
    assert argv[0].endswith("/ferrule") and "--bind" not in argv
    port = free_port()
    proc = subprocess.Popen(
        ["systemd-socket-activate", "-l", f"127.0.0.1:{port}", FERRULE, *argv[1:]],
        cwd=site(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "nothing answered on the activated socket"
                time.sleep(0.1)
        assert r.text == "Hello, World!\n"
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert "Listening at: http://127.0.0.1:" in (proc.stderr.read() if proc.stderr else "")


def test_dockerfile_cmd_is_a_command_line_ferrule_accepts(tmp_path):
    lines = (EXAMPLES / "docker" / "Dockerfile").read_text().splitlines()
    cmd = json.loads(next(line for line in lines if line.startswith("CMD "))[4:])
    check_config(cmd, site(tmp_path))
    expose = next(line for line in lines if line.startswith("EXPOSE "))
    assert option(cmd, "--bind") == f"0.0.0.0:{expose.split()[1]}"


def test_kubernetes_deployment_args_probes_and_grace_period_agree(tmp_path):
    docs = list(yaml.safe_load_all((EXAMPLES / "kubernetes" / "deployment.yaml").read_text()))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    service = next(d for d in docs if d["kind"] == "Service")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = [str(a) for a in container["args"]]
    check_config(args, site(tmp_path))
    port = int(option(args, "--bind").rsplit(":", 1)[1])
    assert container["ports"] == [{"containerPort": port}]
    assert service["spec"]["ports"][0]["targetPort"] == port
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": option(args, "--health-path"), "port": port}
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # The pod is killed only after the preStop wait and the graceful drain both had their time.
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + int(option(args, "--graceful-timeout"))
    assert (
        deployment["spec"]["selector"]["matchLabels"] == deployment["spec"]["template"]["metadata"]["labels"]
    )
