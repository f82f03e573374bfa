"""examples/django: the admin's login page and its hashed static files, served by Ferrule
with `--static` and nothing else (no WhiteNoise, no nginx)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import requests

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "django"


def test_django_admin_with_static(serve, tmp_path):
    env = dict(os.environ, FERRULE_EXAMPLE_DATA=str(tmp_path), DJANGO_SETTINGS_MODULE="site_admin.settings")
    for cmd in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        subprocess.run([sys.executable, "manage.py", *cmd], cwd=EXAMPLE, env=env, check=True,
                       capture_output=True, timeout=120)  # fmt: skip
    srv = serve(
        "site_admin.wsgi:application",
        "--chdir", str(EXAMPLE), "--static", f"/static={tmp_path / 'staticfiles'}",
        env={"FERRULE_EXAMPLE_DATA": str(tmp_path)},
    )  # fmt: skip
    login = requests.get(f"{srv.url}/admin/login/")
    assert login.status_code == 200 and "csrfmiddlewaretoken" in login.text
    css = re.search(r'href="(/static/admin/css/base\.[0-9a-f]+\.css)"', login.text)
    assert css, login.text[:2000]
    r = requests.get(srv.url + css.group(1))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/css")
    assert "immutable" in r.headers["cache-control"]
    assert requests.get(f"{srv.url}/static/admin/css/base.css").status_code == 200
