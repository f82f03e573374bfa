"""`app` is not callable (tests/test_cli.py)."""

app = 42
