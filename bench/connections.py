"""Many idle keep-alive connections: the worker's RSS per connection, and a new connection's wait.

For each server (one worker, pinned to CPU 0; this client on CPU 1): open N connections (10,000)
one after another, each served one plaintext request and then left open and idle, with the
server's keep-alive timeout above the measurement. Reports the worker's VmRSS growth per
connection (from /proc/PID/status, read after a warm-up and again after the N connections),
the time for a request on a new connection (connect, request, whole response; median of
--probes) before and after the N are open, and how many of a sample of the idle connections
still answer at the end. Writes results/connections.md.
Usage: python connections.py [--conns 10000] [--probes 5] [SERVER ...]   (default: ferrule granian)
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time

from common import Server, pin_client, raise_nofile, rss_kib, write_fragment

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: connections.py\r\nAccept: */*\r\n\r\n"
# Added to peerbench's command line: keep idle connections open past the measurement (granian
# allows 60 s at most; one server's measurement takes well under that). Granian also stops
# accepting past --backpressure connections (default: the backlog, 1024).
KEEP_OPEN = {
    "ferrule": "--keep-alive 3600",
    "granian": "--http1-keep-alive --http1-header-read-timeout 60000 --backpressure 20000",
}
TARGET_KIB = 8.0
TARGET_MS = 10.0


def request(sock: socket.socket) -> int:
    """Sends one request and reads the whole response (Content-Length framed); its status."""
    sock.sendall(REQUEST)
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before the response head")
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed inside the body")
        body += data
    return int(head.split(b" ", 2)[1])


def open_one(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    if request(sock) != 200:
        raise RuntimeError("answer not 200")
    return sock


def probe_ms(port: int, n: int) -> float:
    """Median time for a request on a new connection, connect to the end of the response."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        sock = open_one(port)
        times.append((time.perf_counter() - t) * 1000)
        sock.close()
        time.sleep(0.05)
    return statistics.median(times)


def measure(name: str, conns: int, probes: int) -> dict[str, float]:
    with Server(name, extra=KEEP_OPEN.get(name, ""), nofile=True) as srv:
        worker = srv.worker_pid()
        for _ in range(10):
            open_one(srv.port).close()
        before_ms = probe_ms(srv.port, probes)
        time.sleep(0.5)
        before = rss_kib(worker)
        t = time.perf_counter()
        idle = [open_one(srv.port) for _ in range(conns)]
        open_s = time.perf_counter() - t
        time.sleep(1.0)
        after = rss_kib(worker)
        after_ms = probe_ms(srv.port, probes)
        sample = idle[:: max(1, conns // 20)]
        alive = 0
        for sock in sample:
            try:
                alive += request(sock) == 200
            except OSError:
                pass
        for sock in idle:
            sock.close()
    return {
        "before_kib": before,
        "after_kib": after,
        "per_conn_kib": (after - before) / conns,
        "open_s": open_s,
        "before_ms": before_ms,
        "after_ms": after_ms,
        "alive": alive,
        "sampled": len(sample),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("servers", nargs="*", default=["ferrule", "granian"])
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--probes", type=int, default=5, help="new connections timed before and after")
    a = ap.parse_args()
    raise_nofile()
    pin_client()
    rows = [
        f"| server | worker RSS before KiB | after KiB | KiB per connection | "
        f"request on connection {a.conns + 1:,} ms | on a new connection before ms | "
        "idle ones still answering | time to open all s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdict = []
    for name in a.servers:
        try:
            r = measure(name, a.conns, a.probes)
        except (RuntimeError, OSError) as e:
            print(f"{name}: {e}")
            rows.append(f"| {name} | - | - | - | - | - | - | did not run: {e} |")
            continue
        print(name, r, flush=True)
        rows.append(
            f"| {name} | {r['before_kib']:.0f} | {r['after_kib']:.0f} | {r['per_conn_kib']:.2f} | "
            f"{r['after_ms']:.2f} | {r['before_ms']:.2f} | {r['alive']:.0f}/{r['sampled']:.0f} | "
            f"{r['open_s']:.1f} |"
        )
        if name == "ferrule":
            verdict.append(
                f"Ferrule: {r['per_conn_kib']:.2f} KiB per connection (target <= {TARGET_KIB:g}: "
                f"{'met' if r['per_conn_kib'] <= TARGET_KIB else 'NOT met'}); "
                f"{r['after_ms']:.2f} ms on connection {a.conns + 1:,} (target < {TARGET_MS:g}: "
                f"{'met' if r['after_ms'] < TARGET_MS else 'NOT met'})."
            )
    body = "\n".join(rows) + "\n\n" + " ".join(verdict)
    write_fragment("connections", f"{a.conns:,} idle keep-alive connections, one worker", body)


if __name__ == "__main__":
    main()
