"""Smoke test for one Python version: the installed wheel serves a Flask app."""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import requests  # noqa: E402
from conftest import Server  # noqa: E402

APP = """
from flask import Flask
app = Flask(__name__)

@app.route("/")
def index():
    return {"ok": True}
"""

with tempfile.TemporaryDirectory() as d:
    Path(d, "smokeapp.py").write_text(APP)
    srv = Server(["-b", "127.0.0.1:0", "smokeapp:app"], cwd=Path(d))
    try:
        r = requests.get(srv.url, timeout=10)
        assert r.status_code == 200 and r.json() == {"ok": True}, r.text
        print(f"smoke ok on Python {sys.version.split()[0]}")
    finally:
        srv.stop()
