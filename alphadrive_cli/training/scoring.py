"""Larger chunks for scoring a GRPO rollout: the old-policy and reference log-probabilities are computed without
gradients, TRL in chunks of ``per_device_train_batch_size``; for a small, launch-bound model, fewer and larger
forward passes cost less (docs/benchmarks.md)."""

from __future__ import annotations

from typing import Any

import torch


def scoring_in_chunks_of(trainer_class: type, batch_size: int | None) -> type:
    """``trainer_class`` (TRL's GRPOTrainer or a subclass) whose gradient-free log-probability passes take
    ``batch_size`` sequences at a time; unchanged with None. Passes with gradients (the loss) keep TRL's chunk."""
    if batch_size is None:
        return trainer_class

    class ScoringInLargerChunks(trainer_class):  # type: ignore[misc, valid-type]
        def _get_per_token_logps_and_entropies(self, *args: Any, **kwargs: Any) -> Any:
            if not torch.is_grad_enabled():
                kwargs["batch_size"] = batch_size
            return super()._get_per_token_logps_and_entropies(*args, **kwargs)

    ScoringInLargerChunks.__name__ = f"{trainer_class.__name__}ScoringBy{batch_size}"
    return ScoringInLargerChunks
