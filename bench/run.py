"""Runs peerbench.py on every workload of the performance issues and writes the results.

Each workload is one peerbench run (servers alternate within it), so the ratios in one row come
from one run. Writes bench/results/peerbench.md (a Markdown table, merged into latest.md by
report.py) and bench/results/latest.png (ratios as bars).
Usage: python run.py [--peerbench PATH] [--quick] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from common import PEERBENCH, RESULTS, write_fragment

# Ferrule running the plaintext app in the json_app row: the same server work, without the
# app's json.dumps. The gap between it and `ferrule` is what the app's own Python costs, which
# refserver (static bytes) does not pay and no server can save.
PLAINTEXT_FERRULE = (
    f"{Path(sys.executable).parent / 'ferrule'} --bind 127.0.0.1:{{port}} --workers 1 "
    "--threads {threads} apps:plaintext"
)

# name, peerbench arguments, servers (the first named is the ratio's base).
WORKLOADS: list[tuple[str, list[str], list[str]]] = [
    (
        "plaintext",
        ["--app", "plaintext", "--conns", "64"],
        ["refserver", "ferrule", "granian", "bjoern", "fastwsgi", "gunicorn"],
    ),
    (
        "json_app",
        ["--app", "json_app", "--conns", "64", "--cmd", f"ferrule-on-plaintext={PLAINTEXT_FERRULE}"],
        ["refserver", "ferrule", "ferrule-on-plaintext", "granian", "bjoern", "fastwsgi"],
    ),
    (
        "flask_app",
        ["--app", "flask_app", "--conns", "64"],
        ["ferrule", "granian", "bjoern", "fastwsgi", "gunicorn"],
    ),
    (
        "stream",
        ["--app", "stream", "--conns", "16"],
        ["refserver", "ferrule", "granian", "bjoern", "fastwsgi"],
    ),
    ("file", ["--app", "file", "--conns", "16"], ["refserver", "ferrule", "granian", "bjoern", "fastwsgi"]),
    (
        "upload-64k",
        ["--app", "upload", "--body", "65536", "--conns", "16"],
        ["refserver", "ferrule", "granian", "fastwsgi"],
    ),
    (
        "upload-16m",
        ["--app", "upload", "--body", "16777216", "--conns", "16"],
        ["refserver", "ferrule", "granian"],
    ),
    (
        "sleepy-32t",
        ["--app", "sleepy", "--threads", "32", "--conns", "64"],
        ["ferrule", "granian", "gunicorn-gthread"],
    ),
]

ROW = re.compile(r"^(\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+([\d.]+|n/a)(.*)$")


# Rounds per workload: 5 for those with a ratio target, so that one disturbed round of the
# shared machine moves the median less (refserver's own rate swung by a third between runs);
# 3 elsewhere.
ROUNDS = {name: 5 for name in ("plaintext", "json_app", "stream", "file", "upload-64k", "upload-16m")}


def run(peerbench: str, name: str, args: list[str], servers: list[str], quick: bool) -> list[dict[str, str]]:
    rounds = str(ROUNDS.get(name, 3))
    extra = ["--rounds", "1", "--duration", "3"] if quick else ["--rounds", rounds, "--duration", "5"]
    cmd = [sys.executable, peerbench, *args, *extra, *servers]
    print("$", " ".join(cmd[1:]), flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    print(out, flush=True)
    rows = []
    for line in out.splitlines():
        if m := ROW.match(line):
            rows.append(
                {
                    "server": m[1],
                    "rps": m[2],
                    "p50": m[3],
                    "p99": m[4],
                    "errors": m[5],
                    "ratio": m[6],
                    "note": m[7].strip(),
                }
            )
        elif line.split(" ", 1)[0] in servers and "did not start" in line:
            rows.append(
                {
                    "server": line.split()[0],
                    "rps": "-",
                    "p50": "-",
                    "p99": "-",
                    "errors": "-",
                    "ratio": "-",
                    "note": "did not start",
                }
            )
    return rows


def chart(results: dict[str, list[dict[str, str]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    servers = sorted({r["server"] for rows in results.values() for r in rows})
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / max(len(servers), 1)
    for i, s in enumerate(servers):
        vals = []
        for n in names:
            row = next((r for r in results[n] if r["server"] == s), None)
            vals.append(float(row["ratio"]) if row and row["ratio"] not in ("-", "n/a") else 0.0)
        ax.bar([x + i * width for x in range(len(names))], vals, width, label=s)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(names))], names, rotation=20)
    ax.set_ylabel("ratio to the first server of the row (refserver where present)")
    ax.axhline(1.0, color="grey", linewidth=0.5)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peerbench", default=str(PEERBENCH))
    ap.add_argument("--quick", action="store_true", help="one 3-second round per server")
    ap.add_argument("--only", nargs="*", help="workload names to run")
    a = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    results = {}
    for name, args, servers in WORKLOADS:
        if a.only and name not in a.only:
            continue
        results[name] = run(a.peerbench, name, args, servers, a.quick)
    lines = [
        f"{'Quick (1 round of 3 s)' if a.quick else 'Medians of 5 rounds (3 for flask_app, sleepy) of 5 s'},"
        " one worker each, server "
        "pinned to CPU 0 and wrk to CPU 1. Ratio: to the first server of the row.",
        "",
        "| workload | server | req/s | p50 ms | p99 ms | errors | ratio |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, rows in results.items():
        for r in rows:
            note = f" {r['note']}" if r["note"] else ""
            lines.append(
                f"| {name} | {r['server']} | {r['rps']} | {r['p50']} | {r['p99']} | {r['errors']} | "
                f"{r['ratio']}{note} |"
            )
    write_fragment("peerbench", "Throughput side by side (peerbench)", "\n".join(lines))
    try:
        chart(results, RESULTS / "latest.png")
    except ImportError:
        print("matplotlib missing: no chart")


if __name__ == "__main__":
    main()
