"""``python -m ferrule`` and the ``ferrule`` command."""

from __future__ import annotations

import sys


def run() -> None:
    from ferrule._native import main

    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    run()
