"""Reads a config file (``-c FILE``): a Python file whose module-level names set options.

Names are the long options with ``_`` for ``-`` (``workers = 4``, ``bind = ["0.0.0.0:80"]``,
``max_requests = 1000``, ``preload = True``); a few gunicorn spellings are accepted too
(``pidfile``, ``preload_app``, ``loglevel``, ``errorlog``, ``accesslog``,
``reload_extra_files``, ``wsgi_app``). Functions named after a hook (see ``_hooks``) are
hooks. Imported modules and names starting with ``_`` are ignored; any other name is an
error, so that a typo does not go unnoticed.
"""

from __future__ import annotations

import os
import runpy
import traceback
import types
from collections.abc import Callable
from typing import Any

from ferrule._hooks import NAMES as HOOK_NAMES

ALIASES = {
    "pidfile": "pid",
    "preload_app": "preload",
    "loglevel": "log_level",
    "errorlog": "error_logfile",
    "accesslog": "access_logfile",
    "reload_extra_files": "reload_extra_file",
    "keepalive": "keep_alive",
    "wsgi_app": "app",
}


class ConfigError(Exception):
    """The config file cannot be used; the message says why."""


def _strings(name: str, value: Any) -> list[str]:
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, list | tuple):
        return [os.fspath(v) if isinstance(v, os.PathLike) else str(v) for v in value]
    if isinstance(value, str | int | float | os.PathLike):
        return [os.fspath(value) if isinstance(value, os.PathLike) else str(value)]
    raise ConfigError(f"{name} = {value!r}: give a string, a number, True/False or a list")


def read(path: str) -> tuple[list[tuple[str, list[str]]], dict[str, Callable[..., Any]]]:
    """The settings (name, values as strings; None values left out) and hooks in ``path``."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r}: no such file")
    try:
        namespace = runpy.run_path(path, run_name="__config__")
    except BaseException:
        raise ConfigError(f"error running config file {path!r}:\n{traceback.format_exc().rstrip()}") from None
    settings: list[tuple[str, list[str]]] = []
    hooks: dict[str, Callable[..., Any]] = {}
    for name, value in namespace.items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if name in HOOK_NAMES:
            if not callable(value):
                raise ConfigError(f"config file {path!r}: {name} must be a function")
            hooks[name] = value
            continue
        if value is None:
            continue
        if callable(value):
            # Not a hook: a typo in a hook's name, or a helper that should start with _.
            settings.append((name, []))
            continue
        settings.append((ALIASES.get(name, name), _strings(name, value)))
    return settings, hooks
