"""Where the server listens: inherited sockets, systemd activation, SO_REUSEPORT, Unix socket
permissions and dropped privileges."""

from __future__ import annotations

import os
import socket
import stat
import sys
import tempfile

import pytest
import requests
from conftest import Server


def listening_sockets(port: int) -> int:
    """How many sockets listen on `port` (state 0A in /proc/net/tcp)."""
    count = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                count += 1
    return count


def test_inherited_socket_given_as_fd(serve):
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    fd = sock.fileno()
    srv = Server(["-b", f"fd://{fd}", "basic:hello"], pass_fds=(fd,))
    try:
        sock.close()  # the server holds its own copy
        assert srv.port == port
        assert requests.get(srv.url).text == "Hello, World!"
    finally:
        srv.stop()


def test_bad_fd_bind_names_the_descriptor():
    srv = Server(["-b", "fd://97", "basic:hello"], wait=False)
    assert srv.wait(10) != 0
    srv.stop()
    assert "descriptor 97 is not open" in srv.text


SYSTEMD = (
    "import os, sys; os.dup2({fd}, 3); os.close({fd}); "
    "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1'); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def test_systemd_socket_activation_with_listen_fds():
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    fd = sock.fileno()
    try:
        # systemd passes the socket as descriptor 3 and LISTEN_PID is the server's own pid:
        # a wrapper moves the descriptor, sets the variables, then becomes the server.
        srv = Server(
            ["basic:hello"],
            pass_fds=(fd,),
            prefix=[sys.executable, "-c", SYSTEMD.format(fd=fd)],
        )
    finally:
        sock.close()
    try:
        assert srv.binds == [("http", f"127.0.0.1:{port}")]
        assert requests.get(srv.url).text == "Hello, World!"
    finally:
        srv.stop()


def test_reuse_port_gives_each_worker_its_own_socket(serve):
    srv = serve("basic:hello", "-w", "2", "--reuse-port")
    srv.wait_for_log(r"Booting worker with pid", count=2)
    assert listening_sockets(srv.port) == 2
    for _ in range(20):
        assert requests.get(srv.url).text == "Hello, World!"


def test_umask_sets_the_unix_socket_permissions():
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        path = os.path.join(d, "s.sock")
        srv = Server(["-b", f"unix:{path}", "--umask", "077", "basic:hello"])
        try:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
        finally:
            srv.stop()


def test_bad_umask_names_the_option():
    srv = Server(["--umask", "999", "basic:hello"], wait=False)
    assert srv.wait(10) == 2
    srv.stop()
    assert "--umask 999" in srv.text


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_user_and_group_apply_to_workers(serve):
    srv = serve("whoami:app", "--user", "nobody", "--group", "nogroup")
    nobody = __import__("pwd").getpwnam("nobody")
    nogroup = __import__("grp").getgrnam("nogroup")
    assert requests.get(srv.url).text == f"uid={nobody.pw_uid} gid={nogroup.gr_gid}"


def test_unknown_user_names_the_option():
    srv = Server(["--user", "no-such-user-here", "basic:hello"], wait=False)
    assert srv.wait(10) == 2
    srv.stop()
    assert "--user no-such-user-here: no such user" in srv.text
