"""Non-finite gradients and weights: the guard skips the update, a run that stays non-finite stops, and no
stage saves NaN weights."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import TrainerCallback

from alphadrive_cli.artifacts.store import OutputSpec
from alphadrive_cli.config.schemas import DistillConfig, SftConfig, TinyModelConfig
from alphadrive_cli.errors import StageFailure
from alphadrive_cli.stages import distill as distill_stage
from alphadrive_cli.stages import models_tiny
from alphadrive_cli.stages import sft as sft_stage
from alphadrive_cli.training import callbacks as training_callbacks
from alphadrive_cli.training.numerics import NonFiniteGradientGuard, all_finite, check_finite, nonfinite_steps
from tests.support.labelled_data import make_labelled_data


def _step(
    guard: NonFiniteGradientGuard,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    grad: float,
    global_step: int,
) -> None:
    for parameter in model.parameters():
        parameter.grad = torch.full_like(parameter, grad)
    guard.on_pre_optimizer_step(None, SimpleNamespace(global_step=global_step), None, model=model)
    optimizer.step()


def test_guard_skips_a_nonfinite_update_and_leaves_weights_and_moments_alone() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    guard = NonFiniteGradientGuard(limit=3)
    _step(guard, model, optimizer, 0.5, 0)
    before = [parameter.detach().clone() for parameter in model.parameters()]
    moments = [optimizer.state[parameter]["exp_avg"].clone() for parameter in model.parameters()]
    _step(guard, model, optimizer, math.nan, 1)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=False))
    assert all(torch.equal(m, optimizer.state[p]["exp_avg"]) for m, p in zip(moments, model.parameters(), strict=False))
    assert guard.streak == [2]
    _step(guard, model, optimizer, 0.5, 2)  # a finite step updates again and ends the streak
    assert not torch.equal(before[0], model.weight) and guard.streak == []


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_all_finite_finds_one_bad_element_among_tensors_of_mixed_dtypes(bad: float) -> None:
    tensors = [torch.ones(3, 5), torch.full((7,), 3e38), torch.ones(4, dtype=torch.bfloat16), torch.zeros(0)]
    assert all_finite(tensors)  # float32's largest values are finite: nothing squares or sums them into infinity
    for index in range(3):
        poisoned = [tensor.clone() for tensor in tensors]
        poisoned[index].view(-1)[-1] = bad
        assert not all_finite(poisoned)
    assert all_finite([torch.zeros(0)])  # a process whose shards are all empty still takes part


def test_guard_stops_a_run_after_the_limit_in_a_row() -> None:
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    guard = NonFiniteGradientGuard(limit=2)
    _step(guard, model, optimizer, math.inf, 0)
    with pytest.raises(StageFailure, match=r"diverged: the gradients were non-finite in 2 consecutive steps \(1-2\)"):
        _step(guard, model, optimizer, math.nan, 1)


def test_check_finite_names_the_bad_tensors_and_ignores_integer_ones() -> None:
    check_finite({"a": torch.ones(2), "packed": torch.zeros(3, dtype=torch.uint8)}, "run")
    with pytest.raises(StageFailure, match=r"run: 1 of 2 weight tensors hold NaN or infinity \(b\); nothing was saved"):
        check_finite({"a": torch.ones(2), "b": torch.tensor([1.0, math.inf])}, "run")


def test_nonfinite_steps_reads_the_log_history() -> None:
    history = [
        {"step": 1, "grad_norm": 0.3},
        {"step": 2, "grad_norm": math.nan},
        {"step": 3, "grad_norm": math.inf},
        {"step": 3, "train_runtime": 1.0},
    ]
    assert nonfinite_steps(history) == [2, 3]


class PoisonGradients(TrainerCallback):
    """Makes the first trainable weight's gradient NaN in the listed steps (1-based) and records every
    trainable weight after each step."""

    def __init__(self, steps: set[int]) -> None:
        self.steps, self.handle, self.weights = steps, None, {}

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step + 1 in self.steps:
            first = next(p for p in model.parameters() if p.requires_grad)
            self.handle = first.register_hook(lambda grad: grad * math.nan)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
        self.weights[state.global_step] = [p.detach().clone() for p in model.parameters() if p.requires_grad]


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("numerics") / "runs"
    data = make_labelled_data(
        root,
        [("KEEP", "STRAIGHT"), ("STOP", "STRAIGHT"), ("DECELERATE", "LEFT_TURN"), ("ACCELERATE", "RIGHT_CHANGE")],
        {"train": range(4)},
    )
    return {
        "traces": distill_stage.run(DistillConfig(), OutputSpec(root), data=data).path,
        "model": models_tiny.run(TinyModelConfig(), OutputSpec(root)).path,
    }


def _sft(traces: dict[str, Path], root: Path, **overrides) -> object:
    config = SftConfig(
        model=str(traces["model"]),
        finetune="full",
        max_steps=4,
        per_device_batch_size=2,
        learning_rate=1e-3,
        save_steps=50,
        max_length=1024,
        **overrides,
    )
    return sft_stage.run(config, OutputSpec(root), data=traces["traces"])


def test_sft_skips_a_poisoned_step_and_publishes_finite_weights(traces, tmp_path, monkeypatch) -> None:
    poison = PoisonGradients({2})
    monkeypatch.setattr(training_callbacks, "EXTRA_CALLBACKS", [poison])
    artifact = _sft(traces, tmp_path)
    assert artifact.manifest["metrics"]["nonfinite_steps_skipped"] == [2]
    assert artifact.manifest["metrics"]["steps"] == 4
    assert all(
        torch.equal(a, b) for a, b in zip(poison.weights[1], poison.weights[2], strict=False)
    )  # step 2 changed nothing
    assert not all(
        torch.equal(a, b) for a, b in zip(poison.weights[2], poison.weights[3], strict=False)
    )  # step 3 trained
    assert all(torch.isfinite(weight).all() for weight in poison.weights[4])


def test_sft_whose_gradients_stay_nonfinite_stops_as_diverged(traces, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(training_callbacks, "EXTRA_CALLBACKS", [PoisonGradients({1, 2, 3, 4})])
    with pytest.raises(StageFailure, match="training diverged"):
        _sft(traces, tmp_path, max_nonfinite_steps=2)
    assert not list((tmp_path / "sft").glob("*-v1"))  # nothing published


def test_training_keeps_attention_off_cudnn(traces, tmp_path, monkeypatch) -> None:
    """cuDNN's SDPA backward returns NaN query gradients on left-padded batches of some lengths (numerics.py)."""
    monkeypatch.setattr(torch.backends.cuda, "enable_cudnn_sdp", lambda enabled: flags.append(enabled))
    flags: list[bool] = []
    _sft(traces, tmp_path)
    assert flags == [False]


def test_no_gradients_at_all_count_as_finite() -> None:
    """An engine that keeps gradients out of ``param.grad`` (DeepSpeed ZeRO) leaves the guard nothing to check."""
    model = torch.nn.Linear(2, 2)
    guard = NonFiniteGradientGuard(limit=1)
    guard.on_pre_optimizer_step(None, SimpleNamespace(global_step=0), None, model=model)
    assert guard.streak == []
