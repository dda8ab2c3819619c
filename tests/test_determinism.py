"""The ``deterministic`` training setting's switch (alphadrive_cli/training/determinism.py)."""

from __future__ import annotations

import os

import pytest
import torch

from alphadrive_cli.training.determinism import CUBLAS_WORKSPACE, deterministic_kernels


def test_deterministic_kernels_are_on_inside_and_as_before_after(monkeypatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    assert not torch.are_deterministic_algorithms_enabled()
    with deterministic_kernels(True):
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()  # an operation without one fails
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark

        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.deterministic
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ


def test_settings_come_back_when_the_run_fails() -> None:
    with pytest.raises(RuntimeError, match="stopped"), deterministic_kernels(True):
        raise RuntimeError("stopped")
    assert not torch.are_deterministic_algorithms_enabled()


def test_off_changes_nothing(monkeypatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    with deterministic_kernels(False):
        assert not torch.are_deterministic_algorithms_enabled()

        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
