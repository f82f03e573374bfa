"""--reload: inotify on the app's source restarts the workers; broken code is only logged."""

from __future__ import annotations

import pytest
import requests
from test_supervisor import breaking_and_fixing_the_code_keeps_serving, pid_of, version_of, wait_until

pytestmark = pytest.mark.timeout(60)


def test_editing_the_app_serves_the_new_code_and_broken_code_keeps_the_old(serve, appdir):
    srv = serve("supervised:app", "--reload", "-w", "2", cwd=appdir)
    srv.wait_for_log(r"Booting worker with pid", count=2)
    assert version_of(requests.get(srv.url).text) == 1
    # Saving the file is the trigger: no signal.
    failure = r"Reload failed: the new worker exited with code 3; the old workers keep serving"
    breaking_and_fixing_the_code_keeps_serving(srv, appdir, lambda: None, failure)
    srv.wait_for_log(r"supervised\.py changed; reloading", count=2)


def test_new_python_files_in_new_subdirectories_and_extra_files_count(serve, appdir):
    settings = appdir / "settings.toml"
    settings.write_text("a = 1\n")
    (appdir / "notes.txt").write_text("not watched\n")
    srv = serve("supervised:app", "--reload", "--reload-extra-file", "settings.toml", cwd=appdir)
    first = pid_of(requests.get(srv.url).text)
    (appdir / "notes.txt").write_text("still not watched\n")
    settings.write_text("a = 2\n")
    srv.wait_for_log(r"settings\.toml changed; reloading")
    second = wait_until(lambda: (p := pid_of(requests.get(srv.url).text)) != first and p)
    # Directories made in quick succession: the one inside may exist before its watch does.
    (appdir / "pkg").mkdir()
    (appdir / "pkg" / "sub").mkdir()
    (appdir / "pkg" / "sub" / "mod.py").write_text("X = 1\n")
    srv.wait_for_log(r"pkg/sub/mod\.py changed; reloading")
    wait_until(lambda: pid_of(requests.get(srv.url).text) not in (first, second))
    assert "notes.txt" not in srv.text
