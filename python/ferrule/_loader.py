"""Finds the WSGI callable that ``APP`` names (runs in each worker, after the fork)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

#: A callable handed to ``ferrule.serve()`` directly, and the spec that names it.
PRELOADED: Callable[..., Any] | None = None
PRELOADED_SPEC = "ferrule._loader:PRELOADED"


class AppLoadError(Exception):
    """The APP argument does not name a usable WSGI callable; the message says why."""


def _import_error(what: str) -> AppLoadError:
    return AppLoadError(f"{what}\n{traceback.format_exc()}".rstrip())


def _import_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is not None and (name == e.name or name.startswith(e.name + ".")):
            raise AppLoadError(
                f"Failed to find application module {name!r}: no module named {e.name!r} "
                f"(sys.path starts with {sys.path[0]!r}; use --chdir or --pythonpath)"
            ) from None
        raise _import_error(f"Error importing application module {name!r}:") from None
    except BaseException:
        raise _import_error(f"Error importing application module {name!r}:") from None


def _import_file(path: str) -> Any:
    full = os.path.abspath(path)
    if not os.path.isfile(full):
        raise AppLoadError(f"Failed to find application file {path!r}: no such file")
    name = os.path.splitext(os.path.basename(full))[0]
    sys.path.insert(0, os.path.dirname(full))
    spec = importlib.util.spec_from_file_location(name, full)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"Cannot load {path!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        raise _import_error(f"Error importing application file {path!r}:") from None
    return module


def _parse_call(expr: str) -> tuple[str, tuple[Any, ...], dict[str, Any]] | None:
    """``create_app("prod", debug=False)`` -> ("create_app", ("prod",), {"debug": False})."""
    try:
        node = ast.parse(expr.strip(), mode="eval").body
    except SyntaxError as e:
        raise AppLoadError(f"Cannot parse {expr!r}: {e.msg}") from None
    if not isinstance(node, ast.Call):
        return None
    func = ast.unparse(node.func)
    try:
        args = tuple(ast.literal_eval(a) for a in node.args)
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg is not None}
    except ValueError:
        raise AppLoadError(f"Arguments in {expr!r} must be literals (strings, numbers, ...)") from None
    return func, args, kwargs


def _set_path(pythonpath: list[str]) -> None:
    cwd = os.getcwd()
    for path in [*reversed(pythonpath), cwd]:
        path = os.path.abspath(path)
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)


def source_dir(spec: str | None, pythonpath: list[str]) -> str | None:
    """The directory ``--reload`` watches: the app's top-level package, or the directory of
    its module or file. Found without running the app's code (only its top-level name is
    looked up)."""
    if spec is None or spec == PRELOADED_SPEC:
        return None
    module_part = spec.partition(":")[0]
    if module_part.endswith(".py") or os.sep in module_part:
        return os.path.dirname(os.path.abspath(module_part))
    _set_path(pythonpath)
    try:
        found = importlib.util.find_spec(module_part.split(".")[0])
    except (ImportError, ValueError):
        return None
    if found is None:
        return None
    if found.submodule_search_locations:
        return next(iter(found.submodule_search_locations), None)
    if found.origin and os.path.isfile(found.origin):
        return os.path.dirname(os.path.abspath(found.origin))
    return None


def load_paste(uri: str, pythonpath: list[str]) -> Callable[..., Any]:
    """``--paste INI[#NAME]``: the app PasteDeploy builds from the file (see ``_paste``)."""
    from ferrule import _paste

    _set_path(pythonpath)
    return _paste.load(uri)


def load(spec: str | None, pythonpath: list[str]) -> Callable[..., Any]:
    """Returns the WSGI callable named by ``spec``; raises AppLoadError saying what is wrong."""
    _set_path(pythonpath)
    if spec is None:
        spec = "ferrule._demo:app"
    if spec == PRELOADED_SPEC and PRELOADED is not None:
        return PRELOADED
    module_part, _, attr = spec.partition(":")
    if not module_part:
        raise AppLoadError(
            f"APP {spec!r} names no module; write module:attr, as in myproject.wsgi:application"
        )
    if module_part.endswith(".py") or os.sep in module_part:
        module = _import_file(module_part)
    else:
        module = _import_module(module_part)
    call = None
    if not attr:
        names = [n for n in ("application", "app") if hasattr(module, n)]
        if not names:
            raise AppLoadError(
                f"Module {module_part!r} has no 'application' or 'app'; "
                f"name the callable, as in {module_part}:myapp"
            )
        attr = names[0]
    else:
        call = _parse_call(attr)
        if call is not None:
            attr = call[0]
    obj: Any = module
    for part in attr.split("."):
        if not part.isidentifier():
            raise AppLoadError(f"{attr!r} in APP {spec!r} is not a Python name")
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(f"Failed to find attribute {attr!r} in {module_part!r}") from None
    if call is not None:
        try:
            obj = obj(*call[1], **call[2])
        except BaseException:
            raise _import_error(f"Error calling the application factory {spec!r}:") from None
    if obj is None or not callable(obj):
        raise AppLoadError(
            f"{spec!r} is a {type(obj).__name__}, not a callable; APP must name a WSGI application"
        )
    return obj
