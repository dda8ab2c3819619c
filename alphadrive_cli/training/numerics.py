"""Keeping NaN and infinity out of trained weights.

bf16 autocast has no loss scaler to catch an overflow, and one optimiser step on a non-finite gradient turns
every weight into NaN: the run then goes on, rollouts decode garbage, and the artifact looks finished. The
guard below skips such an update instead (the gradients are dropped, so the optimiser leaves every weight and
its moments as they were) and stops a run whose gradients stay non-finite; :func:`check_finite` refuses to
save weights that are not finite all the same, and to load them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from transformers import TrainerCallback

from alphadrive_cli.errors import StageFailure
from alphadrive_cli.ui import console


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """A sharded (DTensor) gradient's local part; any other tensor as it is."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    """Whether every element of ``tensors`` is finite, in every process of a multi-process run (each may hold
    other shards, so all of them take the same decision). No tensors at all (an engine that keeps gradients
    elsewhere, the same in every process) is finite, with nothing to exchange."""
    local = [_local(tensor).detach() for tensor in tensors]
    if not local:
        return True
    filled = [tensor for tensor in local if tensor.numel()]  # an empty shard has no largest magnitude
    # the largest magnitude: NaN and infinity carry through it and nothing can overflow, and on CUDA it takes a
    # few fused kernels for all the tensors instead of two per tensor
    largest = torch.nn.utils.get_total_norm(filled, norm_type=math.inf) if filled else local[0].new_zeros(())
    flag = torch.isfinite(largest).to(torch.int32)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item())


class NonFiniteGradientGuard(TrainerCallback):
    """Skips every optimiser update whose gradients hold NaN or infinity, and stops the run as diverged after
    ``limit`` such steps in a row. The trainer's log history still records each skipped step's non-finite
    ``grad_norm`` (see :func:`nonfinite_steps`). Gradients that an engine keeps out of ``param.grad``
    (DeepSpeed ZeRO) are not seen here."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.streak: list[int] = []

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        parameters = [parameter for parameter in model.parameters() if parameter.grad is not None]
        if all_finite(parameter.grad for parameter in parameters):
            self.streak = []
            return
        step = state.global_step + 1
        for parameter in parameters:
            parameter.grad = None  # the optimiser passes over parameters without a gradient
        self.streak.append(step)
        console.print(
            f"[yellow]warning:[/] step {step}: non-finite gradients (NaN or infinity); this update was skipped"
        )
        if len(self.streak) >= self.limit:
            raise StageFailure(
                f"training diverged: the gradients were non-finite in {self.limit} consecutive steps "
                f"({self.streak[0]}-{step}); if the loss grew before, try a lower learning_rate (the last checkpoint "
                "is kept; known kernel faults: docs/design.md#training-stages-sft-grpo)"
            )


def avoid_cudnn_attention() -> None:
    """Send attention through the flash and memory-efficient kernels, never cuDNN's, for the rest of the process.
    From torch 2.11 on H100/H200, cuDNN's SDPA backward (the default backend) returns NaN query gradients when a
    mask is passed, the padded length is 64 modulo 128 and a query row is fully masked (pytorch/pytorch#196678);
    a left-padded GRPO batch is all three, at one length in 128. Measured here: three of six recipe-study runs
    diverged, each at the first rollout whose longest completion made the batch 448 tokens long."""
    torch.backends.cuda.enable_cudnn_sdp(False)


def nonfinite_steps(history: Iterable[Mapping[str, Any]]) -> list[int]:
    """The steps of a trainer's log history whose gradient norm was NaN or infinite (updates the guard skipped)."""
    return [
        int(entry["step"])
        for entry in history
        if isinstance(entry.get("grad_norm"), float) and not math.isfinite(entry["grad_norm"])
    ]


def check_finite(
    weights: Mapping[str, torch.Tensor],
    what: str,
    outcome: str = "nothing was saved",
    error: type[Exception] = StageFailure,
) -> None:
    """Raise ``error`` naming the first tensors of ``weights`` that hold NaN or infinity, then ``outcome``.
    Integer (quantised) tensors and tensors without data (offloaded, on ``meta``) are not read."""
    bad = [
        name
        for name, tensor in weights.items()
        if tensor.is_floating_point() and not tensor.is_meta and not torch.isfinite(_local(tensor)).all()
    ]
    if bad:
        raise error(
            f"{what}: {len(bad)} of {len(weights)} weight tensors hold NaN or infinity "
            f"({', '.join(bad[:3])}{' …' if len(bad) > 3 else ''}); {outcome}"
        )
