"""The environ the app gets (PEP 3333 and CGI variables), from raw requests."""

import json
import socket

import pytest
import requests
from conftest import read_response


def environ_of(srv, request: bytes) -> dict:
    with srv.connect() as s:
        s.sendall(request)
        status, _, body = read_response(s)
    assert status.startswith(b"HTTP/1.1 200"), (status, body)
    return json.loads(body)


def get(target: str = "/", headers: bytes = b"Host: example.com\r\n", version: str = "HTTP/1.1") -> bytes:
    return f"GET {target} {version}\r\n".encode() + headers + b"\r\n"


REQUIRED = {
    "REQUEST_METHOD": "str",
    "SCRIPT_NAME": "str",
    "PATH_INFO": "str",
    "QUERY_STRING": "str",
    "SERVER_NAME": "str",
    "SERVER_PORT": "str",
    "SERVER_PROTOCOL": "str",
    "SERVER_SOFTWARE": "str",
    "REMOTE_ADDR": "str",
    "REMOTE_PORT": "str",
    "REQUEST_URI": "str",
    "RAW_URI": "str",
    "wsgi.version": "tuple",
    "wsgi.url_scheme": "str",
    "wsgi.multithread": "bool",
    "wsgi.multiprocess": "bool",
    "wsgi.run_once": "bool",
    "wsgi.input_terminated": "bool",
}


def test_environ_has_every_required_key_with_its_type(serve_both):
    srv = serve_both("pep:app")
    env = environ_of(srv, get("/x?y=1"))
    assert {k: env["types"].get(k) for k in REQUIRED} == REQUIRED
    for k in ("wsgi.input", "wsgi.errors", "wsgi.file_wrapper"):
        assert k in env["types"]
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.multithread"] is serve_both.threaded
    assert env["SERVER_SOFTWARE"].startswith("ferrule/")
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""


def test_multiprocess_is_true_with_two_workers(serve):
    srv = serve("pep:app", "-w", "2")
    env = environ_of(srv, get())
    assert (env["wsgi.multiprocess"], env["wsgi.multithread"]) == (True, False)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PURGE"])
