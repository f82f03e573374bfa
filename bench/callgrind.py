"""Instructions per plaintext request, counted by callgrind: repeatable on a noisy machine.

Runs the worker under `valgrind --tool=callgrind` twice, serving FEW and then MANY keep-alive
requests of ../../shared/bench/apps.py:plaintext, and reports (MANY total - FEW total) /
(MANY - FEW): the instructions one request costs in the worker, start-up cancelled out.
Writes results/callgrind.txt (the line) and results/callgrind.md (for report.py).
Usage: python callgrind.py [--few 200] [--many 2200] [--args "--metrics-bind 127.0.0.1:0"]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, SHARED, write_fragment

FERRULE = Path(sys.executable).parent / "ferrule"
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: callgrind\r\nAccept: */*\r\n\r\n"


def worker_instructions(n: int, extra: list[str]) -> int:
    out = Path(tempfile.mkdtemp(prefix="ferrule-cg-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}/cg.%p",
        str(FERRULE),
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        "1",
        *extra,
        "apps:plaintext",
    ]
    env = dict(os.environ, PYTHONPATH=str(SHARED), PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0")
    log = open(out / "log", "w+")
    proc = subprocess.Popen(cmd, stderr=log, stdout=log, env=env, start_new_session=True)
    try:
        deadline = time.time() + 120
        while "Booting worker with pid" not in (out / "log").read_text():
            if time.time() > deadline or proc.poll() is not None:
                raise SystemExit(f"ferrule did not start under valgrind:\n{(out / 'log').read_text()}")
            time.sleep(0.2)
        worker = re.search(r"Booting worker with pid: (\d+)", (out / "log").read_text())[1]
        with socket.create_connection(("127.0.0.1", port), timeout=60) as c:
            for _ in range(n):
                c.sendall(REQUEST)
                got = b""
                while not got.endswith(b"Hello, World!"):
                    data = c.recv(4096)
                    if not data:
                        raise SystemExit("connection closed")
                    got += data
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    text = (out / f"cg.{worker}").read_text(errors="replace")
    m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    if not m:
        raise SystemExit(f"no totals in {out}/cg.{worker}")
    return int(m[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--few", type=int, default=200)
    ap.add_argument("--many", type=int, default=2200)
    ap.add_argument("--args", default="", help="more ferrule arguments, such as --metrics-bind 127.0.0.1:0")
    a = ap.parse_args()
    extra = a.args.split()
    few = worker_instructions(a.few, extra)
    many = worker_instructions(a.many, extra)
    per = (many - few) / (a.many - a.few)
    how = f"callgrind, {a.few} vs {a.many}" + (f", with {a.args}" if extra else "")
    line = f"plaintext: {per:,.0f} instructions per request in the worker ({how})"
    print(line)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "callgrind.txt").write_text(line + "\n")
    write_fragment("callgrind", "Instructions per plaintext request (callgrind)", line)


if __name__ == "__main__":
    main()
