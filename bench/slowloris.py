"""Issue 19's figures: request body buffering and slow clients, one worker, the server on CPU 0.

Rows:
- upload: peerbench's upload app with a 64 KiB and a 16 MiB body, `wrk -c 16`, Ferrule as
  built (bodies buffered before the app runs) against `--no-request-buffering` (the streaming
  `wsgi.input` of before) and Granian, servers alternating inside one peerbench run.
- slowloris: a normal client's latency (a new connection per request, 20 a second, on CPU 1)
  while an attack runs, Ferrule inline and with `--threads 4`, buffered and not: no attack,
  500 connections dripping request heads, 4 x threads and 200 connections dripping 4,000-byte
  bodies, one byte per 0.2 s each (tests/slowclients.py drives them). p50, p99 and the
  slowest, over the attack's `--seconds`; requests unanswered within 5 s are counted apart.
  With the default --body-min-rate the buffered body drippers get 408 after 5 s, about half
  way through; unbuffered they hold the app threads to the end (no rate unless given).

  python slowloris.py --seconds 10        # uploads: 3 rounds of 5 s (--quick: 1 of 3 s)
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from pathlib import Path

from common import PEERBENCH, Server, peerbench, pin_client, raise_nofile, write_fragment
from run import run

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from slowclients import Drippers  # noqa: E402

HEAD = b"GET / HTTP/1.1\r\nHost: x\r\nX-Drip: "
BODY = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n"
NORMAL = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
GIVE_UP = 5.0


def one_request(port: int) -> float | None:
    """Seconds for one normal request on a new connection (None: no answer within GIVE_UP)."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP) as s:
            s.sendall(NORMAL)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return None
    took = time.monotonic() - started
    return took if data.startswith(b"HTTP/1.1 200") and took < GIVE_UP else None


def normal_client(port: int, seconds: float, rate: float = 20.0) -> tuple[list[float], int]:
    """Requests at `rate` a second for `seconds`: (latencies, requests unanswered)."""
    took: list[float] = []
    missed = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        r = one_request(port)
        if r is None:
            missed += 1
        else:
            took.append(r)
        time.sleep(max(0.0, 1 / rate - (time.monotonic() - t0)))
    return took, missed


def attack(port: int, kind: str, threads: int) -> Drippers | None:
    if kind == "none":
        return None
    if kind == "heads-500":
        return Drippers(("127.0.0.1", port), 500, HEAD)
    n = 200 if kind == "bodies-200" else 4 * threads
    return Drippers(("127.0.0.1", port), n, BODY)


def slowloris(seconds: float) -> str:
    pin_client()
    rows = [
        "| ferrule | attack | normal p50 ms | p99 ms | slowest ms | unanswered |",
        "|---|---|---:|---:|---:|---:|",
    ]
    setups = [
        ("inline", 1, ""),
        ("--threads 4", 4, ""),
        ("--threads 4 --no-request-buffering", 4, "--no-request-buffering"),
    ]
    for label, threads, extra in setups:
        for kind in ("none", "heads-500", "bodies-4xthreads", "bodies-200"):
            if kind == "heads-500" and extra:
                continue  # heads do not depend on body buffering
            with Server("ferrule", app="upload", extra=extra, nofile=True, threads=threads) as srv:
                drips = attack(srv.port, kind, threads)
                try:
                    if drips:
                        drips.wait_opened()
                        time.sleep(1.0)  # the drips under way
                    took, missed = normal_client(srv.port, seconds)
                finally:
                    if drips:
                        drips.__exit__(None, None, None)
            took.sort()
            name = kind.replace("4xthreads", f"{4 * threads}")
            if took:
                p99 = took[min(len(took) - 1, int(len(took) * 0.99))]
                figures = " | ".join(f"{t * 1000:.2f}" for t in (statistics.median(took), p99, took[-1]))
            else:
                figures = "none answered | - | -"
            rows.append(f"| {label} | {name} | {figures} | {missed} |")
            print(rows[-1], flush=True)
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="uploads: 1 round of 3 s (else 3 of 5 s)")
    ap.add_argument("--seconds", type=float, default=10, help="seconds of normal requests per attack")
    ap.add_argument("--only", nargs="*", default=["upload", "slowloris"])
    args = ap.parse_args()
    raise_nofile()
    parts = []
    if "upload" in args.only:
        streaming = f"ferrule-streaming={peerbench().SERVERS['ferrule']} --no-request-buffering"
        lines = [
            "| body | server | req/s | p50 ms | p99 ms | errors | ratio |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for body in ("65536", "16777216"):
            argv = ["--app", "upload", "--body", body, "--conns", "16", "--cmd", streaming]
            servers = ["ferrule", "ferrule-streaming", "granian"]
            for r in run(str(PEERBENCH), f"upload-{body}", argv, servers, args.quick):
                cells = [f"{int(body) // 1024} KiB", *(r[k] for k in ("server", "rps", "p50", "p99"))]
                cells.append(r["errors"])
                lines.append("| " + " | ".join([*cells, f"{r['ratio']} {r['note']}".strip()]) + " |")
        parts.append(
            "Uploads, `wrk -c 16`, medians of the rounds; `ferrule` buffers bodies (the default), "
            "`ferrule-streaming` is `--no-request-buffering` (before issue 19).\n\n" + "\n".join(lines)
        )
    if "slowloris" in args.only:
        parts.append(
            f"A normal client during each attack, a new connection per request, 20 a second for "
            f"{args.seconds:g} s, each given up after {GIVE_UP:g} s (unanswered); drips are one byte "
            "per 0.2 s per connection.\n\n" + slowloris(args.seconds)
        )
    write_fragment("slowloris", "Body buffering and slow clients (issue 19)", "\n\n".join(parts))


if __name__ == "__main__":
    main()
