"""Ferrule: a WSGI server written in Rust.

Run it as ``ferrule [OPTIONS] APP`` (see ``ferrule --help``), or from Python::

    import ferrule
    ferrule.serve("myproject.wsgi:application", bind="127.0.0.1:8000", workers=2)
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any

from ferrule._native import __version__

__all__ = ["__version__", "serve"]


def serve(app: str | Callable[..., Any] | None = None, **options: Any) -> int:
    """Serves ``app`` (a spec such as ``"pkg.module:app"``, or a WSGI callable) until stopped.

    Keyword options are the command-line options with ``_`` for ``-``: ``bind="0.0.0.0:8000"``
    (or a list), ``workers=4``, ``threads=8``, ``no_server_header=True``. Returns the exit code.
    """
    from ferrule import _loader
    from ferrule._native import main

    argv: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if key == "limit_request_field_size":
            flag = "--limit-request-field_size"
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list | tuple):
            for v in value:
                argv += [flag, str(v)]
        else:
            argv += [flag, str(value)]
    if callable(app):
        _loader.PRELOADED = app
        argv.append(_loader.PRELOADED_SPEC)
    elif app is not None:
        argv.append(app)
    master = os.getpid()
    code = main(argv)
    if os.getpid() != master:
        # A forked worker: it ends here, after the atexit handlers, and never returns into
        # the caller's code (which belongs to the master).
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    return code
