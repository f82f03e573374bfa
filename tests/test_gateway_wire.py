"""uwsgi, SCGI and FastCGI listeners spoken to with raw bytes: well-formed requests, the
FastCGI management and multiplexing rules, and malformed input closed with a log line."""

from __future__ import annotations

import json
import socket
import struct

import pytest
from conftest import Server, read_all


def uwsgi_packet(vars: dict[str, str], body: bytes = b"", modifier1: int = 0) -> bytes:
    block = b""
    for k, v in vars.items():
        kb, vb = k.encode("latin-1"), v.encode("latin-1")
        block += struct.pack("<H", len(kb)) + kb + struct.pack("<H", len(vb)) + vb
    return struct.pack("<BHB", modifier1, len(block), 0) + block + body


def scgi_request(vars: dict[str, str], body: bytes = b"") -> bytes:
    pairs = {"CONTENT_LENGTH": str(len(body)), "SCGI": "1", **vars}
    block = b"".join(k.encode() + b"\0" + v.encode("latin-1") + b"\0" for k, v in pairs.items())
    return str(len(block)).encode() + b":" + block + b"," + body


def fcgi_record(kind: int, rid: int, content: bytes) -> bytes:
    pad = (8 - len(content) % 8) % 8
    return struct.pack("!BBHHBx", 1, kind, rid, len(content), pad) + content + b"\0" * pad


def fcgi_pairs(pairs: list[tuple[str, str]]) -> bytes:
    out = b""
    for k, v in pairs:
        kb, vb = k.encode(), v.encode("latin-1")
        for n in (len(kb), len(vb)):
            out += bytes([n]) if n < 128 else struct.pack("!I", n | 0x80000000)
        out += kb + vb
    return out


BEGIN, ABORT, END, PARAMS, STDIN, STDOUT, GET_VALUES, GET_VALUES_RESULT = 1, 2, 3, 4, 5, 6, 9, 10


def fcgi_request(
    rid: int, pairs: list[tuple[str, str]], body: bytes = b"", keep: bool = True, role: int = 1
) -> bytes:
    out = fcgi_record(BEGIN, rid, struct.pack("!HB5x", role, 1 if keep else 0))
    out += fcgi_record(PARAMS, rid, fcgi_pairs(pairs)) + fcgi_record(PARAMS, rid, b"")
    if body:
        out += fcgi_record(STDIN, rid, body)
    return out + fcgi_record(STDIN, rid, b"")


def read_records(s: socket.socket, until_end: int = 1) -> list[tuple[int, int, bytes]]:
    """Reads records until `until_end` END_REQUEST records arrived (or the connection closes)."""
    buf = b""
    records = []
    ends = 0
    while ends < until_end:
        while len(buf) < 8 or len(buf) < 8 + struct.unpack("!H", buf[4:6])[0] + buf[6]:
            data = s.recv(65536)
            if not data:
                return records
            buf += data
        _, kind, rid, n, pad = struct.unpack("!BBHHB", buf[:7])
        records.append((kind, rid, buf[8 : 8 + n]))
        buf = buf[8 + n + pad :]
        if kind in (END, GET_VALUES_RESULT):
            ends += 1
    return records


def stdout_of(records, rid: int) -> bytes:
    return b"".join(c for k, r, c in records if k == STDOUT and r == rid)


@pytest.fixture(scope="module")
def gw():
    srv = Server(
        [
            "-b",
            "uwsgi://127.0.0.1:0",
            "-b",
            "scgi://127.0.0.1:0",
            "-b",
            "fastcgi://127.0.0.1:0",
            "basic:echo_environ",
        ]
    )
    addrs = {scheme: addr.rsplit(":", 1) for scheme, addr in srv.binds}
    yield srv, {k: (h, int(p)) for k, (h, p) in addrs.items()}
    srv.stop()


def talk(addr, data: bytes) -> bytes:
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(data)
        return read_all(s)


def test_listening_lines_name_each_protocol(gw):
    srv, _ = gw
    assert [scheme for scheme, _ in srv.binds] == ["uwsgi", "scgi", "fastcgi"]


