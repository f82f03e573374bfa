import json
import time

import pytest
import requests


def test_serves_hello_with_content_length(serve):
    srv = serve("basic:hello")
    r = requests.get(srv.url + "/")
    assert r.status_code == 200
    assert r.text == "Hello, World!"
    assert r.headers["Content-Length"] == "13"
    assert r.headers["Server"] == "ferrule"
    assert "Date" in r.headers


def test_environ_has_cgi_variables(serve):
    srv = serve("basic:echo_environ")
    r = requests.get(srv.url + "/a%2Fb/%C3%A9?x=1&y=%20", headers={"X-Thing": "v"})
    env = r.json()
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/a/b/\xc3\xa9"
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["RAW_URI"] == "/a%2Fb/%C3%A9?x=1&y=%20"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(srv.port)
    assert env["HTTP_X_THING"] == "v"
    assert env["wsgi.url_scheme"] == "http"
    assert env["SCRIPT_NAME"] == ""


def test_generator_response_is_chunked(serve):
    srv = serve("basic:generator")
    r = requests.get(srv.url)
    assert r.headers["Transfer-Encoding"] == "chunked"
    assert r.text == "part 0\npart 1\npart 2\n"


def test_lazy_start_response_in_generator(serve):
    srv = serve("basic:lazy_start")
    r = requests.get(srv.url)
    assert (r.status_code, r.text) == (201, "lazy")


def test_app_error_is_500_and_logged_once(serve):
    srv = serve("basic:raises")
    r = requests.get(srv.url)
    assert r.status_code == 500
    assert "boom" not in r.text
    srv.wait_for_log("RuntimeError: boom from the app")
    assert srv.text.count("RuntimeError: boom from the app") == 1


def test_post_body_reaches_app(serve):
    srv = serve("basic:echo_environ")
    r = requests.post(srv.url, data=b"x" * 100000)
    env = json.loads(r.text)
    assert env["CONTENT_LENGTH"] == "100000"
    assert len(env["body"]) == 100000


def test_block_is_sent_while_the_app_produces_the_next(serve):
    import time

    srv = serve("basic:slow_stream")
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        start = time.monotonic()
        got = b""
        while b"first block" not in got:
            got += s.recv(4096)
        assert time.monotonic() - start < 2.0, "the first block waited for the second"
        assert b"second block" not in got


@pytest.mark.parametrize("app", ["lingering_after_last_block", "lingering_after_write", "lingering_in_close"])
def test_complete_body_is_sent_while_the_app_finishes_its_work(serve, app):
    import time

    srv = serve(f"basic:{app}")
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        start = time.monotonic()
        got = b""
        while not got.endswith(b"\r\n\r\nwhole"):
            got += s.recv(4096)
        assert time.monotonic() - start < 2.0, "the body waited for the app to end"


def test_write_between_yields_keeps_order(serve):
    srv = serve("basic:mixed_write_and_yield")
    assert requests.get(srv.url).text == "abcd"


def test_app_threads_run_while_the_worker_is_idle_and_while_it_serves(serve_both):
    """The worker holds the GIL only while it works: a thread of the app's own keeps ticking
    (every 10 ms) whether the worker waits for requests or serves them back to back."""
    srv = serve_both("ticker:app")
    with requests.Session() as s:
        start = int(s.get(srv.url + "/").text)
        time.sleep(0.5)
        idle = int(s.get(srv.url + "/").text)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            busy = int(s.get(srv.url + "/").text)
    assert idle - start >= 10, (start, idle)
    assert busy - idle >= 10, (idle, busy)


def test_a_panic_in_the_server_is_answered_500_and_the_worker_keeps_serving(serve_both):
    # The build `make test` makes has a hook (feature test-hooks, never in a wheel) that panics
    # in the server's own code on this path while FERRULE_TEST_PANIC is set.
    srv = serve_both("basic:hello", env={"FERRULE_TEST_PANIC": "1"})
    with requests.Session() as s:
        r = s.get(srv.url + "/__ferrule_test_panic__")
        assert r.status_code == 500
        srv.wait_for_log(r"internal error while serving a request \(a bug in ferrule\): forced")
        for _ in range(3):
            r = s.get(srv.url + "/")
            assert (r.status_code, r.text) == (200, "Hello, World!")
    # The same worker answered: it was not replaced.
    assert sum("Booting worker" in line for line in srv.log) == 1
