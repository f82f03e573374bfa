"""The page ``ferrule`` serves when no APP is given: the server and the request it received."""

from __future__ import annotations

import html
import platform
from collections.abc import Callable, Iterable
from typing import Any

from ferrule import __version__


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(repr(v) if not isinstance(v, str) else v)}</td></tr>"
        for k, v in sorted(environ.items())
    )
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Ferrule</title>"
        "<style>body{font-family:sans-serif;margin:2em}th{text-align:left;padding-right:1em}"
        "td,th{font-size:0.9em;vertical-align:top}</style></head><body>"
        f"<h1>Ferrule {html.escape(__version__)}</h1>"
        f"<p>Python {html.escape(platform.python_version())} "
        f"({html.escape(platform.python_implementation())}). "
        "Serve your own app with <code>ferrule module:app</code>.</p>"
        f"<h2>Your request</h2><table>{rows}</table></body></html>"
    ).encode()
    start_response(
        "200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))]
    )
    return [body]
