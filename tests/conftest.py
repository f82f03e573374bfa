"""Starts the real `ferrule` process on port 0 and reads the bound address from its log."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

APPS = Path(__file__).parent / "apps"
LISTEN_RE = re.compile(r"Listening at: (\w+)://(unix:\S+|\[[^\]]+\]:\d+|[^\s:]+:\d+) \((\d+)\)")


class Server:
    """A running `ferrule` process. `log` gathers its stderr lines as they come."""

    def __init__(
        self,
        args: list[str],
        cwd: Path = APPS,
        env: dict[str, str] | None = None,
        wait: bool = True,
        timeout: float = 30.0,
        pass_fds: tuple[int, ...] = (),
        prefix: list[str] | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.args = args
        self.log: list[str] = []
        self.stdout: list[str] = []
        self._cond = threading.Condition()
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen(
            [*(prefix or []), *(command or [sys.executable, "-m", "ferrule"]), *args],
            pass_fds=pass_fds,
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._pumps = [
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.log), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout), daemon=True),
        ]
        for t in self._pumps:
            t.start()
        self.binds: list[tuple[str, str]] = []
        if wait:
            self.wait_ready(timeout)

    def _pump(self, stream, sink: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            with self._cond:
                sink.append(raw.decode("utf-8", "replace"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for_log(self, pattern: str, timeout: float = 10.0, count: int = 1) -> re.Match[str]:
        """Waits until `count` stderr lines match `pattern` (a regex); returns the last match."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                matches = [m for line in self.log if (m := rx.search(line))]
                if len(matches) >= count:
                    return matches[count - 1]
                left = end - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._cond.wait(0.2)):
                    raise AssertionError(f"no log line matching {pattern!r}; log:\n{self.text}")
                self._cond.wait(min(left, 0.2))

    def wait_ready(self, timeout: float = 30.0) -> None:
        self.wait_for_log(r"Booting worker with pid", timeout)
        with self._cond:
            for line in self.log:
                if m := LISTEN_RE.search(line):
                    self.binds.append((m.group(1), m.group(2)))

    @property
    def text(self) -> str:
        with self._cond:
            return "".join(self.log)

    @property
    def host(self) -> str:
        return self.binds[0][1].rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.binds[0][1].rsplit(":", 1)[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.binds[0][0] == "https" else "http"
        return f"{scheme}://{self.binds[0][1]}"

    def connect(self, timeout: float = 10.0) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def raw(self, data: bytes, timeout: float = 10.0) -> bytes:
        """Sends `data` on a fresh connection and reads until the server closes it."""
        with self.connect(timeout) as s:
            s.sendall(data)
            return read_all(s)

    def wait(self, timeout: float = 10.0) -> int:
        """Waits for the process to exit and for its output to be read; returns the exit code."""
        code = self.proc.wait(timeout)
        for t in self._pumps:
            t.join(5)
        return code

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # stray workers, if any
        except (ProcessLookupError, PermissionError):
            pass
        return self.proc.returncode


def read_all(s: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def read_response(s: socket.socket, buf: bytearray | None = None) -> tuple[bytes, dict[str, str], bytes]:
    """Reads one HTTP/1.1 response (Content-Length, chunked or until close) from `s`.

    Returns (status line, headers with lower-case names, body). Extra bytes stay in `buf`."""
    buf = bytearray() if buf is None else buf
    while b"\r\n\r\n" not in buf:
        data = s.recv(65536)
        if not data:
            raise ConnectionError(f"closed before a full head: {bytes(buf)!r}")
        buf += data
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    buf[:] = rest
    lines = head.split(b"\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    status = lines[0]
    code = int(status.split()[1])
    if code in (204, 304) or 100 <= code < 200:
        return status, headers, b""
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(buf) < n:
            data = s.recv(65536)
            if not data:
                break
            buf += data
        body = bytes(buf[:n])
        del buf[:n]
        return status, headers, body
    if headers.get("transfer-encoding") == "chunked":
        body = bytearray()
        while True:
            while b"\r\n" not in buf:
                buf += s.recv(65536)
            line, _, _ = bytes(buf).partition(b"\r\n")
            size = int(line, 16)
            del buf[: len(line) + 2]
            while len(buf) < size + 2:
                buf += s.recv(65536)
            body += buf[:size]
            del buf[: size + 2]
            if size == 0:
                return status, headers, bytes(body)
    body = bytes(buf) + read_all(s)
    buf.clear()
    return status, headers, body


@pytest.fixture
def appdir(tmp_path: Path) -> Path:
    """A temporary directory holding a copy of apps/supervised.py, for tests that edit it."""
    shutil.copy(APPS / "supervised.py", tmp_path / "supervised.py")
    return tmp_path


@pytest.fixture
def serve() -> Iterator:
    """`serve("app_module:app", "--threads", "4")` starts a server; all are stopped afterwards."""
    servers: list[Server] = []

    def start(app: str | None, *args: str, **kw) -> Server:
        argv = ["-b", "127.0.0.1:0", *args] + ([app] if app else [])
        srv = Server(argv, **kw)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


@pytest.fixture(params=["inline", "threads"])
def serve_both(request, serve) -> Iterator:
    """Like `serve`, run twice: the app inline on the I/O thread (`--threads 1`, the default)
    and on a pool of app threads (`--threads 4`). `serve_both.threaded` tells which."""

    def start(app: str | None, *args: str, **kw) -> Server:
        extra = ("--threads", "4") if request.param == "threads" else ()
        return serve(app, *extra, *args, **kw)

    start.threaded = request.param == "threads"
    yield start
