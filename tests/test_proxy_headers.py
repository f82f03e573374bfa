"""Who the client is behind a proxy: --forwarded-allow-ips and --proxy-protocol, from a trusted
peer (127.0.0.1) and an untrusted one (127.0.0.2)."""

from __future__ import annotations

import json
import socket
import struct

from conftest import read_all, read_response


def environ_via(srv, headers: dict[str, str], source: str = "127.0.0.1", prefix: bytes = b"") -> dict:
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    req = prefix + f"GET /path HTTP/1.1\r\nHost: direct:8000\r\nConnection: close\r\n{lines}\r\n".encode()
    with socket.create_connection((srv.host, srv.port), timeout=10, source_address=(source, 0)) as s:
        s.sendall(req)
        status, _, body = read_response(s)
    assert b" 200 " in status, status
    return json.loads(body)


FORWARDED = {
    "X-Forwarded-For": "203.0.113.7, 10.1.2.3",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "example.com",
    "X-Forwarded-Prefix": "/app",
}


def test_forwarded_headers_from_a_trusted_proxy_describe_the_client(serve):
    srv = serve("basic:echo_environ", "--forwarded-allow-ips", "127.0.0.1,10.0.0.0/8")
    env = environ_via(srv, FORWARDED)
    assert env["REMOTE_ADDR"] == "203.0.113.7"
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_HOST"] == "example.com"
    assert env["SERVER_NAME"] == "example.com"
    assert env["SERVER_PORT"] == "443"
    assert env["SCRIPT_NAME"] == "/app"


def test_forwarded_headers_from_an_untrusted_peer_stay_ordinary_headers(serve):
    srv = serve("basic:echo_environ")
    env = environ_via(srv, FORWARDED, source="127.0.0.2")
    assert env["REMOTE_ADDR"] == "127.0.0.2"
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_HOST"] == "direct:8000"
    assert env["SCRIPT_NAME"] == ""
    assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.7, 10.1.2.3"


def test_rightmost_untrusted_address_wins(serve):
    srv = serve("basic:echo_environ")
    # The client made up the first address; the trusted proxy (127.0.0.1) appended the real one.
    env = environ_via(srv, {"X-Forwarded-For": "1.2.3.4, 198.51.100.9"})
    assert env["REMOTE_ADDR"] == "198.51.100.9"


def test_rfc7239_forwarded_takes_precedence_over_x_forwarded(serve):
    srv = serve("basic:echo_environ")
    env = environ_via(
        srv,
        {
            "Forwarded": 'for="[2001:db8::1]:4711";proto=https;host=shop.example',
            "X-Forwarded-For": "192.0.2.99",
            "X-Forwarded-Proto": "http",
        },
    )
    assert env["REMOTE_ADDR"] == "2001:db8::1"
    assert env["REMOTE_PORT"] == "4711"
    assert env["wsgi.url_scheme"] == "https"
    assert env["SERVER_NAME"] == "shop.example"


def test_trusting_everyone_says_so_at_start(serve):
    srv = serve("basic:echo_environ", "--forwarded-allow-ips", "*")
    assert "--forwarded-allow-ips '*'" in srv.text
    env = environ_via(srv, FORWARDED, source="127.0.0.2")
    assert env["REMOTE_ADDR"] == "203.0.113.7"  # every hop is trusted: the leftmost address
    assert env["wsgi.url_scheme"] == "https"


def test_bad_allow_list_names_the_option(serve):
    from conftest import Server

    srv = Server(["--forwarded-allow-ips", "10.0.0.0/99", "basic:hello"], wait=False)
    assert srv.wait(10) == 2
    srv.stop()
    assert "--forwarded-allow-ips 10.0.0.0/99" in srv.text


def test_proxy_protocol_v1_gives_the_client_address(serve):
    srv = serve("basic:echo_environ", "--proxy-protocol")
    env = environ_via(srv, {}, prefix=b"PROXY TCP4 192.0.2.1 192.0.2.2 5555 443\r\n")
    assert env["REMOTE_ADDR"] == "192.0.2.1"
    assert env["REMOTE_PORT"] == "5555"


def test_proxy_protocol_v2_gives_the_client_address(serve):
    srv = serve("basic:echo_environ", "--proxy-protocol")
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    addrs = socket.inet_pton(socket.AF_INET6, "2001:db8::5") + socket.inet_pton(socket.AF_INET6, "::1")
    addrs += struct.pack("!HH", 40000, 80)
    header = sig + bytes([0x21, 0x21]) + struct.pack("!H", len(addrs)) + addrs
    env = environ_via(srv, {}, prefix=header)
    assert env["REMOTE_ADDR"] == "2001:db8::5"
    assert env["REMOTE_PORT"] == "40000"


def test_proxy_protocol_local_command_keeps_the_peer(serve):
    srv = serve("basic:echo_environ", "--proxy-protocol")
    header = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    env = environ_via(srv, {}, prefix=header)
    assert env["REMOTE_ADDR"] == "127.0.0.1"


def test_proxy_protocol_from_an_untrusted_peer_is_closed(serve):
    srv = serve("basic:echo_environ", "--proxy-protocol")
    with socket.create_connection((srv.host, srv.port), timeout=10, source_address=("127.0.0.2", 0)) as s:
        s.sendall(b"PROXY TCP4 192.0.2.1 192.0.2.2 5555 443\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_all(s) == b""
    srv.wait_for_log(r"closing a connection from 127\.0\.0\.2:\d+: not allowed to send a PROXY")


def test_proxy_protocol_missing_header_is_refused(serve):
    srv = serve("basic:echo_environ", "--proxy-protocol")
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_all(s) == b""
    srv.wait_for_log(r"bad PROXY protocol header: .*--proxy-protocol expects one on every connection")
