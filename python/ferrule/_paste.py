"""PasteDeploy: ``ferrule --paste app.ini[#name]`` and the ``paste.server_runner`` entry point.

``--paste`` loads the app with ``paste.deploy.loadapp`` (in each worker, as any app), applies
the file's logging sections when it has ``[loggers]``, and, when its ``[server:main]`` says
``use = egg:ferrule``, takes that section's keys as options (below every other source). Under
``pserve``, ``[server:main] use = egg:ferrule`` calls :func:`main` with the loaded app.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Callable
from typing import Any

#: `use =` values that name this server.
USES = ("egg:ferrule", "egg:ferrule#main", "call:ferrule._paste:main")
#: Keys of a PasteDeploy section that are not options.
NOT_OPTIONS = ("use", "here", "__file__")
BOOLEANS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def split_uri(uri: str) -> tuple[str, str | None]:
    """``config:app.ini#name`` -> (absolute path, name or None)."""
    path, _, name = uri.partition("#")
    path = path.removeprefix("config:")
    return os.path.abspath(path), name or None


def _parser(path: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(defaults={"here": os.path.dirname(path), "__file__": path})
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    with open(path, encoding="utf-8") as f:
        parser.read_file(f)
    return parser


def _bind(options: dict[str, str]) -> list[str] | None:
    """``host``/``port`` (or waitress's ``listen``) as --bind values."""
    host = options.pop("host", None)
    port = options.pop("port", None)
    listen = options.pop("listen", None)
    if listen:
        return [b.replace("*:", "0.0.0.0:") for b in listen.split()]
    if port:
        return [f"{host or '127.0.0.1'}:{port}"]
    if host:
        return [host]
    return None


def server_options(path: str, section: str = "server:main") -> dict[str, str]:
    """The options ``[server:main]`` gives Ferrule (none unless it uses egg:ferrule)."""
    parser = _parser(path)
    if not parser.has_section(section) or parser.get(section, "use", fallback="").strip() not in USES:
        return {}
    defaults = set(parser.defaults())
    return {k: v for k, v in parser.items(section) if k not in NOT_OPTIONS and k not in defaults}


def server_settings(path: str) -> list[tuple[str, str, list[str], int | None]]:
    """``[server:main]`` as config settings (name, kind, values, line), for the sources."""
    options = server_options(path)
    binds = _bind(options)
    settings: list[tuple[str, str, list[str], int | None]] = []
    if binds:
        settings.append(("bind", "list", binds, None))
    settings += [(k, "str", [v], None) for k, v in options.items()]
    return settings


def load(uri: str) -> Callable[..., Any]:
    """The app of ``uri`` (``app.ini`` or ``app.ini#name``), through ``paste.deploy.loadapp``,
    after the file's logging config."""
    from ferrule._loader import AppLoadError, _import_error

    path, name = split_uri(uri)
    if not os.path.isfile(path):
        raise AppLoadError(f"--paste {uri!r}: no such file")
    try:
        from paste.deploy import loadapp
    except ImportError:
        raise AppLoadError("--paste needs PasteDeploy: pip install pastedeploy") from None
    try:
        if _parser(path).has_section("loggers"):
            import logging.config

            logging.config.fileConfig(
                path,
                defaults={"here": os.path.dirname(path), "__file__": path},
                disable_existing_loggers=False,
            )
        return loadapp(f"config:{path}", name=name, relative_to=os.getcwd())
    except BaseException:
        raise _import_error(f"Error loading the app from {uri!r}:") from None


def main(wsgi_app: Callable[..., Any], global_conf: dict[str, Any], **kw: str) -> int:
    """``paste.server_runner``: serves the app ``pserve`` loaded, with the section's keys as
    options (``host``, ``port``, ``workers``, ``threads``, any long option with ``_``)."""
    from ferrule import serve

    del global_conf
    options: dict[str, Any] = {k: v for k, v in kw.items() if k not in NOT_OPTIONS}
    binds = _bind(options)
    if binds:
        options["bind"] = binds
    for key, value in options.items():
        if isinstance(value, str) and value.strip().lower() in BOOLEANS:
            options[key] = BOOLEANS[value.strip().lower()]
    return serve(wsgi_app, **options)
