import os
import signal

import requests


def test_term_stops_gracefully_with_exit_code_0(serve):
    srv = serve("basic:hello", "-w", "2")
    assert requests.get(srv.url).status_code == 200
    srv.signal(signal.SIGTERM)
    assert srv.wait(15) == 0
    assert "Shutting down: graceful" in srv.text


def test_usr1_reopens_the_access_log(serve, tmp_path):
    log = tmp_path / "access.log"
    srv = serve("basic:hello", "--access-logfile", str(log))
    requests.get(srv.url + "/before")
    os.rename(log, tmp_path / "access.log.1")
    srv.signal(signal.SIGUSR1)
    # The worker reopens on the signal the master forwards; keep asking until the new file shows.
    for _ in range(100):
        requests.get(srv.url + "/after")
        if log.exists() and "/after" in log.read_text():
            break
    assert "/after" in log.read_text()
    assert "/before" in (tmp_path / "access.log.1").read_text()
    assert srv.proc.poll() is None


def test_killed_worker_is_replaced(serve):
    srv = serve("basic:hello")
    first = int(srv.wait_for_log(r"Booting worker with pid: (\d+)").group(1))
    os.kill(first, signal.SIGKILL)
    second = int(srv.wait_for_log(r"Booting worker with pid: (\d+)", count=2).group(1))
    assert second != first
    assert requests.get(srv.url).status_code == 200


def test_term_runs_the_workers_atexit_handlers(serve, tmp_path):
    done = tmp_path / "atexit.txt"
    srv = serve("hooked:app", "-w", "2", env={"FERRULE_TEST_ATEXIT_FILE": str(done)})
    srv.wait_for_log(r"Booting worker with pid", count=2)
    pids = {m for line in srv.log if (m := line.partition("Booting worker with pid: ")[2].strip())}
    assert requests.get(srv.url).status_code == 200
    srv.signal(signal.SIGTERM)
    assert srv.proc.wait(15) == 0
    assert {line.split()[1] for line in done.read_text().splitlines()} == pids, srv.text
