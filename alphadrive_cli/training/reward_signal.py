"""Watching GRPO for a run that cannot learn: every group's completions earning equal rewards.

GRPO's advantage is a completion's reward against its group's mean, so a step whose groups all have equal rewards
(TRL logs ``frac_reward_zero_std`` = 1) changes the policy only through the KL term. From a start that never
answers in the reward format (RL only from random weights, or from a language model that does not follow the
format instruction: docs/results.md) that is every step, and a run would spend its whole budget learning nothing.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from alphadrive_cli.ui import console

ZERO_STD_KEY = "frac_reward_zero_std"


def has_signal(logs: dict[str, Any]) -> bool | None:
    """Whether a logged GRPO step had any group with unequal rewards (None: the log is not a training step's)."""
    value = logs.get(ZERO_STD_KEY)
    return None if not isinstance(value, (int, float)) else value < 1.0


class RewardSignalWatch(TrainerCallback):
    """Warns once, on the console, when the first ``steps`` logged training steps all had no reward signal; with
    ``stop_after`` > 0, stops the run once that many logged steps from the start all had none (``stopped``)."""

    def __init__(self, steps: int = 10, stop_after: int = 0) -> None:
        self.steps = steps
        self.stop_after = stop_after
        self.flat = 0
        self.learning = False
        self.stopped = False

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        signal = has_signal(logs or {})
        if self.learning or self.stopped or signal is None:
            return
        if signal:
            self.learning = True
            return
        self.flat += 1
        if self.flat == self.steps:
            console.print(
                f"[yellow]warning:[/] no reward signal in the first {self.flat} logged steps: every group's "
                "completions earned equal rewards, so every advantage is zero and the policy is not learning. A start "
                "that never answers in the reward format cannot: warm it up with `alphadrive sft` first "
                "(`alphadrive eval --samples 8` shows a model's reward signal before RL)"
            )
        if self.stop_after and self.flat >= self.stop_after:
            self.stopped = True
            control.should_training_stop = True
            console.print(
                f"stopping: no reward signal in the first {self.flat} logged steps (stop_without_signal); "
                "the model is saved as it is"
            )
