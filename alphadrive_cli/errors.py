"""The two kinds of failure the CLI reports, each mapped to its exit code (docs/spec.md#command-line-contract)."""

from __future__ import annotations

import reprlib


class AlphaDriveError(Exception):
    """Base class: a failure reported to the user as one line, never as a traceback."""

    exit_code = 1


class BadInput(AlphaDriveError):
    """The user's input is wrong (bad path, tampered artifact, invalid config): exit code 2."""

    exit_code = 2


class StageFailure(AlphaDriveError):
    """A stage could not finish for a reason outside the user's input: exit code 1."""

    exit_code = 1


_BRIEF = reprlib.Repr()
_BRIEF.maxstring = _BRIEF.maxother = 60
_BRIEF.maxlist = _BRIEF.maxtuple = _BRIEF.maxdict = _BRIEF.maxset = 4
_BRIEF.maxlevel = 2


def brief(value: object) -> str:
    """A bounded ``repr`` of a user-supplied value for a one-line message: long text and deep or large
    containers are cut (``...``) without ever building the whole repr."""
    return _BRIEF.repr(value)


def clip(text: str, limit: int = 80) -> str:
    """``text`` cut to at most ``limit`` characters (``...`` marks the cut), for labels inside a message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