def test_request_method_is_passed_as_sent(serve, method):
    srv = serve("pep:app")
    env = environ_of(srv, f"{method} / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    assert env["REQUEST_METHOD"] == method


def test_path_info_is_percent_decoded_as_latin1_and_query_string_stays_raw(serve):
    srv = serve("pep:app")
    target = "/a%2Fb/%C3%A9/%7e%20sp+?q=%C3%A9&x=a+b&e=%2F"
    env = environ_of(srv, get(target))
    # %2F is decoded too (as in every WSGI server): the app cannot tell it from "/".
    assert env["PATH_INFO"] == "/a/b/\xc3\xa9/~ sp+"
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/a/b/\xe9/~ sp+"
    assert env["QUERY_STRING"] == "q=%C3%A9&x=a+b&e=%2F"
    assert env["REQUEST_URI"] == env["RAW_URI"] == target


def test_query_string_is_empty_without_a_query(serve):
    srv = serve("pep:app")
    env = environ_of(srv, get("/plain"))
    assert (env["PATH_INFO"], env["QUERY_STRING"]) == ("/plain", "")


@pytest.mark.parametrize(
    "target,script_name,path_info",
    [("/mount/x/y", "/mount", "/x/y"), ("/mount", "/mount", ""), ("/mount/", "/mount", "/")],
)
def test_script_name_is_the_root_path(serve, target, script_name, path_info):
    srv = serve("pep:app", "--root-path", "/mount")
    env = environ_of(srv, get(target))
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == (script_name, path_info)
    assert env["RAW_URI"] == target


@pytest.mark.parametrize("target", ["/", "/other", "/mountain", "/mo"])
def test_path_outside_the_root_path_is_404(serve, target):
    srv = serve("pep:app", "--root-path", "/mount")
    with srv.connect() as s:
        s.sendall(get(target) + get("/mount/next"))
        buf = bytearray()
        status, _, _ = read_response(s, buf)
        assert status.startswith(b"HTTP/1.1 404")
        # The 404 keeps the connection: the next request is served.
        status, _, body = read_response(s, buf)
        assert status == b"HTTP/1.1 200 OK"
        assert json.loads(body)["PATH_INFO"] == "/next"


def test_content_type_and_length_only_when_sent(serve):
    srv = serve("pep:app")
    env = environ_of(srv, get())
    assert "CONTENT_TYPE" not in env and "CONTENT_LENGTH" not in env
    env = environ_of(
        srv,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 3\r\n\r\nabc",
    )
    assert (env["CONTENT_TYPE"], env["CONTENT_LENGTH"]) == ("text/plain; charset=utf-8", "3")
    # Never as HTTP_ variables (PEP 3333, CGI).
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env


@pytest.mark.parametrize(
    "host,name,port",
    [
        ("example.com", "example.com", "80"),
        ("example.com:8080", "example.com", "8080"),
        ("[::1]:9000", "[::1]", "9000"),
        ("[::1]", "[::1]", "80"),
        ("10.0.0.1:81", "10.0.0.1", "81"),
    ],
)
def test_server_name_and_port_come_from_host(serve, host, name, port):
    srv = serve("pep:app")
    env = environ_of(srv, get("/", f"Host: {host}\r\n".encode()))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == (name, port)
    assert env["HTTP_HOST"] == host


def test_server_name_and_port_are_the_bound_address_without_host(serve):
    srv = serve("pep:app")
    env = environ_of(srv, get("/", b"", "HTTP/1.0"))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("127.0.0.1", str(srv.port))


def test_absolute_form_authority_wins_over_host(serve):
    srv = serve("pep:app")
    env = environ_of(srv, get("http://abs.example:8081/p/q?r=1", b"Host: other.example:9999\r\n"))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("abs.example", "8081")
    assert (env["PATH_INFO"], env["QUERY_STRING"]) == ("/p/q", "r=1")
    assert env["RAW_URI"] == "http://abs.example:8081/p/q?r=1"
    assert env["HTTP_HOST"] == "abs.example:8081"
    assert env["wsgi.url_scheme"] == "http"


def test_absolute_form_https_target_sets_the_scheme_and_its_default_port(serve):
    srv = serve("pep:app")
    env = environ_of(srv, get("HTTPS://abs.example/p", b"Host: other.example:9999\r\n"))
    assert env["wsgi.url_scheme"] == "https"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("abs.example", "443")
    assert env["HTTP_HOST"] == "abs.example"


def test_absolute_form_on_http10_without_host_names_the_host(serve):
    srv = serve("pep:app")
    env = environ_of(srv, get("http://abs.example:8081/p", b"", "HTTP/1.0"))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("abs.example", "8081")
    assert env["HTTP_HOST"] == "abs.example:8081"


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/1.1"])
def test_server_protocol_is_the_version_sent(serve, version):
    srv = serve("pep:app")
    env = environ_of(srv, get("/", b"Host: x\r\n", version))
    assert env["SERVER_PROTOCOL"] == version


def test_remote_addr_and_port_are_the_client_socket(serve):
    srv = serve("pep:app")
    with srv.connect() as s:
        s.sendall(get())
        _, _, body = read_response(s)
        local = s.getsockname()
    env = json.loads(body)
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == (local[0], str(local[1]))


def _bound_clients(srv, spread: list[int]) -> list[socket.socket]:
    """Connections from local ports base + each of `spread`, for the first base where all
    are free."""
    for base in range(30000, 60000, 1024):
        socks = []
        try:
            for d in spread:
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + d))
            for s in socks:
                s.settimeout(10)
                s.connect((srv.host, srv.port))
            return socks
        except OSError:
            for s in socks:
                s.close()
    raise AssertionError("no free local ports")


def test_remote_port_is_each_connections_own_when_their_ports_collide(serve):
    """The worker keeps the address strings of recent peers by port (port mod 256, and the
    slot beside it): clients whose ports share those slots, taking turns, each see their own
    port."""
    srv = serve("pep:app")
    conns = _bound_clients(srv, [0, 256, 512, 1, 257, 768])
    try:
        bufs = [bytearray() for _ in conns]
        for i in range(4 * len(conns)):
            c = i % len(conns) if i < 2 * len(conns) else (i * 5) % len(conns)
            s = conns[c]
            s.sendall(get(f"/{i}", b"Host: x\r\n"))
            env = json.loads(read_response(s, bufs[c])[2])
            local = s.getsockname()
            assert (env["PATH_INFO"], env["REMOTE_ADDR"], env["REMOTE_PORT"]) == (
                f"/{i}",
                local[0],
                str(local[1]),
            )
    finally:
        for s in conns:
            s.close()


