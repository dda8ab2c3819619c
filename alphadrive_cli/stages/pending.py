"""Stages whose command exists but whose work is not built yet: they check their inputs, then say so."""

from __future__ import annotations

from typing import NoReturn

from alphadrive_cli.errors import StageFailure


def not_built_yet(command: str, issue: int) -> NoReturn:
    """Stop with a clear message (exit 1) after the command's arguments and config were validated."""
    raise StageFailure(
        f"`alphadrive {command}` is not built yet (tracked in issue #{issue}); "
        "its arguments, inputs and config were checked and are valid, and nothing was written"
    )
