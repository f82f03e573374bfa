"""The idle worker's memory: its VmRSS against a bare `python -c 'import apps'`.

Starts each server on apps:plaintext (one worker), waits for its first 200 answer, lets it sit
idle for a second and reads the serving process's VmRSS from /proc/PID/status; the baseline is
the same interpreter running only `import apps` (../../shared/bench/apps.py). Medians of
--rounds starts. Writes results/idle_rss.md.
Usage: python idle_rss.py [--rounds 3] [SERVER ...]   (default: ferrule granian bjoern fastwsgi)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from common import SHARED, Server, rss_kib, write_fragment

TARGET_MIB = 6.0
# `time` is built into the interpreter, so the baseline imports nothing but apps.
BARE = "import apps, time; print('ready', flush=True); time.sleep(60)"


def bare_kib() -> int:
    env = dict(os.environ, PYTHONPATH=str(SHARED), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.Popen([sys.executable, "-c", BARE], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(1.0)
        return rss_kib(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def server_kib(name: str) -> int:
    with Server(name) as srv:
        time.sleep(1.0)
        return rss_kib(srv.worker_pid())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("servers", nargs="*", default=["ferrule", "granian", "bjoern", "fastwsgi"])
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    samples: dict[str, list[int]] = {"bare `python -c 'import apps'`": []}
    samples.update({name: [] for name in a.servers})
    for _ in range(a.rounds):
        samples["bare `python -c 'import apps'`"].append(bare_kib())
        for name in a.servers:
            try:
                samples[name].append(server_kib(name))
            except RuntimeError as e:
                print(e)
    bare = statistics.median(samples["bare `python -c 'import apps'`"])
    rows = ["| process | RSS MiB | over bare MiB |", "|---|---:|---:|"]
    for name, kib in samples.items():
        if not kib:
            rows.append(f"| {name} | did not start | - |")
            continue
        rss = statistics.median(kib)
        rows.append(f"| {name} | {rss / 1024:.1f} | {(rss - bare) / 1024:+.1f} |")
    verdict = ""
    if samples.get("ferrule"):
        over = (statistics.median(samples["ferrule"]) - bare) / 1024
        verdict = (
            f"\n\nFerrule's idle worker: {over:+.1f} MiB over bare (target <= +{TARGET_MIB:g} MiB: "
            f"{'met' if over <= TARGET_MIB else 'NOT met'})."
        )
    body = "\n".join(rows) + verdict
    note = f"Medians of {a.rounds} starts; serving process of each server (Ferrule: its worker)."
    write_fragment("idle_rss", "Idle worker RSS", note + "\n\n" + body)


if __name__ == "__main__":
    main()
