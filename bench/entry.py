"""How a benchmark's command line fails: as `alphadrive`'s own commands do (docs/spec.md), in one line."""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

from alphadrive_cli.ui import reported


def run_main(main: Callable[[], None]) -> None:
    """Run a benchmark's ``main``: bad input is one ``error:`` line on stderr and exit 2, any other failure one line
    and exit 1 (``ALPHADRIVE_DEBUG=1`` adds its traceback), never a bare traceback."""
    try:
        reported(main)()
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
