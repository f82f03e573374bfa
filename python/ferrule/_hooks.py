"""Server hooks set in a config file (``-c ferrule.conf.py``), and the objects they receive.

Every hook runs inside ``call``: one that raises is logged with its traceback and the server
carries on. The arguments:

- ``server`` (``on_starting``, ``when_ready``, ``child_exit``, ``worker_exit``, ``on_exit``,
  ``post_fork``): a :class:`Server`, with ``pid`` (the master's), ``cfg`` and ``log``.
- ``worker`` (``post_fork``, ``pre_request``, ``post_request``, ``worker_exit``,
  ``child_exit``): a :class:`Worker`, with ``pid``, ``ppid``, ``cfg`` and ``log``; in
  ``child_exit`` also ``exitcode`` (None when a signal ended it) and ``status`` (text).
- ``pre_request(worker, environ)`` runs before the app with the request's environ;
  ``post_request(worker, environ, status)`` after the response, ``status`` being the
  status code as an int.

``cfg`` holds the options in effect by name (``cfg.workers``, ``cfg.bind``); ``log`` writes
to the error log (``log.info("...")``, ``log.exception("...")``).
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

NAMES = (
    "on_starting",
    "when_ready",
    "post_fork",
    "pre_request",
    "post_request",
    "child_exit",
    "worker_exit",
    "on_exit",
)

HOOKS: dict[str, Callable[..., Any]] = {}
CFG = SimpleNamespace()


class Log:
    """The error log, for hooks: ``log.info("workers: %s", n)``."""

    def _write(self, level: str, msg: str, args: tuple[Any, ...]) -> None:
        from ferrule._native import log

        log(level, msg % args if args else str(msg))

    def debug(self, msg: str, *args: Any) -> None:
        self._write("debug", msg, args)

    def info(self, msg: str, *args: Any) -> None:
        self._write("info", msg, args)

    def warning(self, msg: str, *args: Any) -> None:
        self._write("warning", msg, args)

    def error(self, msg: str, *args: Any) -> None:
        self._write("error", msg, args)

    def exception(self, msg: str, *args: Any) -> None:
        self._write("error", f"{msg}\n{traceback.format_exc()}", args)


LOG = Log()


class Server:
    """The master, as hooks see it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cfg = CFG
        self.log = LOG

    def __repr__(self) -> str:
        return f"<ferrule master pid={self.pid}>"


class Worker:
    """A worker, as hooks see it."""

    def __init__(self, pid: int, ppid: int, exitcode: int | None = None, status: str = "") -> None:
        self.pid = pid
        self.ppid = ppid
        self.cfg = CFG
        self.log = LOG
        self.exitcode = exitcode
        self.status = status

    def __repr__(self) -> str:
        return f"<ferrule worker pid={self.pid}>"


#: In a worker: the object its hooks receive (set at post_fork).
WORKER = Worker(os.getpid(), os.getppid())


def install(hooks: dict[str, Callable[..., Any]], cfg: dict[str, Any]) -> None:
    global CFG
    HOOKS.clear()
    HOOKS.update(hooks)
    CFG = SimpleNamespace(**cfg)


def has(name: str) -> bool:
    return name in HOOKS


def call(name: str, *args: Any) -> None:
    hook = HOOKS.get(name)
    if hook is None:
        return
    try:
        hook(*args)
    except BaseException:
        LOG.error("Exception in the %s hook:\n%s", name, traceback.format_exc().rstrip())


def master_hook(name: str) -> None:
    """on_starting, when_ready, on_exit: called in the master."""
    call(name, Server(os.getpid()))


def post_fork() -> None:
    global WORKER
    WORKER = Worker(os.getpid(), os.getppid())
    call("post_fork", Server(WORKER.ppid), WORKER)


def worker_exit() -> None:
    call("worker_exit", Server(os.getppid()), WORKER)


def child_exit(pid: int, exitcode: int | None, status: str) -> None:
    call("child_exit", Server(os.getpid()), Worker(pid, os.getpid(), exitcode, status))


def pre_request(environ: dict[str, Any]) -> None:
    call("pre_request", WORKER, environ)


def post_request(environ: dict[str, Any], status: int) -> None:
    call("post_request", WORKER, environ, status)
