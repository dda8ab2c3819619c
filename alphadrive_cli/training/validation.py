"""Progress you can watch: greedy plans on a fixed validation sample every N steps, and the best step kept.

Every ``validation.every_steps`` optimiser steps (and at the last step) the policy answers a fixed sample
of the validation split greedily; planning accuracy, the format-valid rate, each class's recall and the
share of each predicted action are added to that step's log entry (so they reach the log history,
TensorBoard and the curves PNG). A fresh run also scores the policy it starts from, as a log entry of
step 0, so every curve begins where training began (that step is never the best one). With ``keep: best``
the trainable weights of the best step (planning accuracy; the earlier step on a tie) are kept in memory
and put back before the run is saved (one process only: sharded weights would copy as shards); after a
resume the search starts again at the resumed step, which the manifest says (``best_searched_from_step``).
Every process of a multi-process run scores the same sample, so collective operations stay in step.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alphadrive_cli.actions import ActionVocabulary
from alphadrive_cli.artifacts.store import Artifact
from alphadrive_cli.config.schemas import ValidationConfig
from alphadrive_cli.data.records import Record, iter_split
from alphadrive_cli.errors import BadInput
from alphadrive_cli.evaluation.metrics import open_loop_metrics
from alphadrive_cli.models.generation import GenerationSettings, complete_records
from alphadrive_cli.prompts import PromptTemplate

ACCURACY_KEY = "val/planning_accuracy"
FORMAT_KEY = "val/format_valid_rate"


def validation_sample(data: Artifact, vocabulary: ActionVocabulary, config: ValidationConfig) -> list[Record]:
    """Up to ``config.frames`` records of the validation split, drawn once with ``config.sample_seed`` (in file
    order)."""
    records = list(iter_split(data, "val", vocabulary)) if (data.path / "val.jsonl").is_file() else []
    if not records:
        raise BadInput(f"{data.path} has no validation records: validation.every_steps needs a val split")
    if len(records) <= config.frames:
        return records
    chosen = sorted(random.Random(config.sample_seed).sample(range(len(records)), config.frames))
    return [records[index] for index in chosen]


def validation_scores(
    records: Sequence[Record], texts: Sequence[str], vocabulary: ActionVocabulary
) -> dict[str, float]:
    """Planning accuracy, format-valid rate, per-class recall and answer shares of one validation pass."""
    metrics = open_loop_metrics([(r.speed_action, r.path_action) for r in records], texts, vocabulary)
    scores = {ACCURACY_KEY: metrics["planning_accuracy"], FORMAT_KEY: metrics["format_valid_rate"]}
    for head in ("speed", "path"):
        classes, confusion = metrics[head]["classes"], metrics[head]["confusion_matrix"]
        for position, action in enumerate(classes):
            scores[f"val/recall/{head}/{action}"] = metrics[head]["per_class"][action]["recall"]
            predicted = sum(row[position] for row in confusion)
            scores[f"val/answers/{head}/{action}"] = round(predicted / len(records), 6)
    return scores


def validation_panels(vocabulary: ActionVocabulary) -> list[tuple[str, list[str]]]:
    """The curves PNG's validation panels: accuracy, then recall and answer shares per head."""
    panels: list[tuple[str, list[str]]] = [("validation planning accuracy", [ACCURACY_KEY, FORMAT_KEY])]
    for head, actions in (("speed", vocabulary.speed), ("path", vocabulary.path)):
        panels.append((f"validation {head} recall", [f"val/recall/{head}/{action}" for action in actions]))
        panels.append((f"validation {head} answers", [f"val/answers/{head}/{action}" for action in actions]))
    return panels


def validation_callback(
    records: Sequence[Record],
    data_root: Path,
    processor: Any,
    template: PromptTemplate,
    vocabulary: ActionVocabulary,
    config: ValidationConfig,
) -> Any:
    """The ``TrainerCallback`` scoring ``records`` every ``config.every_steps`` steps (see the module docstring)."""
    from transformers import TrainerCallback

    class ValidationCallback(TrainerCallback):
        def __init__(self) -> None:
            self.pending: dict[str, float] | None = None
            self.best_step: int | None = None
            self.best_accuracy = -1.0
            self.best_weights: dict[str, Any] | None = None
            self.scored_steps: list[int] = []
            self.searched_from_step = 0
            self.trained: set[str] = set()

        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            self.searched_from_step = state.global_step  # > 0 after a resume: earlier steps' weights are gone
            if model is None:
                return
            # the weights the run trains, read before any step: sft's language_frozen_epochs freezes some for a while
            self.trained = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
            if state.global_step == 0:  # where training starts; a resume has it logged
                state.log_history.append({"step": 0, **self.score(model)})
                self.scored_steps.append(0)

        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            step = state.global_step
            if step % config.every_steps and step != state.max_steps:
                return
            self.pending = self.score(model)
            self.scored_steps.append(step)
            accuracy = self.pending[ACCURACY_KEY]
            if accuracy > self.best_accuracy:
                self.best_step, self.best_accuracy = step, accuracy
                if config.keep == "best":
                    self.best_weights = {
                        name: parameter.detach().to("cpu", copy=True)
                        for name, parameter in model.named_parameters()
                        if name in self.trained
                    }

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
        ) -> None:
            if self.pending is None or logs is None or not state.log_history:
                return
            logs.update(self.pending)  # seen by the callbacks after this one: TensorBoard
            state.log_history[-1].update(self.pending)
            self.pending = None

        def score(self, model: Any) -> dict[str, float]:
            tokenizer = processor.tokenizer
            padding_side, was_training = tokenizer.padding_side, model.training
            model.eval()
            texts: list[str] = []
            settings = GenerationSettings(config.max_new_tokens)
            try:
                for start in range(0, len(records), config.batch_size):
                    batch = records[start : start + config.batch_size]
                    completions = complete_records(model, processor, template, batch, vocabulary, data_root, settings)
                    texts.extend(row[0] for row in completions)
            finally:
                tokenizer.padding_side = padding_side
                model.train(was_training)
            return validation_scores(records, texts, vocabulary)

        def restore_best(self, model: Any) -> None:
            """Put the best step's trainable weights back (``keep: best``); nothing when none was kept."""
            if self.best_weights is None:
                return
            parameters = dict(model.named_parameters())
            for name, value in self.best_weights.items():
                parameters[name].data.copy_(value.to(parameters[name].device))

        def summary(self) -> dict[str, Any]:
            """The manifest's ``validation`` section."""
            last = self.scored_steps[-1] if self.scored_steps else None
            kept = self.best_step if config.keep == "best" else last
            return {
                **config.model_dump(),
                "frames_scored": len(records),
                "scored_steps": self.scored_steps,
                "best_step": self.best_step,
                "best_planning_accuracy": self.best_accuracy if self.best_step is not None else None,
                "best_searched_from_step": self.searched_from_step,
                "published_step": kept,
            }

    return ValidationCallback()
