"""A start of SFT in which only the vision tower learns (``sft.language_frozen_epochs``).

A language model that can fit the traces from the prompt's text alone learns to ignore a vision tower trained from
random weights (docs/results.md, the image control). Frozen for the first epochs, it leaves the loss only one way
down: through the image tokens. The optimiser holds every weight from the start; a frozen weight has no gradient,
so AdamW neither moves nor decays it until it thaws.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import TrainerCallback

from alphadrive_cli.models.lora import vision_tower


def language_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Every weight of ``model`` outside its vision tower (the language model, its embeddings and head)."""
    tower = vision_tower(model)
    if tower is None:
        raise ValueError("the model has no vision tower to train alone")
    vision = {id(parameter) for parameter in tower.parameters()}
    return [parameter for parameter in model.parameters() if id(parameter) not in vision]


class LanguageWarmup(TrainerCallback):
    """Keeps the language model frozen while the run's epoch is below ``epochs``, then trains it too."""

    def __init__(self, model: torch.nn.Module, epochs: float) -> None:
        self.parameters = language_parameters(model)
        self.epochs = epochs

    def _set(self, epoch: float | None) -> None:
        thawed = (epoch or 0.0) >= self.epochs
        for parameter in self.parameters:
            parameter.requires_grad_(thawed)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._set(state.epoch)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._set(state.epoch)
