"""ferrule.serve() from Python: the caller's code after it runs once, in the master only;
forked workers end inside serve() (after their atexit handlers)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time

import requests

SCRIPT = textwrap.dedent(
    """
    import atexit, os, sys
    import ferrule

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"from serve()"]

    out = sys.argv[1]
    atexit.register(lambda: open(out + ".atexit", "a").write(f"{os.getpid()}\\n"))
    code = ferrule.serve(app, bind="127.0.0.1:0", workers=2)
    with open(out, "a") as f:
        f.write(f"returned {code} in {os.getpid()}\\n")
    """
)


def test_serve_returns_in_the_master_only(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out.txt"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out)], stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        port = None
        workers = 0
        deadline = time.monotonic() + 30
        while (port is None or workers < 2) and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if m := re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line):
                port = int(m.group(1))
            workers += "Booting worker" in line
        assert port is not None and workers == 2
        assert requests.get(f"http://127.0.0.1:{port}/").text == "from serve()"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert out.read_text() == f"returned 0 in {proc.pid}\n"
    # The workers ran their atexit handlers too, then ended without returning.
    pids = out.with_name("out.txt.atexit").read_text().split()
    assert str(proc.pid) in pids and len(pids) == 3
