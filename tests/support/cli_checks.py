"""Checks of the command-line contract that several test files make."""

from __future__ import annotations

import importlib.metadata

import pytest


def assert_one_line_error(result, code: int, *fragments: str) -> None:
    """``result`` exited with ``code``, printed nothing on stdout and one ``error:`` line holding ``fragments``."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def hide_distribution(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Make ``importlib.metadata`` report ``package`` as not installed for the rest of the test."""
    real = importlib.metadata.distribution

    def without(name: str):
        if name == package:
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", without)