def test_repeated_headers_are_joined_with_comma_and_cookies_with_semicolon(serve):
    srv = serve("pep:app")
    env = environ_of(
        srv,
        get(
            "/",
            b"Host: x\r\nAccept: text/html\r\nX-Multi: one\r\nCookie: a=1\r\nAccept: text/plain\r\n"
            b"X-Multi: two\r\nCookie: b=2\r\nX-Multi: three\r\n",
        ),
    )
    assert env["HTTP_ACCEPT"] == "text/html, text/plain"
    assert env["HTTP_X_MULTI"] == "one, two, three"
    assert env["HTTP_COOKIE"] == "a=1; b=2"


def test_header_names_with_underscore_are_dropped(serve):
    srv = serve("pep:app")
    env = environ_of(
        srv, get("/", b"Host: x\r\nX_Forwarded_For: 6.6.6.6\r\nX-Forwarded-For: 1.2.3.4\r\nX-A-B: c\r\n")
    )
    assert env["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"
    assert env["HTTP_X_A_B"] == "c"
    assert not any("6.6.6.6" in str(v) for v in env.values())


def test_header_values_are_latin1_strings(serve):
    srv = serve("pep:app")
    env = environ_of(srv, get("/", "Host: x\r\nX-Name: caf\xe9\r\n".encode("latin-1")))
    assert env["HTTP_X_NAME"] == "caf\xe9"


def test_wsgi_errors_reaches_the_error_log_and_write_returns_the_character_count(serve):
    srv = serve("pep:app")
    r = requests.get(srv.url + "/errors")
    assert r.json() == {"written": len("wsgi.errors says h\xe9llo\n")}
    srv.wait_for_log("wsgi.errors says h\xe9llo")
    srv.wait_for_log("line one")
    srv.wait_for_log("line two")


def test_environ_is_fresh_for_each_request_on_a_connection(serve):
    srv = serve("pep:app")
    with srv.connect() as s:
        s.sendall(get("/one", b"Host: x\r\nX-Only-First: 1\r\n") + get("/two"))
        buf = bytearray()
        first = json.loads(read_response(s, buf)[2])
        second = json.loads(read_response(s, buf)[2])
    assert (first["PATH_INFO"], first["HTTP_X_ONLY_FIRST"]) == ("/one", "1")
    assert second["PATH_INFO"] == "/two"
    assert "HTTP_X_ONLY_FIRST" not in second
    assert first["REMOTE_PORT"] == second["REMOTE_PORT"]


def test_values_repeated_and_changed_across_requests_and_connections_are_each_requests_own(serve):
    """Strings for repeated bytes (peer, Host, header values) are reused between requests:
    every request must still see exactly what it sent, whatever came before it."""
    srv = serve("pep:app")
    hosts = ["a.example:81", "b.example", "a.example:81", "[::1]:9", "b.example"]
    agents = ["ua/1", "ua/2", "ua/1", "x" * 200, "ua/1"]
    conns = [srv.connect(), srv.connect()]
    try:
        buf = [bytearray(), bytearray()]
        for i, (host, agent) in enumerate(zip(hosts * 3, agents * 3, strict=True)):
            c = i % 2
            s = conns[c]
            s.sendall(get(f"/{i}", f"Host: {host}\r\nUser-Agent: {agent}\r\nCookie: n={i}\r\n".encode()))
            env = json.loads(read_response(s, buf[c])[2])
            name, _, port = host.rpartition(":") if not host.endswith("example") else (host, "", "80")
            assert (env["PATH_INFO"], env["HTTP_HOST"], env["SERVER_NAME"], env["SERVER_PORT"]) == (
                f"/{i}",
                host,
                name,
                port,
            )
            assert (env["HTTP_USER_AGENT"], env["HTTP_COOKIE"]) == (agent, f"n={i}")
            local = s.getsockname()
            assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == (local[0], str(local[1]))
    finally:
        for s in conns:
            s.close()


def test_environ_is_each_requests_own_whatever_came_before_and_whatever_the_app_changed(serve):
    """A request whose header names match an earlier one's starts from that request's environ
    and sets what differs: each request must see exactly what it sent, with no key left from
    another request or from the app's changes to its own environ."""
    srv = serve("pep:app")
    # (method, target, headers, body); Content-Type is sent twice in both orders.
    requests_ = [
        ("GET", "/change/a", [("Host", "x"), ("User-Agent", "u1"), ("Cookie", "c=1")], b""),
        ("GET", "/change/a", [("Host", "x"), ("User-Agent", "u1"), ("Cookie", "c=1")], b""),
        ("GET", "/change/b?q=1", [("Host", "y:81"), ("User-Agent", "u2"), ("Cookie", "c=2")], b""),
        ("GET", "/change/b?q=1", [("Host", "y:81"), ("User-Agent", "u2"), ("Authorization", "t")], b""),
        ("POST", "/change/p", [("Host", "x"), ("Content-Type", "a/1"), ("Content-Type", "b/2")], b"abc"),
        ("POST", "/change/p", [("Host", "x"), ("Content-Type", "b/2"), ("Content-Type", "a/1")], b"de"),
        ("POST", "/change/p", [("Host", "x"), ("Content-Type", "a/1"), ("Content-Type", "a/1")], b"fghi"),
        ("POST", "/change/p", [("Host", "x"), ("Content-Type", "c/3"), ("Content-Type", "a/1")], b"j"),
        ("POST", "/change/p", [("Host", "x"), ("Content-Type", "c/3"), ("Content-Type", "b/2")], b"k"),
        ("GET", "/change/a", [("Host", "x"), ("X-One", "1"), ("X-One", "2")], b""),
        ("GET", "/change/a", [("Host", "x"), ("X-One", "3"), ("X-Two", "4")], b""),
        ("GET", "/change/%41", [("Host", "x")], b""),
        ("GET", "/change/a", [("Connection", "keep-alive")], b""),
    ]
    conns = [srv.connect(), srv.connect()]
    bufs = [bytearray(), bytearray()]
    try:
        # Each request five times over two connections (the template is rebuilt from a request
        # after a few misses), so that the next one meets a template made from it.
        for i, (method, target, headers, body) in enumerate(r for r in requests_ for _ in range(5)):
            c = i % 2
            s = conns[c]
            # Without Host: HTTP/1.0, kept alive.
            version = "HTTP/1.1" if any(n == "Host" for n, _ in headers) else "HTTP/1.0"
            raw = f"{method} {target} {version}\r\n".encode()
            raw += b"".join(f"{n}: {v}\r\n".encode() for n, v in headers)
            if body:
                raw += f"Content-Length: {len(body)}\r\n".encode()
            s.sendall(raw + b"\r\n" + body)
            status, _, resp = read_response(s, bufs[c])
            assert status.split(b" ")[1] == b"200", (i, status, resp)
            env = json.loads(resp)
            path, _, query = target.partition("?")
            expected_http = {}
            for n, v in headers:
                if n.lower() == "content-type":
                    continue
                key = "HTTP_" + n.upper().replace("-", "_")
                sep = "; " if key == "HTTP_COOKIE" else ", "
                expected_http[key] = expected_http[key] + sep + v if key in expected_http else v
            assert {k: v for k, v in env.items() if k.startswith("HTTP_")} == expected_http, i
            content_types = [v for n, v in headers if n.lower() == "content-type"]
            assert env.get("CONTENT_TYPE") == (content_types[-1] if content_types else None), i
            assert env.get("CONTENT_LENGTH") == (str(len(body)) if body else None), i
            assert (env["SERVER_PROTOCOL"], env["REQUEST_METHOD"], env["PATH_INFO"], env["QUERY_STRING"]) == (
                version,
                method,
                path.replace("%41", "A"),
                query,
            ), i
            assert (env["REQUEST_URI"], env["RAW_URI"], env["body"]) == (target, target, body.decode()), i
            host = dict(headers).get("Host", "")
            name, _, port = host.partition(":")
            assert (env["SERVER_NAME"], env["SERVER_PORT"]) == (
                (name, port or "80") if host else ("127.0.0.1", str(srv.port))
            ), i
            local = s.getsockname()
            assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == (local[0], str(local[1])), i
    finally:
        for s in conns:
            s.close()


def test_environ_over_ipv6(serve):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        srv = serve("pep:app", "-b", "[::1]:0")
    except AssertionError:
        pytest.skip("cannot bind [::1]")
    with socket.create_connection(("::1", int(srv.binds[-1][1].rsplit(":", 1)[1])), timeout=10) as s:
        s.sendall(
            get(
                "/",
                b"",  # no Host on 1.0
                "HTTP/1.0",
            )
        )
        _, _, body = read_response(s)
    env = json.loads(body)
    assert env["REMOTE_ADDR"] == "::1"
