"""The reference pages in docs/ are generated from the code (`make docs`): a page that no longer
matches what the code generates fails here, naming the command that mends it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.parametrize("page", ["options", "gunicorn"])
def test_generated_reference_pages_are_current(page, tmp_path):
    made = subprocess.run(
        [sys.executable, "-m", "ferrule", "--print-reference", page],
        cwd=tmp_path,  # no config file of the repository's is read
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert made == (DOCS / f"{page}.md").read_text(), f"docs/{page}.md is stale: run `make docs`"
