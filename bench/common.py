"""What the bench scripts share: the peers' command lines (from peerbench.py), starting one
server pinned to CPU 0, finding the process that serves, reading its RSS, and writing a
Markdown fragment into results/ for report.py.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from types import ModuleType, TracebackType

HERE = Path(__file__).parent
RESULTS = HERE / "results"
SHARED = (HERE / "../../shared/bench").resolve()
PEERBENCH = Path(os.environ.get("PEERBENCH", SHARED / "peerbench.py"))
PINNED = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def peerbench() -> ModuleType:
    """peerbench.py as a module: its SERVERS table, wait_ready and stop are reused as they are."""
    spec = importlib.util.spec_from_file_location("peerbench", PEERBENCH)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {PEERBENCH}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def raise_nofile() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit (in this process, or a child's preexec_fn)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pin_client() -> None:
    """The measuring side runs on CPU 1 when servers are pinned to CPU 0."""
    if PINNED:
        os.sched_setaffinity(0, {1})


def rss_kib(pid: int) -> int:
    """VmRSS of a process, in KiB."""
    m = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    if not m:
        raise SystemExit(f"no VmRSS for pid {pid}")
    return int(m[1])


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(p) for p in (task / "children").read_text().split()]
    return out


class Server:
    """One server on 127.0.0.1 with one worker, pinned to CPU 0, as peerbench starts it.

    `extra` is appended to peerbench's command line for NAME; `threads` is its app threads;
    `nofile` raises the server's soft RLIMIT_NOFILE to the hard limit first. `template` replaces
    peerbench's command line (only `{port}` is filled in), `env` adds to the environment and
    `cwd` is where it starts.
    """

    def __init__(
        self,
        name: str,
        app: str = "plaintext",
        extra: str = "",
        nofile: bool = False,
        threads: int = 1,
        template: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        pb = peerbench()
        self.name = name
        self.port: int = pb.free_port()
        if template is not None:
            cmd = template.format(port=self.port)
        else:
            cmd = pb.SERVERS[name].format(port=self.port, app=app, threads=threads)
        cmd += f" {extra}" if extra else ""
        if PINNED:
            cmd = "exec taskset -c 0 " + cmd
        self.log_path = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
        self._log = open(self.log_path, "w")
        environ = dict(os.environ, PYTHONPATH=f"{SHARED}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        environ["PYTHONDONTWRITEBYTECODE"] = "1"
        environ.update(env or {})
        self.proc = subprocess.Popen(
            cmd,
            shell=True,
            env=environ,
            cwd=cwd,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
            preexec_fn=raise_nofile if nofile else None,
        )
        if not pb.wait_ready(self.port, self.proc):
            self.close()
            raise RuntimeError(f"{name} did not start or answer 200; log: {self.log_path}")
        self._stop = pb.stop

    def worker_pid(self) -> int:
        """The process that serves: Ferrule's logged worker, else the server's process when it
        has no children, else the one child holding the listening socket."""
        if self.name.startswith("ferrule"):
            m = re.search(r"Booting worker with pid: (\d+)", self.log_path.read_text())
            if m:
                return int(m[1])
        pids = [self.proc.pid, *children(self.proc.pid)]
        if len(pids) == 1:
            return pids[0]
        ss = subprocess.run(
            ["ss", "-Htlnp", f"sport = :{self.port}"], capture_output=True, text=True, check=False
        ).stdout
        owners = {int(p) for p in re.findall(r"pid=(\d+)", ss)} & set(pids[1:])
        if len(owners) == 1:
            return owners.pop()
        raise SystemExit(f"cannot tell the worker of {self.name} among {pids}: {ss!r}")

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def versions(
    names: tuple[str, ...] = ("ferrule", "granian", "bjoern", "fastwsgi", "gunicorn", "flask"),
) -> str:
    parts = []
    for n in names:
        try:
            parts.append(f"{n} {metadata.version(n)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(parts)


def machine() -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"{now} on {platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}"


def write_fragment(name: str, title: str, body: str) -> Path:
    """results/NAME.md: a heading, the command that made it, when and where, then BODY."""
    RESULTS.mkdir(exist_ok=True)
    cmd = " ".join(["python", Path(sys.argv[0]).name, *sys.argv[1:]])
    text = f"### {title}\n\n`{cmd}`, run {machine()}; {versions()}.\n\n{body.strip()}\n"
    path = RESULTS / f"{name}.md"
    path.write_text(text)
    print(text)
    return path
