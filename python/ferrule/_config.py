"""Runs a Python config file (``-c FILE``, ``./ferrule.conf.py``, ``./gunicorn.conf.py``).

Module-level names set options: the long options with ``_`` for ``-`` (``workers = 4``,
``bind = ["0.0.0.0:80"]``, ``max_requests = 1000``, ``preload = True``) and gunicorn's setting
names (``preload_app``, ``keepalive``, ``worker_class``, ...): the server decides what each
means (``crates/ferrule/src/sources/gunicorn.rs``) and refuses unknown ones. Functions named
after a hook Ferrule calls (see ``_hooks``) are hooks. Imported names and names starting with
``_`` are ignored; other names the server does not know are an error when they look like a
misspelt setting, else a warning. Each setting comes with its type and the line that set it, so that an error
can name them.
"""

from __future__ import annotations

import ast
import configparser
import os
import runpy
import traceback
import types
from collections.abc import Callable
from typing import Any

from ferrule._hooks import NAMES as HOOK_NAMES


class ConfigError(Exception):
    """The config file cannot be used; the message says why."""


def _lines(path: str) -> tuple[dict[str, int], set[str]]:
    """The last line that binds each module-level name (outside functions and classes), and
    the names bound by imports."""
    lines: dict[str, int] = {}
    imported: set[str] = set()
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return lines, imported

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                lines[node.name] = node.lineno
                continue
            if isinstance(node, ast.Import | ast.ImportFrom):
                imported.update((a.asname or a.name).split(".")[0] for a in node.names)
                continue
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign | ast.AugAssign):
                targets = [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        lines[name.id] = node.lineno
            for field in ("body", "orelse", "finalbody"):
                visit(getattr(node, field, []))
            for handler in getattr(node, "handlers", []):
                visit(handler.body)

    visit(tree.body)
    return lines, imported


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, str | int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    return None


def _typed(value: Any) -> tuple[str, list[str]] | None:
    """(kind, values as strings) for the server, or None for a type no setting takes."""
    if isinstance(value, bool):
        return "bool", ["true" if value else "false"]
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "int", [str(int(value))]
    if (text := _text(value)) is not None:
        return "str", [text]
    if isinstance(value, list | tuple | set | frozenset):
        items = [_text(v) for v in value]
        if any(t is None for t in items):
            return None
        return "list", [t for t in items if t is not None]
    if isinstance(value, dict):
        flat: list[str] = []
        for k, v in value.items():
            kt, vt = _text(k), _text(v)
            if kt is None or vt is None:
                return None
            flat += [kt, vt]
        return "dict", flat
    if callable(value):
        module = getattr(value, "__module__", "?")
        return "callable", [f"{module}.{getattr(value, '__qualname__', repr(value))}"]
    return None


def read(path: str) -> tuple[list[tuple[str, str, list[str], int | None]], dict[str, Callable[..., Any]]]:
    """The settings (name, kind, values, line; None values left out) and hooks in ``path``."""
    if path.lower().endswith(".ini"):
        # A PasteDeploy file (--paste): its [server:main] options, no hooks.
        from ferrule import _paste

        try:
            return _paste.server_settings(path), {}
        except (OSError, configparser.Error) as e:
            raise ConfigError(f"--paste {path!r}: {e}") from None
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r}: no such file")
    try:
        namespace = runpy.run_path(path, run_name="__config__")
    except BaseException:
        raise ConfigError(f"error running config file {path!r}:\n{traceback.format_exc().rstrip()}") from None
    lines, imported = _lines(path)
    settings: list[tuple[str, str, list[str], int | None]] = []
    hooks: dict[str, Callable[..., Any]] = {}
    for name, value in namespace.items():
        if name.startswith("_") or isinstance(value, types.ModuleType) or name in imported:
            continue
        line = lines.get(name)
        where = f"{path}:{line}" if line else path
        if name in HOOK_NAMES:
            if not callable(value):
                raise ConfigError(f"{where}: {name} must be a function, not {type(value).__name__}")
            hooks[name] = value
            continue
        if value is None:
            continue
        typed = _typed(value)
        if typed is None:
            raise ConfigError(
                f"{where}: {name} = {value!r}: give a string, a number, True/False, "
                "a list or a dict of strings"
            )
        settings.append((name, typed[0], typed[1], line))
    return settings, hooks
