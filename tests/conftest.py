"""Shared fixtures: an isolated artifact root, offline hub access, a CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from alphadrive_cli.cli import app


@pytest.fixture(autouse=True)
def _offline_and_isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may reach a model hub, and no test writes into the working tree's runs/."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("ALPHADRIVE_HOME", str(tmp_path / "runs"))


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """The artifact root the CLI writes to in this test (``$ALPHADRIVE_HOME``)."""
    return tmp_path / "runs"


@pytest.fixture
def cli():
    """Invoke ``alphadrive`` in-process; stdout and stderr are kept apart."""
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(arg) for arg in args], catch_exceptions=False)

    return invoke
