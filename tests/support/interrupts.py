"""A trainer callback that crashes a training run right after its first checkpoint is written."""

from __future__ import annotations

from transformers import TrainerCallback


class Interrupted(Exception):
    pass


class InterruptAfterSave(TrainerCallback):
    """Simulates a crash right after the first checkpoint is written."""

    def on_save(self, args, state, control, **kwargs):
        raise Interrupted(state.global_step)
