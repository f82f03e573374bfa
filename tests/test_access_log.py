"""The access log: --access-logformat with gunicorn's atoms, --access-log-json, request ids."""

from __future__ import annotations

import json
import os
import re

import requests
from test_supervisor import wait_until


def lines(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def one_line(path) -> str:
    wait_until(lambda: len(lines(path)) >= 1)
    return lines(path)[-1]


def test_default_format_is_apache_combined_with_the_duration(serve, tmp_path):
    log = tmp_path / "access.log"
    srv = serve("basic:hello", "--access-logfile", str(log))
    requests.get(srv.url + "/a?b=1", headers={"User-Agent": "ua", "Referer": "http://r/"})
    line = one_line(log)
    assert re.fullmatch(
        r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET /a\?b=1 HTTP/1\.1" 200 13 '
        r'"http://r/" "ua" \d+us',
        line,
    ), line


def test_each_gunicorn_atom_on_a_known_request(serve, tmp_path):
    log = tmp_path / "access.log"
    atoms = "h l u t r m U q H s B b f a T D M L p {x-in}i {content-type}o {query_string}e"
    fmt = "|".join(f"%({a})s" for a in atoms.split())
    srv = serve("basic:hello", "--access-logfile", str(log), "--access-logformat", fmt)
    requests.get(
        srv.url + "/p/q?x=1&y=2",
        headers={"User-Agent": "agent/1", "Referer": "ref", "X-In": "in-value"},
        auth=("alice", "pw"),
    )
    fields = one_line(log).split("|")
    got = dict(zip(atoms.split(), fields, strict=True))
    assert got["h"] == "127.0.0.1"
    assert got["l"] == "-"
    assert got["u"] == "alice"
    assert re.fullmatch(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\]", got["t"])
    assert got["r"] == "GET /p/q?x=1&y=2 HTTP/1.1"
    assert got["m"] == "GET"
    assert got["U"] == "/p/q"
    assert got["q"] == "x=1&y=2"
    assert got["H"] == "HTTP/1.1"
    assert got["s"] == "200"
    assert got["B"] == got["b"] == "13"
    assert got["f"] == "ref"
    assert got["a"] == "agent/1"
    assert got["T"] == "0"
    micros = int(got["D"])
    assert int(got["M"]) == micros // 1000
    assert re.fullmatch(r"0\.\d{6}", got["L"])
    assert got["p"] == f"<{got['p'][1:-1]}>" and int(got["p"][1:-1]) != srv.proc.pid
    assert got["{x-in}i"] == "in-value"
    assert got["{content-type}o"] == "text/plain"
    assert got["{query_string}e"] == "x=1&y=2"


def test_a_bad_format_is_refused_at_start(serve, tmp_path):
    srv = serve("basic:hello", "--access-logformat", "%(h)s 50%", wait=False)
    assert srv.wait(15) == 2
    assert "--access-logformat" in srv.text


def test_json_lines_escape_whatever_the_client_sends(serve, tmp_path):
    log = tmp_path / "access.log"
    srv = serve("basic:hello", "--access-logfile", str(log), "--access-log-json")
    agent = b'say "hi" \\ back\tslash \xe9\xff'
    head = b"GET /j?k=v HTTP/1.1\r\nHost: x\r\nUser-Agent: " + agent + b"\r\nConnection: close\r\n\r\n"
    assert srv.raw(head).startswith(b"HTTP/1.1 200 ")
    record = json.loads(one_line(log))
    assert record["user_agent"] == agent.decode("latin-1")
    assert record["method"] == "GET"
    assert record["path"] == "/j"
    assert record["query"] == "k=v"
    assert record["protocol"] == "HTTP/1.1"
    assert record["status"] == 200
    assert record["bytes"] == 13
    assert record["duration_ms"] >= 0
    assert record["remote"] == "127.0.0.1"
    assert record["referer"] is None
    assert record["request_id"] is None
    assert isinstance(record["pid"], int) and record["pid"] != srv.proc.pid
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["time"])


def test_json_lines_survive_a_rename_and_usr1(serve, tmp_path):
    log = tmp_path / "access.log"
    srv = serve("basic:hello", "--access-logfile", str(log), "--access-log-json")
    requests.get(srv.url + "/before")
    wait_until(lambda: len(lines(log)) == 1)
    os.rename(log, tmp_path / "access.log.1")
    srv.signal(__import__("signal").SIGUSR1)
    for _ in range(100):
        requests.get(srv.url + "/after")
        if log.exists() and "/after" in log.read_text():
            break
    assert all(
        json.loads(line)["path"] in ("/before", "/after")
        for line in lines(log) + lines(tmp_path / "access.log.1")
    )
    assert json.loads(lines(tmp_path / "access.log.1")[0])["path"] == "/before"


def test_request_id_is_kept_from_a_trusted_client_and_echoed(serve, tmp_path):
    log = tmp_path / "access.log"
    srv = serve(
        "basic:echo_environ",
        "--request-id-header",
        "X-Request-ID",
        "--access-logfile",
        str(log),
        "--access-logformat",
        "%(r)s id=%({request_id})s",
    )
    r = requests.get(srv.url + "/kept", headers={"X-Request-ID": "req-123"})
    assert r.headers["X-Request-ID"] == "req-123"
    env = r.json()
    assert env["HTTP_X_REQUEST_ID"] == env["ferrule.request_id"] == "req-123"
    r = requests.get(srv.url + "/made")
    made = r.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert r.json()["ferrule.request_id"] == made
    assert requests.get(srv.url + "/made").headers["X-Request-ID"] != made
    wait_until(lambda: len(lines(log)) == 3)
    assert lines(log)[:2] == ["GET /kept HTTP/1.1 id=req-123", f"GET /made HTTP/1.1 id={made}"]


def test_request_id_from_an_untrusted_client_is_replaced(serve, tmp_path):
    log = tmp_path / "access.log"
    srv = serve(
        "basic:echo_environ",
        "--request-id-header",
        "X-Request-ID",
        "--forwarded-allow-ips",
        "10.9.8.7",
        "--access-logfile",
        str(log),
        "--access-log-json",
    )
    r = requests.get(srv.url, headers={"X-Request-ID": "forged"})
    made = r.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert r.json()["HTTP_X_REQUEST_ID"] == made
    assert json.loads(one_line(log))["request_id"] == made


def test_requests_the_server_refuses_get_a_line(serve, tmp_path):
    log = tmp_path / "access.log"
    srv = serve("basic:hello", "--access-logfile", str(log), "--limit-request-line", "100")
    assert srv.raw(b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 414 ")
    assert srv.raw(b"BAD REQUEST\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    wait_until(lambda: len(lines(log)) == 2)
    # The request line as far as it was read, the status, the body's bytes, the duration.
    too_long, bad = lines(log)
    assert re.search(r'"GET /a{200} HTTP/1\.1" 414 \d+ "-" "-" \d+us$', too_long), too_long
    assert re.search(r'"BAD REQUEST -" 400 \d+ "-" "-" \d+us$', bad), bad
