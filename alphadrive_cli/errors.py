"""The two kinds of failure the CLI reports, each mapped to its exit code (DESIGN.md section 2)."""

from __future__ import annotations


class AlphaDriveError(Exception):
    """Base class: a failure reported to the user as one line, never as a traceback."""

    exit_code = 1


class BadInput(AlphaDriveError):
    """The user's input is wrong (bad path, tampered artifact, invalid config): exit code 2."""

    exit_code = 2


class StageFailure(AlphaDriveError):
    """A stage could not finish for a reason outside the user's input: exit code 1."""

    exit_code = 1
