"""p99 latency at a fixed request rate, measured with oha (plaintext, 64 connections).

Each server (one worker) is pinned to CPU 0 and oha to CPU 1; oha holds --rate requests/s
(20,000) for --duration seconds with --latency-correction, so a stall counts for every request
that should have been sent during it (no coordinated omission). Rounds alternate the servers;
the table gives the median over rounds of p50, p99, p99.9 and the rate reached; errors are
answers other than 200 and failed requests, not those cut off by the end of the run. Writes
results/latency.md. Needs oha (`cargo install oha`; `make deps` installs it).
Usage: python latency.py [--rate 20000] [--duration 10] [--rounds 1] [SERVER ...]
       (default: ferrule granian bjoern fastwsgi)
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import time

from common import PINNED, Server, write_fragment

PEERS_DEFAULT = ["ferrule", "granian", "bjoern", "fastwsgi"]


def json_flags() -> list[str]:
    """oha >= 1.9 says `--output-format json`; older ones `-j`."""
    text = subprocess.run(["oha", "--help"], capture_output=True, text=True, check=True).stdout
    return ["--output-format", "json"] if "--output-format" in text else ["-j"]


def oha(port: int, rate: int, duration: int, conns: int) -> dict[str, float]:
    cmd = (["taskset", "-c", "1"] if PINNED else []) + [
        "oha",
        "-q",
        str(rate),
        "--latency-correction",
        "-z",
        f"{duration}s",
        "-c",
        str(conns),
        "--no-tui",
        *json_flags(),
        f"http://127.0.0.1:{port}/",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    pct = data["latencyPercentiles"]
    codes = data.get("statusCodeDistribution", {})
    ok = int(codes.get("200", 0))
    # Requests still in flight when -z runs out are "aborted due to deadline": not the server's.
    failed = {k: v for k, v in data.get("errorDistribution", {}).items() if "deadline" not in k}
    if data.get("errorDistribution"):
        print("oha errors:", data["errorDistribution"], flush=True)
    return {
        "rps": float(data["summary"]["requestsPerSec"]),
        "p50": float(pct["p50"]) * 1000,
        "p99": float(pct["p99"]) * 1000,
        "p999": float(pct.get("p99.9", float("nan"))) * 1000,
        "errors": sum(codes.values()) - ok + sum(failed.values()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("servers", nargs="*", default=PEERS_DEFAULT)
    ap.add_argument("--rate", type=int, default=20000)
    ap.add_argument("--duration", type=int, default=10, help="seconds per round")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--conns", type=int, default=64)
    a = ap.parse_args()
    if not shutil.which("oha"):
        raise SystemExit("oha not found: cargo install oha (or make -C bench deps)")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in a.servers}
    for _ in range(a.rounds):
        for name in a.servers:
            try:
                with Server(name) as srv:
                    time.sleep(0.3)
                    runs[name].append(oha(srv.port, a.rate, a.duration, a.conns))
            except (RuntimeError, subprocess.CalledProcessError, ValueError, KeyError) as e:
                print(f"{name}: {e}", flush=True)
            print(name, runs[name][-1:], flush=True)
    rows = [
        "| server | req/s reached | p50 ms | p99 ms | p99.9 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    p99: dict[str, float] = {}
    for name, rs in runs.items():
        if not rs:
            rows.append(f"| {name} | did not run | - | - | - | - |")
            continue
        med = {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99", "p999")}
        errors = sum(r["errors"] for r in rs)
        p99[name] = med["p99"]
        rows.append(
            f"| {name} | {med['rps']:.0f} | {med['p50']:.2f} | {med['p99']:.2f} | {med['p999']:.2f} | "
            f"{errors:.0f} |"
        )
    verdict = ""
    peers = {n: v for n, v in p99.items() if n != "ferrule"}
    if "ferrule" in p99 and peers:
        best = min(peers, key=peers.__getitem__)
        met = p99["ferrule"] <= peers[best]
        verdict = (
            f"\n\nBest peer: {best}, p99 {peers[best]:.2f} ms; Ferrule p99 {p99['ferrule']:.2f} ms "
            f"(target <= best peer: {'met' if met else 'NOT met'})."
        )
    note = (
        f"oha `-q {a.rate} --latency-correction -z {a.duration}s -c {a.conns}`, "
        f"{'server on CPU 0, oha on CPU 1' if PINNED else 'not pinned'}; medians of {a.rounds} round(s)."
    )
    write_fragment(
        "latency",
        f"Latency at a fixed {a.rate:,} req/s, plaintext",
        note + "\n\n" + "\n".join(rows) + verdict,
    )


if __name__ == "__main__":
    main()
