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


def test_the_settings_before_come_back_even_when_the_run_fails(monkeypatch) -> None:
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = True
    try:
        with pytest.raises(RuntimeError, match="stopped"), deterministic_kernels(True):
            assert not torch.is_deterministic_algorithms_warn_only_enabled()
            assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"  # a setting of the user's own is kept
            raise RuntimeError("stopped")
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = False


def test_off_changes_nothing(monkeypatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    with deterministic_kernels(False):
        assert not torch.are_deterministic_algorithms_enabled()

        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
