"""GRPO's prompt loader: how TRL's trainer gets a rollout's prompt rows.

TRL's loader batch is a whole rollout's prompt rows (``per_device_batch_size x steps_per_generation``). The trainer
fetches one at every optimiser step, and TRL uses it at the rollout's first step only: its sampler repeats a
rollout's indices at each of the rollout's steps. A row holds chat messages, frames and labels, never a tensor.
So the loader does not pin rows (:data:`ARGUMENTS`), reads a rollout's rows from their table once
(:class:`~alphadrive_cli.training.rollout_rows.RolloutRows`), and hands them over as they are, without accelerate's
walk of every row on its way to the device (:func:`host_prompt_loader`). docs/benchmarks.md, rows 14 to 16.
"""

from __future__ import annotations

from typing import Any

ARGUMENTS = {"dataloader_pin_memory": False}  # TrainingArguments: pinning rows without a tensor only walks them


def read_rows_once_a_rollout(trainer: Any) -> None:
    """The trainer's prompt rows give a rollout's batch back for as many steps as TRL's sampler repeats it."""
    trainer.train_dataset.repeats = trainer.args.steps_per_generation * trainer.num_iterations


def leave_batches_on_host(loader: Any) -> None:
    """accelerate moves each batch to the device, rebuilding every row's lists and dicts; a prompt row has
    nothing to move."""
    if hasattr(loader, "device"):
        loader.device = None


def host_prompt_loader(trainer_class: type) -> type:
    """``trainer_class`` (TRL's GRPOTrainer or a subclass) whose training loader reads a rollout's prompt rows once
    and leaves them on the host."""

    class HostPromptLoader(trainer_class):  # type: ignore[misc, valid-type]
        def get_train_dataloader(self) -> Any:
            read_rows_once_a_rollout(self)
            loader = super().get_train_dataloader()
            leave_batches_on_host(loader)
            return loader

    HostPromptLoader.__name__ = f"{trainer_class.__name__}WithHostPrompts"
    return HostPromptLoader
