"""A module with `app` and no `application` (tests/test_cli.py)."""

from cli_app import _named

app = _named("only app")
