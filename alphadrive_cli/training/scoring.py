"""Larger chunks for scoring a GRPO rollout: the old-policy and reference log-probabilities are computed without
gradients, TRL in chunks of ``per_device_train_batch_size``; for a small, launch-bound model, fewer and larger
forward passes cost less (docs/benchmarks.md). A chunk's logits (sequences x scored positions x vocabulary) are
capped, so that a real vocabulary (SmolLM2's 49k, Qwen2's 152k tokens) does not turn a large chunk into tens of
gigabytes of logits; the cap never shrinks a chunk below TRL's own."""

from __future__ import annotations

from typing import Any

import torch

LOGITS_PER_SCORING_PASS = 2**30  # elements: 2 GiB of bf16 logits (TRL copies them once to divide by temperature)


def scoring_chunk(batch_size: int, logits_to_keep: int, vocabulary: int, floor: int) -> int:
    """Sequences per gradient-free scoring pass: ``batch_size``, fewer where their logits would exceed
    ``LOGITS_PER_SCORING_PASS`` elements, never fewer than ``floor`` (TRL's own chunk)."""
    fitting = LOGITS_PER_SCORING_PASS // max(1, logits_to_keep * vocabulary)
    return max(floor, min(batch_size, fitting))


def scoring_in_chunks_of(trainer_class: type, batch_size: int | None) -> type:
    """``trainer_class`` (TRL's GRPOTrainer or a subclass) whose gradient-free log-probability passes take
    ``batch_size`` sequences at a time (fewer where the logits cap binds); unchanged with None. Passes with
    gradients (the loss) keep TRL's chunk."""
    if batch_size is None:
        return trainer_class

    class ScoringInLargerChunks(trainer_class):  # type: ignore[misc, valid-type]
        def _get_per_token_logps_and_entropies(
            self, model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int, **kwargs: Any
        ) -> Any:
            if not torch.is_grad_enabled():
                vocabulary = model.get_output_embeddings().out_features
                floor = self.args.per_device_train_batch_size
                kwargs["batch_size"] = scoring_chunk(batch_size, logits_to_keep, vocabulary, floor)
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, **kwargs
            )

    ScoringInLargerChunks.__name__ = f"{trainer_class.__name__}ScoringBy{batch_size}"
    return ScoringInLargerChunks
