"""Importing this module fails (tests/test_cli.py)."""


def _configure():
    raise RuntimeError("settings are missing at import")


_configure()
