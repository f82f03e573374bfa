"""`--metrics-bind` and `--statsd-host`: the master's figures, summed over real workers."""

from __future__ import annotations

import collections
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import requests
from conftest import APPS, Server
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.timeout(60)

METRICS_RE = r"Metrics at: (http://\S+/metrics)"


def start(*extra: str) -> tuple[Server, str]:
    srv = Server(["--bind", "127.0.0.1:0", "--metrics-bind", "127.0.0.1:0", *extra, "metered:app"])
    return srv, srv.wait_for_log(METRICS_RE).group(1)


def samples(url: str) -> list:
    r = requests.get(url, timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return [s for fam in text_string_to_metric_families(r.text) for s in fam.samples]


def value(url: str, name: str, **labels: str) -> float:
    return sum(s.value for s in samples(url) if s.name == name and labels.items() <= s.labels.items())


def wait_until(cond, timeout: float = 10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if v := cond():
            return v
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_request_counts_match_across_two_workers():
    srv, url = start("-w", "2")
    try:
        sent: collections.Counter[tuple[str, str]] = collections.Counter()
        pids = set()
        received = 0
        plan = [("GET", 200), ("POST", 201), ("PUT", 404), ("DELETE", 500), ("GET", 404)]
        i = 0
        # Requests until both workers have answered some (and at least 40 in all).
        while len(pids) < 2 or i < 40:
            method, status = plan[i % len(plan)]
            r = requests.request(
                method, f"{srv.url}/?status={status}", data=b"abc" if method != "GET" else None
            )
            assert r.status_code == status
            pids.add(r.text.strip())
            received += len(r.content)
            sent[(method, str(status))] += 1
            i += 1
            assert i < 500, "one worker answered every request"
        total = sum(sent.values())
        wait_until(lambda: value(url, "http_server_request_duration_seconds_count") == total)
        got = samples(url)
        counts = collections.Counter()
        for s in got:
            if s.name == "http_server_request_duration_seconds_count":
                assert s.labels["network_protocol_version"] == "1.1"
                counts[(s.labels["http_request_method"], s.labels["http_response_status_code"])] += s.value
            if s.name == "http_server_request_duration_seconds_bucket" and s.labels["le"] == "+Inf":
                key = (s.labels["http_request_method"], s.labels["http_response_status_code"])
                assert s.value == sent[key]
        assert counts == sent
        by_name = {s.name: s.value for s in got if not s.labels}
        bodies = sum(n for (m, _), n in sent.items() if m != "GET")
        assert by_name["ferrule_request_body_bytes_total"] == 3 * bodies
        assert by_name["ferrule_response_body_bytes_total"] == received
        assert by_name["ferrule_connections_accepted_total"] >= total
        assert by_name["ferrule_workers"] == 2
        assert by_name["http_server_active_requests"] == 0
        rss = [s for s in got if s.name == "ferrule_worker_resident_memory_bytes"]
        assert len(rss) == 2 and all(s.value > 0 for s in rss)
        backlog = [s for s in got if s.name == "ferrule_listen_backlog_limit"]
        assert len(backlog) == 1 and backlog[0].value > 0
    finally:
        srv.stop()


def hold(srv: Server, flag: Path, results: list) -> threading.Thread:
    """A GET of /hold in a thread: the app keeps it until `flag` exists."""

    def run() -> None:
        results.append(requests.get(f"{srv.url}/hold", params={"until": str(flag)}, timeout=30).status_code)

    t = threading.Thread(target=run)
    t.start()
    return t


def test_active_requests_and_busy_threads_while_a_request_is_held(tmp_path: Path):
    srv, url = start("-w", "1", "--threads", "2")
    flag = tmp_path / "release"
    results: list[int] = []
    try:
        t = hold(srv, flag, results)
        wait_until(lambda: value(url, "http_server_active_requests") == 1)
        assert value(url, "ferrule_app_threads_busy") == 1
        assert value(url, "ferrule_app_threads_idle") == 1
        flag.touch()
        t.join(30)
        assert results == [200]
        wait_until(lambda: value(url, "http_server_active_requests") == 0)
        assert value(url, "ferrule_app_threads_busy") == 0
    finally:
        flag.touch()
        srv.stop()


def test_requests_queued_for_an_app_thread_and_the_longest_wait(tmp_path: Path):
    srv, url = start("-w", "1", "--threads", "2")
    flag = tmp_path / "release"
    results: list[int] = []
    try:
        held = [hold(srv, flag, results) for _ in range(2)]
        wait_until(lambda: value(url, "ferrule_app_threads_busy") == 2)
        held.append(hold(srv, flag, results))
        wait_until(lambda: value(url, "ferrule_requests_queued") == 1)
        assert value(url, "http_server_active_requests") == 2
        flag.touch()
        for t in held:
            t.join(30)
        assert results == [200, 200, 200]
        wait_until(lambda: value(url, "ferrule_requests_queued") == 0)
        assert value(url, "ferrule_queue_wait_longest_seconds") > 0
    finally:
        flag.touch()
        srv.stop()


def test_http2_requests_are_labelled_with_their_protocol():
    srv, url = start()
    try:
        with httpx.Client(http1=False, http2=True, base_url=srv.url, timeout=30, trust_env=False) as c:
            for _ in range(3):
                assert c.get("/?status=202").http_version == "HTTP/2"
        requests.get(f"{srv.url}/?status=202", timeout=10)
        count = "http_server_request_duration_seconds_count"
        wait_until(lambda: value(url, count) == 4)
        assert value(url, count, network_protocol_version="2", http_response_status_code="202") == 3
        assert value(url, count, network_protocol_version="1.1", http_response_status_code="202") == 1
    finally:
        srv.stop()


def test_restarts_for_max_requests_and_reload_are_counted():
    srv, url = start("-w", "1", "--max-requests", "2")
    try:
        for _ in range(2):
            requests.get(srv.url, timeout=10)
        wait_until(lambda: value(url, "ferrule_worker_restarts_total", reason="max-requests") == 1)
        srv.signal(signal.SIGHUP)
        wait_until(lambda: value(url, "ferrule_worker_restarts_total", reason="reload") == 1)
        assert value(url, "ferrule_worker_restarts_total", reason="crash") == 0
        assert value(url, "http_server_request_duration_seconds_count") == 2
    finally:
        srv.stop()


def test_listen_backlog_counts_connections_not_yet_accepted(tmp_path: Path):
    # Inline (--threads 1), a request held in the app keeps the worker from accepting.
    srv, url = start("-w", "1", "--backlog", "64")
    flag = tmp_path / "release"
    results: list[int] = []
    waiting = []
    try:
        t = hold(srv, flag, results)
        wait_until(lambda: value(url, "http_server_active_requests") == 1)
        waiting = [srv.connect() for _ in range(3)]
        wait_until(lambda: value(url, "ferrule_listen_backlog") == 3)
        assert value(url, "ferrule_listen_backlog_limit") == 64
        flag.touch()
        t.join(30)
        wait_until(lambda: value(url, "ferrule_listen_backlog") == 0)
        assert results == [200]
    finally:
        flag.touch()
        for c in waiting:
            c.close()
        srv.stop()


def test_a_request_timeout_counts_a_timeout_restart(tmp_path: Path):
    srv, url = start("-w", "1", "--timeout", "1")
    results: list[int] = []
    try:
        t = hold(srv, tmp_path / "never", results)
        wait_until(lambda: value(url, "ferrule_worker_restarts_total", reason="timeout") == 1, timeout=30)
        t.join(30)
        assert results == [504]
        assert value(url, "ferrule_worker_restarts_total", reason="crash") == 0
    finally:
        srv.stop()


def test_a_worker_over_max_worker_memory_counts_a_memory_restart():
    srv, url = start("-w", "1", "--max-worker-memory", "150")
    try:
        assert requests.get(f"{srv.url}/grow?mb=200", timeout=10).status_code == 200
        wait_until(lambda: value(url, "ferrule_worker_restarts_total", reason="memory") == 1)
        assert value(url, "ferrule_worker_restarts_total", reason="crash") == 0
    finally:
        srv.stop()


def test_a_crashed_worker_is_counted_and_its_requests_are_kept():
    srv, url = start("-w", "2")
    try:
        pids = [requests.get(srv.url, timeout=10).text.strip().removeprefix("pid=") for _ in range(6)]
        wait_until(lambda: value(url, "http_server_request_duration_seconds_count") == 6)
        os.kill(int(pids[0]), signal.SIGKILL)
        wait_until(lambda: value(url, "ferrule_worker_restarts_total", reason="crash") == 1)
        # The dead worker's requests are still counted, and the new worker's add to them.
        assert value(url, "http_server_request_duration_seconds_count") == 6
        wait_until(lambda: value(url, "ferrule_workers") == 2)
        requests.get(srv.url, timeout=10)
        wait_until(lambda: value(url, "http_server_request_duration_seconds_count") == 7)
        assert value(url, "ferrule_worker_restarts_total", reason="reload") == 0
    finally:
        srv.stop()


def listening_inode(port: int) -> str:
    """The inode of the socket listening on 127.0.0.1:`port`, from /proc/net/tcp."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[1] == f"0100007F:{port:04X}" and f[3] == "0A":
            return f[9]
    raise AssertionError(f"nothing listens on port {port}")


def open_files(pid: int | str) -> set[str]:
    """What `pid`'s descriptors point at; one closed while they are listed is skipped."""
    out = set()
    for p in Path(f"/proc/{pid}/fd").iterdir():
        try:
            out.add(os.readlink(p))
        except FileNotFoundError:
            pass
    return out


def test_workers_do_not_hold_the_metrics_socket():
    srv, url = start("-w", "2")
    try:
        inode = listening_inode(int(url.rsplit(":", 1)[1].split("/")[0]))
        pids = {requests.get(srv.url, timeout=10).text.strip().removeprefix("pid=") for _ in range(4)}
        for pid in pids:
            assert f"socket:[{inode}]" not in open_files(pid)
        assert f"socket:[{inode}]" in open_files(srv.proc.pid)
    finally:
        srv.stop()


def test_openmetrics_when_the_scraper_asks_for_it():
    srv, url = start()
    try:
        requests.get(srv.url, timeout=10)
        wait_until(lambda: value(url, "http_server_request_duration_seconds_count") == 1)
        r = requests.get(url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}, timeout=10)
        assert r.headers["content-type"].startswith("application/openmetrics-text")
        assert r.text.endswith("# EOF\n")
        fams = {f.name: f for f in parse_openmetrics(r.text)}
        assert fams["http_server_request_duration_seconds"].type == "histogram"
        assert fams["ferrule_connections_accepted"].type == "counter"
        count = [s for s in fams["http_server_request_duration_seconds"].samples if s.name.endswith("_count")]
        assert [s.value for s in count] == [1]
    finally:
        srv.stop()


def test_a_bad_metrics_bind_is_a_cli_error_naming_the_option():
    r = subprocess.run(
        [sys.executable, "-m", "ferrule", "--metrics-bind", "nowhere", "metered:app"],
        cwd=APPS,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2
    assert "--metrics-bind" in r.stderr


def udp_socket() -> tuple[socket.socket, str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    return sock, f"127.0.0.1:{sock.getsockname()[1]}"


def statsd_counts(sock: socket.socket, name: str, want: int) -> collections.Counter[str]:
    """Sums the statsd counters received until `name` reaches `want` (or 20 s pass)."""
    seen: collections.Counter[str] = collections.Counter()
    end = time.monotonic() + 20
    while seen[name] < want and time.monotonic() < end:
        for line in sock.recv(65536).decode().splitlines():
            m = re.fullmatch(r"([\w.-]+):([\d.]+)\|(c|g|ms)", line)
            assert m, line
            if m.group(3) == "c":
                seen[m.group(1)] += int(m.group(2))
    return seen


def test_statsd_lines_reach_a_udp_socket():
    sock, host = udp_socket()
    args = ["--statsd-host", host, "--statsd-prefix", "app", "--statsd-interval", "0.2"]
    srv = Server(["--bind", "127.0.0.1:0", *args, "metered:app"])
    try:
        for _ in range(3):
            requests.get(f"{srv.url}/?status=404", timeout=10)
        seen = statsd_counts(sock, "app.gunicorn.requests", 3)
        assert seen["app.gunicorn.requests"] == 3
        assert seen["app.gunicorn.request.status.404"] == 3
        assert seen["app.ferrule.worker.restarts.crash"] == 0
    finally:
        srv.stop()
        sock.close()


def test_gunicorns_statsd_settings_are_used(tmp_path: Path):
    sock, host = udp_socket()
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(f'statsd_host = "{host}"\nstatsd_prefix = "gc"\n')
    srv = Server(["--bind", "127.0.0.1:0", "-c", str(conf), "--statsd-interval", "0.2", "metered:app"])
    try:
        requests.get(srv.url, timeout=10)
        assert statsd_counts(sock, "gc.gunicorn.requests", 1)["gc.gunicorn.requests"] == 1
        assert "statsd_host has no meaning" not in srv.text
    finally:
        srv.stop()
        sock.close()
