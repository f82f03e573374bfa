"""systemd notifications: READY=1 once the first worker accepts, RELOADING=1 then READY=1
around a HUP, STOPPING=1 on TERM, WATCHDOG=1 when systemd's watchdog is on; read from a
datagram socket the test binds as NOTIFY_SOCKET."""

from __future__ import annotations

import os
import signal
import socket

import requests


def notify_socket(tmp_path) -> tuple[socket.socket, str]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    return sock, path


def next_state(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines() if "=" in line)


def test_ready_reloading_and_stopping(serve, tmp_path):
    sock, path = notify_socket(tmp_path)
    srv = serve("basic:hello", env={"NOTIFY_SOCKET": path})
    assert next_state(sock).get("READY") == "1"
    assert requests.get(srv.url).status_code == 200
    srv.signal(signal.SIGHUP)
    state = next_state(sock)
    assert state.get("RELOADING") == "1" and int(state["MONOTONIC_USEC"]) > 0
    assert next_state(sock).get("READY") == "1"
    srv.signal(signal.SIGTERM)
    assert next_state(sock).get("STOPPING") == "1"
    srv.wait(15)
    sock.close()


def test_watchdog_pings(serve, tmp_path):
    sock, path = notify_socket(tmp_path)
    serve("basic:hello", env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    seen = [next_state(sock) for _ in range(3)]
    assert seen[0].get("READY") == "1" or any(s.get("WATCHDOG") == "1" for s in seen)
    assert any(s.get("WATCHDOG") == "1" for s in seen)
    sock.close()


def test_abstract_namespace_socket(serve):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"ferrule-test-{os.getpid()}-{id(sock)}"
    sock.bind("\0" + name)
    sock.settimeout(20)
    serve("basic:hello", env={"NOTIFY_SOCKET": "@" + name})
    assert next_state(sock).get("READY") == "1"
    sock.close()
