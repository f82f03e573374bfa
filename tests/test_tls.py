"""HTTPS on TLS binds: the environ, the request suite over TLS, plain HTTP to a TLS port,
mixed binds, TLS options and their errors. Certificates are made at run time (tlscerts)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest
import requests
import trustme
from apps.transport import file_sha256
from conftest import APPS, read_all, read_response
from tlscerts import CertFiles, write_leaf

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def certs(ca, tmp_path_factory) -> CertFiles:
    return write_leaf(ca, tmp_path_factory.mktemp("tls"))


def client_context(files: CertFiles, **kw) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(files.ca))
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def tls_connect(srv, files: CertFiles, ctx: ssl.SSLContext | None = None) -> ssl.SSLSocket:
    raw = socket.create_connection((srv.host, srv.port), timeout=10)
    return (ctx or client_context(files)).wrap_socket(raw, server_hostname="127.0.0.1")


def ferrule_cmd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ferrule", *args],
        cwd=APPS,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_https_environ(serve_both, certs):
    srv = serve_both("transport:app", *certs.args())
    assert srv.url.startswith("https://127.0.0.1:")
    env = requests.get(f"{srv.url}/echo?a=1", verify=str(certs.ca)).json()
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTPS"] == "on"
    assert env["SSL_PROTOCOL"] in ("TLSv1.2", "TLSv1.3")
    assert env["SSL_CIPHER"]
    assert env["SSL_CLIENT_VERIFY"] == "NONE"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_PORT"] == str(srv.port)
    assert env["QUERY_STRING"] == "a=1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"


def test_request_suite_over_https(serve_both, certs):
    srv = serve_both("transport:app", *certs.args())
    ca = str(certs.ca)
    with requests.Session() as s:
        s.verify = ca
        s.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            env = s.request(method, f"{srv.url}/echo").json()
            assert env["REQUEST_METHOD"] == method
        # A streamed (chunked) upload of 20 MiB.
        payload = os.urandom(MIB)
        r = s.post(f"{srv.url}/upload", data=(payload for _ in range(20)))
        assert r.json() == {
            "length": 20 * MIB,
            "sha256": hashlib.sha256(payload * 20).hexdigest(),
        }
        # A streamed download of 20 MiB.
        r = s.get(f"{srv.url}/download?n={20 * MIB}", stream=True)
        got = sum(len(c) for c in r.iter_content(256 * 1024))
        assert got == 20 * MIB
        r = s.head(f"{srv.url}/download?n=100")
        assert r.status_code == 200 and r.content == b""
        r = s.get(f"{srv.url}/lazy")
        assert (r.status_code, r.text) == (201, "lazy")
        assert s.get(f"{srv.url}/write").text == "written then returned"
        r = s.get(f"{srv.url}/file")
        assert hashlib.sha256(r.content).hexdigest() == file_sha256()
        # One connection served all of them (keep-alive over TLS).
        ports = {s.get(f"{srv.url}/echo").json()["REMOTE_PORT"] for _ in range(3)}
        assert len(ports) == 1
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{srv.url}/error_after_head", verify=ca)
    srv.wait_for_log("failed after the head")


def test_curl_http11_over_tls(serve_both, certs, tmp_path):
    srv = serve_both("transport:app", *certs.args())
    body = tmp_path / "body"
    body.write_bytes(os.urandom(3 * MIB))
    out = subprocess.run(
        ["curl", "-sS", "--http1.1", "--cacert", str(certs.ca), "--data-binary", f"@{body}",
         "-H", "Content-Type: application/octet-stream", f"{srv.url}/upload"],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    assert json.loads(out.stdout)["sha256"] == hashlib.sha256(body.read_bytes()).hexdigest()
    out = subprocess.run(
        ["curl", "-sS", "--http1.1", "--cacert", str(certs.ca), "-w", "%{http_version}",
         f"{srv.url}/file"],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    assert out.stdout.endswith(b"1.1")
    assert hashlib.sha256(out.stdout[:-3]).hexdigest() == file_sha256()


def test_unbuffered_uploads_over_tls(serve_both, certs, tmp_path):
    """--no-request-buffering: the app reads the body from the connection as it comes (inline,
    blocking reads on the worker's own thread, which must pump the TLS session meanwhile)."""
    srv = serve_both("transport:app", "--no-request-buffering", *certs.args())
    payload = os.urandom(MIB)
    want = {"length": 8 * MIB, "sha256": hashlib.sha256(payload * 8).hexdigest()}
    with requests.Session() as s:
        s.verify = str(certs.ca)
        s.trust_env = False
        # Chunked, then with a Content-Length, on one connection.
        assert s.post(f"{srv.url}/upload", data=(payload for _ in range(8))).json() == want
        assert s.post(f"{srv.url}/upload", data=payload * 8).json() == want
        assert s.get(f"{srv.url}/echo").json()["HTTPS"] == "on"
    # curl asks for 100-continue before a body this large.
    body = tmp_path / "body"
    body.write_bytes(payload * 4)
    out = subprocess.run(
        ["curl", "-sS", "--http1.1", "--cacert", str(certs.ca), "--data-binary", f"@{body}",
         "-H", "Content-Type: application/octet-stream", f"{srv.url}/upload"],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    assert json.loads(out.stdout) == {"length": 4 * MIB, "sha256": hashlib.sha256(payload * 4).hexdigest()}


def test_blocking_writes_larger_than_the_socket_over_tls(serve_both, certs):
    """write() waits until each block is on its way; 16 MiB fill the connection many times
    over while the client reads slowly."""
    srv = serve_both("transport:app", *certs.args())
    n = 16 * MIB
    with tls_connect(srv, certs) as s:
        s.sendall(f"GET /write_big?n={n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(0.5)
        got = bytearray()
        while len(got) < n + 100 and b"\r\n\r\n" not in got:
            got += s.recv(65536)
        head, _, rest = bytes(got).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and f"content-length: {n}".encode() in head.lower()
        digest = hashlib.sha256(rest)
        left = n - len(rest)
        while left > 0:
            block = s.recv(min(left, 256 * 1024))
            assert block
            digest.update(block)
            left -= len(block)
        pattern = bytes(range(256)) * 4096
        assert digest.hexdigest() == hashlib.sha256(pattern * (n // len(pattern))).hexdigest()
        # The connection is still good for another request.
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = read_response(s, bytearray())
        assert status == b"HTTP/1.1 200 OK" and json.loads(body)["HTTPS"] == "on"


def test_pipelined_requests_over_tls(serve, certs):
    srv = serve("transport:app", *certs.args())
    with tls_connect(srv, certs) as s:
        req = b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"
        s.sendall(req * 3 + b"GET /lazy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        buf = bytearray()
        for _ in range(3):
            status, _, body = read_response(s, buf)
            assert status == b"HTTP/1.1 200 OK" and json.loads(body)["HTTPS"] == "on"
        status, headers, body = read_response(s, buf)
        assert status == b"HTTP/1.1 201 Created" and body == b"lazy"


def test_plain_http_to_a_tls_port_is_told_so(serve, certs):
    srv = serve("transport:app", *certs.args())
    with srv.connect() as s:
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_all(s)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request")
    assert b"Connection: close" in head
    assert b"HTTPS port" in body
    # The server still serves TLS afterwards.
    assert requests.get(f"{srv.url}/echo", verify=str(certs.ca)).status_code == 200


def test_https_bind_beside_a_plain_bind(serve, certs):
    srv = serve("transport:app", "-b", "https://127.0.0.1:0", *certs.args())
    # serve() puts its own plain bind first: that one stays plain.
    assert [scheme for scheme, _ in srv.binds] == ["http", "https"]
    plain, tls = srv.binds
    assert requests.get(f"http://{plain[1]}/echo").json()["wsgi.url_scheme"] == "http"
    env = requests.get(f"https://{tls[1]}/echo", verify=str(certs.ca)).json()
    assert env["wsgi.url_scheme"] == "https"


def test_failed_handshakes_are_not_logged_at_info(serve, certs):
    srv = serve("transport:app", *certs.args())
    other = ssl.create_default_context()
    other.load_verify_locations(cadata=trustme.CA().cert_pem.bytes().decode())
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_connect(srv, certs, other)
    with srv.connect() as s:  # not TLS, not HTTP: closed without a word
        s.sendall(b"\x00\x01garbage")
        assert read_all(s) == b""
    assert requests.get(f"{srv.url}/echo", verify=str(certs.ca)).status_code == 200
    assert "handshake" not in srv.text.lower()


def test_tls_min_version_13_refuses_a_12_client(serve, certs):
    srv = serve("transport:app", "--tls-min-version", "1.3", *certs.args())
    old = client_context(certs, maximum_version=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLError):
        tls_connect(srv, certs, old)
    with tls_connect(srv, certs) as s:
        assert s.version() == "TLSv1.3"


def test_tls12_client_is_served_by_default(serve, certs):
    srv = serve("transport:app", *certs.args())
    with tls_connect(srv, certs, client_context(certs, maximum_version=ssl.TLSVersion.TLSv1_2)) as s:
        assert s.version() == "TLSv1.2"
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        _, _, body = read_response(s)
    env = json.loads(body)
    assert env["SSL_PROTOCOL"] == "TLSv1.2"
    assert env["SSL_CIPHER"].startswith(("ECDHE-", "TLS_ECDHE_"))


def test_proxy_protocol_before_tls(serve, certs):
    srv = serve("transport:app", "--proxy-protocol", *certs.args())
    raw = socket.create_connection((srv.host, srv.port), timeout=10)
    raw.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n")
    with client_context(certs).wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        _, _, body = read_response(s)
    env = json.loads(body)
    assert env["REMOTE_ADDR"] == "203.0.113.7" and env["HTTPS"] == "on"


@pytest.mark.parametrize(
    "args,message",
    [
        (["-b", "https://127.0.0.1:0"], "--bind https://127.0.0.1:0: an HTTPS bind needs a certificate"),
        (
            ["--certfile", "/nonexistent/cert.pem", "--keyfile", "/nonexistent/key.pem"],
            "/nonexistent/cert.pem",
        ),
        (["--certfile", "a.pem"], "--certfile given 1 time(s) and --keyfile 0"),
    ],
)
def test_tls_configuration_errors_name_the_option(args, message):
    r = ferrule_cmd("-b", "127.0.0.1:0", *args, "transport:app")
    assert r.returncode != 0
    assert message in r.stderr, r.stderr


def test_key_that_does_not_match_the_certificate(ca, tmp_path):
    one = write_leaf(ca, tmp_path / "one")
    two = write_leaf(ca, tmp_path / "two")
    r = ferrule_cmd(
        "-b", "127.0.0.1:0", "--certfile", str(one.cert), "--keyfile", str(two.key), "transport:app"
    )
    assert r.returncode != 0
    assert str(two.key) in r.stderr or str(one.cert) in r.stderr, r.stderr


def test_plain_url_fixture_is_unchanged(serve):
    srv = serve("transport:app")
    assert srv.url.startswith("http://")
    assert requests.get(f"{srv.url}/echo").json()["wsgi.url_scheme"] == "http"


def served_serial(srv, files: CertFiles) -> int:
    from cryptography import x509

    with tls_connect(srv, files) as s:
        der = s.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def file_serial(path) -> int:
    from cryptography import x509

    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def test_hup_with_a_new_certificate_under_load(ca, serve, tmp_path):
    files = write_leaf(ca, tmp_path)
    srv = serve("transport:app", "--threads", "4", *files.args())
    old = file_serial(files.cert)
    assert served_serial(srv, files) == old
    failures: list[str] = []
    done = threading.Event()

    def load():
        with requests.Session() as s:
            s.verify, s.trust_env = str(files.ca), False
            while not done.is_set():
                try:
                    if s.get(f"{srv.url}/echo").status_code != 200:
                        failures.append("status")
                except requests.RequestException as e:
                    failures.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        write_leaf(ca, tmp_path)  # the same paths, a new certificate and key
        new = file_serial(files.cert)
        assert new != old
        srv.signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while served_serial(srv, files) != new:
            assert time.monotonic() < deadline, "new connections never saw the new certificate"
            time.sleep(0.1)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert failures == []


def test_broken_new_certificate_is_kept_out(ca, serve, tmp_path):
    files = write_leaf(ca, tmp_path)
    srv = serve("transport:app", *files.args())
    old = file_serial(files.cert)
    files.cert.write_text("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
    srv.signal(signal.SIGHUP)
    srv.wait_for_log(r"keeping the current one: .*server\.crt")
    srv.wait_for_log(r"Booting worker with pid", count=2)
    assert served_serial(srv, files) == old
    assert requests.get(f"{srv.url}/echo", verify=str(files.ca)).status_code == 200


@pytest.mark.parametrize(
    "key_type,key_format",
    [
        (trustme.KeyType.RSA, "traditional"),  # PKCS#1
        (trustme.KeyType.RSA, "pkcs8"),
        (trustme.KeyType.ECDSA, "traditional"),  # SEC1
        (trustme.KeyType.ECDSA, "pkcs8"),
    ],
)
def test_every_key_format_serves(ca, serve, tmp_path, key_type, key_format):
    files = write_leaf(ca, tmp_path, key_type=key_type, key_format=key_format)
    marker = {"traditional": (b"RSA PRIVATE KEY", b"EC PRIVATE KEY"), "pkcs8": (b"BEGIN PRIVATE KEY",)}
    assert any(m in files.key.read_bytes() for m in marker[key_format])
    srv = serve("transport:app", *files.args())
    assert requests.get(f"{srv.url}/echo", verify=str(files.ca)).json()["HTTPS"] == "on"


def test_encrypted_key_with_its_password(ca, serve, tmp_path):
    files = write_leaf(ca, tmp_path, password=b"s3cret")
    assert b"ENCRYPTED PRIVATE KEY" in files.key.read_bytes()
    r = ferrule_cmd("-b", "127.0.0.1:0", *files.args(), "transport:app")
    assert r.returncode != 0 and "--keyfile-password" in r.stderr, r.stderr
    r = ferrule_cmd("-b", "127.0.0.1:0", *files.args(), "--keyfile-password", "wrong", "transport:app")
    assert r.returncode != 0 and str(files.key) in r.stderr, r.stderr
    srv = serve("transport:app", *files.args(), "--keyfile-password", "s3cret")
    assert requests.get(f"{srv.url}/echo", verify=str(files.ca)).status_code == 200


def test_sni_chooses_between_two_certificates(ca, serve, tmp_path):
    a = write_leaf(ca, tmp_path, "a.example", "127.0.0.1", stem="a")
    b = write_leaf(ca, tmp_path, "b.example", stem="b")
    srv = serve("transport:app", *a.args(), *b.args())
    ctx = client_context(a)
    for name in ("a.example", "b.example"):
        raw = socket.create_connection((srv.host, srv.port), timeout=10)
        with ctx.wrap_socket(raw, server_hostname=name) as s:  # verifies the name
            s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            _, _, body = read_response(s)
            assert json.loads(body)["HTTPS"] == "on"
    # No SNI (an address): the first certificate, the default.
    assert served_serial(srv, a) == file_serial(a.cert)


def test_expired_certificate_is_served_with_a_warning(ca, serve, tmp_path):
    import datetime

    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    files = write_leaf(ca, tmp_path, not_after=past)
    srv = serve("transport:app", *files.args())
    srv.wait_for_log(r"WARNING.*(expired|not valid after)")
    with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
        tls_connect(srv, files)


def client_pair(ca: trustme.CA, where) -> tuple[str, str]:
    leaf = ca.issue_cert("client@example", common_name="client")
    cert, key = where / "client.crt", where / "client.key"
    cert.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    return str(cert), str(key)


@pytest.mark.parametrize("mode", ["required", "optional"])
def test_mutual_tls(ca, certs, serve, tmp_path, mode):
    clients = trustme.CA()
    cafile = tmp_path / "clients-ca.pem"
    clients.cert_pem.write_to_path(str(cafile))
    srv = serve("transport:app", *certs.args(), "--ca-certs", str(cafile), "--client-cert", mode)
    good = client_pair(clients, tmp_path)
    (tmp_path / "other").mkdir()
    other = client_pair(trustme.CA(), tmp_path / "other")
    env = requests.get(f"{srv.url}/echo", verify=str(certs.ca), cert=good).json()
    assert env["SSL_CLIENT_VERIFY"] == "SUCCESS"
    assert "CN=client" in env["SSL_CLIENT_S_DN"]
    assert env["SSL_CLIENT_I_DN"] and env["SSL_CLIENT_SERIAL"]
    assert env["SSL_CLIENT_CERT"].startswith("-----BEGIN CERTIFICATE-----")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{srv.url}/echo", verify=str(certs.ca), cert=other)
    if mode == "required":
        with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
            requests.get(f"{srv.url}/echo", verify=str(certs.ca))
    else:
        assert requests.get(f"{srv.url}/echo", verify=str(certs.ca)).json()["SSL_CLIENT_VERIFY"] == "NONE"


def test_gunicorn_cert_reqs_and_an_unknown_cipher(certs, tmp_path):
    r = ferrule_cmd("-b", "127.0.0.1:0", *certs.args(), "--cert-reqs", "2", "transport:app")
    assert r.returncode != 0 and "--ca-certs" in r.stderr, r.stderr
    r = ferrule_cmd("-b", "127.0.0.1:0", *certs.args(), "--ciphers", "RC4-MD5", "transport:app")
    assert r.returncode != 0 and "RC4-MD5" in r.stderr and "--ciphers" in r.stderr, r.stderr


def test_ciphers_restrict_the_suites(certs, serve):
    srv = serve("transport:app", *certs.args(), "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256",
                "--tls-min-version", "1.2")  # fmt: skip
    ctx = client_context(certs, maximum_version=ssl.TLSVersion.TLSv1_2)
    with tls_connect(srv, certs, ctx) as s:
        assert s.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"


def test_reload_certs_picks_up_a_renewal_without_a_signal(ca, serve, tmp_path):
    files = write_leaf(ca, tmp_path)
    srv = serve("transport:app", *files.args(), "--reload-certs")
    old = served_serial(srv, files)
    write_leaf(ca, tmp_path)
    new = file_serial(files.cert)
    assert new != old
    deadline = time.monotonic() + 20
    while served_serial(srv, files) != new:
        assert time.monotonic() < deadline, "the renewal was never picked up"
        time.sleep(0.2)
    srv.wait_for_log("TLS certificates changed on disk: re-read")
