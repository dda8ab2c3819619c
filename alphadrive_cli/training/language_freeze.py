"""A start of SFT in which only the vision tower learns (``sft.language_frozen_epochs``).

A language model that can fit the traces from the prompt's text alone learns to ignore a vision tower trained from
random weights (docs/results.md, the image control). Frozen for the first epochs, it leaves the loss only one way
down: through the image tokens. The optimiser holds every weight from the start; a frozen weight has no gradient,
so AdamW neither moves nor decays it until it thaws, and then at the schedule's learning rate of that step, with
fresh moments (no warmup of its own).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from alphadrive_cli.models.lora import vision_tower
from alphadrive_cli.ui import console


def language_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Every weight of ``model`` outside its vision tower (the language model, its embeddings and head)."""
    tower = vision_tower(model)
    if tower is None:
        raise ValueError("the model has no vision tower to train alone")
    vision = {id(parameter) for parameter in tower.parameters()}
    return [parameter for parameter in model.parameters() if id(parameter) not in vision]


class LanguageFreeze(TrainerCallback):
    """Keeps the language model frozen while the run's epoch is below ``epochs``, then trains it too. It acts at
    each step's start only, so callbacks that read the trainable weights at the run's start see them all."""

    def __init__(self, epochs: float) -> None:
        self.epochs = epochs
        self.language_weights: list[torch.nn.Parameter] | None = None
        self.thawed_at_step: int | None = None

    def on_step_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: torch.nn.Module | None = None,
        **kwargs: Any,
    ) -> None:
        if self.language_weights is None:  # the trainer's model, as wrapped for the run
            self.language_weights = language_parameters(model)
        thawed = (state.epoch or 0.0) >= self.epochs
        if thawed and self.thawed_at_step is None:
            self.thawed_at_step = state.global_step + 1
            console.print(f"the language model trains from step {self.thawed_at_step} on (epoch {self.epochs:g})")
        for weight in self.language_weights:
            weight.requires_grad_(thawed)