def test_uwsgi_request_gets_an_http_response_and_its_vars_as_environ(gw):
    _, addr = gw
    raw = talk(
        addr["uwsgi"],
        uwsgi_packet(
            {
                "REQUEST_METHOD": "POST",
                "REQUEST_URI": "/a%2Fb?x=1",
                "QUERY_STRING": "x=1",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "HTTPS": "on",
                "REMOTE_ADDR": "198.51.100.4",
                "HTTP_X_TRACE": "t-1",
                "CONTENT_LENGTH": "7",
            },
            body=b"payload",
        ),
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    env = json.loads(body)
    assert env["PATH_INFO"] == "/a/b"  # derived from REQUEST_URI, percent-decoded
    assert env["QUERY_STRING"] == "x=1"
    assert env["wsgi.url_scheme"] == "https"
    assert env["REMOTE_ADDR"] == "198.51.100.4"
    assert env["HTTP_X_TRACE"] == "t-1"
    assert env["CONTENT_LENGTH"] == "7"
    assert env["body"] == "payload"
    assert env["SCRIPT_NAME"] == ""


def test_http_sent_to_the_uwsgi_socket_is_explained_in_the_log(gw):
    srv, addr = gw
    assert talk(addr["uwsgi"], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == b""
    srv.wait_for_log(r"an HTTP request arrived on the uwsgi socket from .*uwsgi_pass")


@pytest.mark.parametrize(
    "packet",
    [
        struct.pack("<BHB", 0, 10, 0) + b"\x20\x00abcdefgh",  # key length past the block
        struct.pack("<BHB", 5, 0, 0),  # modifier1 other than 0
        uwsgi_packet({"REQUEST_METHOD": "GET", "CONTENT_LENGTH": "x1"}),
    ],
)
def test_malformed_uwsgi_packets_close_the_connection_with_a_log_line(gw, packet):
    srv, addr = gw
    before = srv.text.count("closing a uwsgi connection")
    assert talk(addr["uwsgi"], packet) == b""
    srv.wait_for_log(r"closing a uwsgi connection from .*malformed uwsgi packet", count=before + 1)


def test_scgi_request_gets_a_response_and_its_headers_as_environ(gw):
    _, addr = gw
    raw = talk(addr["scgi"], scgi_request({"REQUEST_METHOD": "PUT", "REQUEST_URI": "/s?q=2"}, b"abc"))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b" 200 OK" in head.split(b"\r\n")[0]
    env = json.loads(body)
    assert (env["REQUEST_METHOD"], env["PATH_INFO"], env["body"]) == ("PUT", "/s", "abc")


@pytest.mark.parametrize("data", [b"x:abc,", b"5:a\x00b\x00c,"])
def test_malformed_scgi_heads_close_the_connection_with_a_log_line(gw, data):
    srv, addr = gw
    before = srv.text.count("closing a scgi connection")
    with socket.create_connection(addr["scgi"], timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        assert read_all(s) == b""
    srv.wait_for_log(r"closing a scgi connection from .*malformed SCGI request", count=before + 1)


def test_scgi_head_cut_short_closes_the_connection_without_an_answer(gw):
    srv, addr = gw
    with socket.create_connection(addr["scgi"], timeout=10) as s:
        s.sendall(b"12:CONTENT_LENGTH\x000\x00SCGI\x001\x00")  # no comma: the peer went away
        s.shutdown(socket.SHUT_WR)
        assert read_all(s) == b""
    assert srv.proc.poll() is None


def test_fastcgi_keep_conn_serves_several_requests_on_one_connection(gw):
    _, addr = gw
    with socket.create_connection(addr["fastcgi"], timeout=10) as s:
        for rid in (1, 2, 3):
            s.sendall(fcgi_request(rid, [("REQUEST_METHOD", "GET"), ("REQUEST_URI", f"/r{rid}")]))
            records = read_records(s)
            out = stdout_of(records, rid)
            assert out.startswith(b"Status: 200 OK\r\n")
            assert json.loads(out.partition(b"\r\n\r\n")[2])["PATH_INFO"] == f"/r{rid}"
            assert records[-1][0] == END and records[-1][1] == rid
            assert records[-1][2][4] == 0  # FCGI_REQUEST_COMPLETE


def test_fastcgi_last_repeated_param_wins_and_script_name_is_the_root_path(gw):
    _, addr = gw
    pairs = [
        ("REQUEST_METHOD", "GET"),
        ("SCRIPT_NAME", "/index.php"),
        ("REQUEST_URI", "/first"),
        ("REQUEST_URI", "/second"),
    ]
    with socket.create_connection(addr["fastcgi"], timeout=10) as s:
        s.sendall(fcgi_request(1, pairs, keep=False))
        env = json.loads(stdout_of(read_records(s), 1).partition(b"\r\n\r\n")[2])
    assert env["PATH_INFO"] == "/second"
    assert env["SCRIPT_NAME"] == ""


def test_fastcgi_get_values_is_answered(gw):
    _, addr = gw
    with socket.create_connection(addr["fastcgi"], timeout=10) as s:
        s.sendall(fcgi_record(GET_VALUES, 0, fcgi_pairs([("FCGI_MPXS_CONNS", ""), ("FCGI_MAX_REQS", "")])))
        records = read_records(s)
    assert records[0][0] == GET_VALUES_RESULT
    assert b"FCGI_MPXS_CONNS0" in records[0][2]


def test_fastcgi_second_request_id_is_refused_while_one_is_in_progress(gw):
    _, addr = gw
    with socket.create_connection(addr["fastcgi"], timeout=10) as s:
        first = fcgi_record(BEGIN, 1, struct.pack("!HB5x", 1, 1))
        first += fcgi_record(PARAMS, 1, fcgi_pairs([("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "2")]))
        first += fcgi_record(PARAMS, 1, b"")
        s.sendall(first + fcgi_record(BEGIN, 2, struct.pack("!HB5x", 1, 1)))
        s.sendall(fcgi_record(STDIN, 1, b"hi") + fcgi_record(STDIN, 1, b""))
        records = read_records(s, until_end=2)
    ends = {rid: content[4] for kind, rid, content in records if kind == END}
    assert ends == {2: 1, 1: 0}  # 1 = FCGI_CANT_MPX_CONN
    assert json.loads(stdout_of(records, 1).partition(b"\r\n\r\n")[2])["body"] == "hi"


def test_fastcgi_unknown_role_is_refused(gw):
    _, addr = gw
    with socket.create_connection(addr["fastcgi"], timeout=10) as s:
        s.sendall(fcgi_request(7, [("REQUEST_METHOD", "GET")], keep=False, role=2))
        records = read_records(s)
    assert records[-1][0] == END and records[-1][2][4] == 3  # FCGI_UNKNOWN_ROLE


def test_fastcgi_bad_version_closes_the_connection_with_a_log_line(gw):
    srv, addr = gw
    assert talk(addr["fastcgi"], b"\x02\x01\x00\x01\x00\x08\x00\x00" + bytes(8)) == b""
    srv.wait_for_log(r"closing a FastCGI connection from .*")


def test_fastcgi_abort_request_stops_the_output_and_closes_the_iterable(tmp_path):
    srv = Server(["-b", "fastcgi://127.0.0.1:0", "gateway:app"])
    try:
        host, port = srv.binds[0][1].rsplit(":", 1)
        marker = tmp_path / "closed"
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(fcgi_request(1, [("REQUEST_METHOD", "GET"), ("REQUEST_URI", f"/forever?{marker}")]))
            got = b""
            while len(got) < 4096:
                got += s.recv(65536)
            s.sendall(fcgi_record(ABORT, 1, b""))
            records = read_records(s)
            assert records and records[-1][0] == END and records[-1][1] == 1
            # The connection stays usable (FCGI_KEEP_CONN).
            s.sendall(fcgi_request(2, [("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/hello")]))
            assert stdout_of(read_records(s), 2).startswith(b"Status: 200 OK")
        assert marker.read_text() == "closed"
    finally:
        srv.stop()


@pytest.mark.parametrize("proto", ["uwsgi", "scgi", "fastcgi"])
def test_generator_blocks_reach_the_front_server_as_they_are_produced(proto):
    # The app yields one block, then sleeps 10 s before the next.
    srv = Server(["-b", f"{proto}://127.0.0.1:0", "--graceful-timeout", "1", "supervised:app"])
    try:
        host, port = srv.binds[0][1].rsplit(":", 1)
        vars = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/stream-then-sleep"}
        request = {
            "uwsgi": lambda: uwsgi_packet(vars),
            "scgi": lambda: scgi_request(vars),
            "fastcgi": lambda: fcgi_request(1, list(vars.items())),
        }[proto]()
        with socket.create_connection((host, int(port)), timeout=3) as s:
            s.sendall(request)
            got = b""
            while b"first block" not in got:
                got += s.recv(65536)  # a timeout here fails the test
    finally:
        srv.stop()


def test_forwarded_headers_from_the_trusted_front_server_apply_to_gateway_requests(gw):
    _, addr = gw
    raw = talk(
        addr["uwsgi"],
        uwsgi_packet(
            {
                "REQUEST_METHOD": "GET",
                "REQUEST_URI": "/",
                "REMOTE_ADDR": "127.0.0.1",
                "HTTP_X_FORWARDED_FOR": "203.0.113.9",
                "HTTP_X_FORWARDED_PROTO": "https",
            }
        ),
    )
    env = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert env["REMOTE_ADDR"] == "203.0.113.9"
    assert env["wsgi.url_scheme"] == "https"
