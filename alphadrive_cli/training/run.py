"""The training run ``sft`` and ``grpo`` share around a transformers ``Trainer``: arguments, training and saving,
and the metrics and manifest sections of a finished run."""

from __future__ import annotations

import json
import math
import shutil
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import torch

from alphadrive_cli.actions import ActionVocabulary
from alphadrive_cli.artifacts.store import Artifact, ArtifactWriter, OutputSpec, canonical_hash, open_artifact
from alphadrive_cli.config.schemas import TrainingConfig
from alphadrive_cli.data.records import Record, dataset_vocabulary, iter_split
from alphadrive_cli.errors import BadInput
from alphadrive_cli.models.loading import ModelSource, model_config
from alphadrive_cli.prompts import PromptTemplate, add_prompts, require_scene
from alphadrive_cli.training.callbacks import CLOCK_KEY, close_tensorboard, silence_stdout_callbacks, trainer_callbacks
from alphadrive_cli.training.checkpoints import CHECKPOINT_DIR, last_checkpoint
from alphadrive_cli.training.determinism import deterministic_kernels
from alphadrive_cli.training.distributed import after_everyone, launch_world_size, on_main
from alphadrive_cli.training.numerics import avoid_cudnn_attention, check_finite, nonfinite_steps
from alphadrive_cli.training.policy import (
    Precision,
    gathered_weights,
    load_policy,
    model_summary,
    restore_full_weights,
    save_policy,
    training_precision,
    weight_dtype,
)
from alphadrive_cli.training.validation import validation_callback, validation_panels, validation_sample
from alphadrive_cli.ui import console

ConfigT = TypeVar("ConfigT", bound=TrainingConfig)

LOG_HISTORY = "log_history.json"


def save_run(
    writer: ArtifactWriter,
    trainer: Any,
    model: Any,
    weights: dict[str, Any] | None,
    processor: Any,
    callbacks: Sequence[Any],
    panels: Sequence[tuple[str, Sequence[str]]],
    title: str,
    png: str,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Write a finished run into the artifact (the main process's job): the policy, the processor, the log
    history, the curves PNG and flushed TensorBoard files; drop the checkpoints. Returns the log history and
    the curves drawn."""
    from alphadrive_cli.training.plots import curves_png  # matplotlib only when needed

    check_finite(
        weights
        if weights is not None
        else {name: parameter for name, parameter in model.named_parameters() if parameter.requires_grad},
        f"{title}: the trained weights",
    )
    save_policy(model, writer.dir, weights)
    processor.save_pretrained(str(writer.dir))
    history = trainer.state.log_history
    write_log_history(writer, history)
    plotted = curves_png(history, panels, title, writer.path(png))
    close_tensorboard(callbacks)
    shutil.rmtree(writer.dir / CHECKPOINT_DIR, ignore_errors=True)
    return history, plotted


def train_and_save(
    writer: ArtifactWriter,
    trainer: Any,
    model: Any,
    processor: Any,
    callbacks: Sequence[Any],
    checkpoint: str | None,
    panels: Sequence[tuple[str, Sequence[str]]],
    title: str,
    png: str,
    validation: Any | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Train (resuming from ``checkpoint``, if any), put back the best validation step's weights where
    ``validation`` kept them, then, once every process has finished, save the run on the main process
    (:func:`save_run`). Returns the log history and the curves drawn."""
    silence_stdout_callbacks(trainer)
    restore_full_weights(model, checkpoint)
    trainer.train(resume_from_checkpoint=checkpoint)
    if validation is not None:
        validation.restore_best(model)
    weights = gathered_weights(trainer)
    return after_everyone(lambda: save_run(writer, trainer, model, weights, processor, callbacks, panels, title, png))


def trainer_arguments(config: TrainingConfig, precision: Precision, checkpoints: Path) -> dict[str, Any]:
    """The ``TrainingArguments`` both trainers take from a training config: schedule, checkpoints every
    ``save_steps`` (the last two kept), a log entry per step, no stdout progress, no external reporting."""
    return {
        "output_dir": str(checkpoints),
        "per_device_train_batch_size": config.per_device_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "learning_rate": config.learning_rate,
        "max_steps": config.max_steps,
        "num_train_epochs": config.epochs,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": 2,
        "logging_steps": 1,
        "report_to": "none",
        "log_level_replica": "error",  # the other processes of a multi-process run stay quiet
        "seed": config.seed,
        "bf16": precision.bf16,
        "use_cpu": not precision.cuda,
        "gradient_checkpointing": config.gradient_checkpointing,
        "gradient_checkpointing_kwargs": {"use_reentrant": False},
        "remove_unused_columns": False,
        "dataloader_num_workers": config.dataloader_workers,
        # workers (and the frame caches they fill) live through the whole run, not one epoch; a trainer that turns
        # workers off (TRL's GRPOTrainer for an iterable dataset, which this project never passes) must turn this off
        "dataloader_persistent_workers": config.dataloader_workers > 0,
        "disable_tqdm": True,
    }


def run_metrics(trainer: Any, precision: Precision) -> dict[str, Any]:
    """Steps, the mean training loss, the steps whose update was skipped for non-finite gradients, epochs,
    throughput, training time and (on CUDA) peak memory of a finished ``trainer.train()``.

    All but peak memory come from the log history, which a resumed run restores from its checkpoint, so a
    resumed run reports the whole run's numbers (the trainer's own train result covers only its last session):
    the loss is the mean over every step's logged loss, and samples/s is steps x batch x accumulation x
    processes over the training time that :func:`training_clock` stamped up to the last step."""
    history, args, steps = trainer.state.log_history, trainer.args, trainer.state.global_step
    losses = [entry["loss"] for entry in history if "loss" in entry]
    runtime = max((entry[CLOCK_KEY] for entry in history if CLOCK_KEY in entry), default=None)
    samples = steps * args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    metrics: dict[str, Any] = {
        "steps": steps,
        "train_loss": finite_round(sum(losses) / len(losses)) if losses else None,
        "nonfinite_steps_skipped": nonfinite_steps(history),
        "epochs": finite_round(trainer.state.epoch),
        "train_samples_per_second": finite_round(samples / runtime) if runtime else None,
        "train_runtime_s": finite_round(runtime),
    }
    if precision.cuda:
        metrics["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    return metrics


def training_summary(
    config: TrainingConfig, precision: Precision, quantized: bool, resumed_from: int | None
) -> dict[str, Any]:
    """The manifest's ``training`` section: what precision and device the run actually used."""
    return {
        "finetune": config.finetune,
        "quantization": "4bit" if quantized else "none",
        "requested_quantization": config.quantization,
        "dtype": str(weight_dtype(config, precision)).removeprefix("torch."),
        "autocast": "bfloat16" if precision.bf16 else None,
        "device": precision.device,
        "deterministic_kernels": config.deterministic,
        "resumed_from_step": resumed_from,
    }


def write_log_history(writer: ArtifactWriter, history: list[dict[str, Any]]) -> None:
    """The trainer's log history as JSON in the artifact."""
    writer.path(LOG_HISTORY).write_text(json.dumps(history, indent=1) + "\n")


def finite_round(value: Any, digits: int = 6) -> Any:
    """``value`` rounded if it is a finite number; anything else unchanged."""
    if value is None or not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
        return value
    return round(float(value), digits)


@dataclass
class RunSetup:
    """What a stage's recipe builds its trainer from: the run's artifact writer, the train split, the policy
    and processor, the checkpoint directory and the callbacks every run gets."""

    writer: ArtifactWriter
    data: Artifact
    records: list[Record]
    vocabulary: ActionVocabulary
    source: ModelSource
    family: str
    template: PromptTemplate
    precision: Precision
    model: Any
    quantized: bool
    processor: Any
    checkpoints: Path
    resumed_from: int | None
    callbacks: list[Any]


class TrainingRecipe(ABC, Generic[ConfigT]):
    """What one training stage adds to the shared run (:func:`run_training`): its data and policy checks, its
    trainer, its metrics and manifest sections. Everything else (opening the data, loading the policy,
    checkpoints, callbacks, training, saving, publishing) is the same for every stage."""

    stage: ClassVar[str]
    data_stages: ClassVar[tuple[str, ...]]  # the artifact stages accepted as --data
    policy_role: ClassVar[str]  # the starting model's name among the artifact's inputs
    run_only_settings: ClassVar[tuple[str, ...]]  # settings a resumed run may change: not part of its identity
    counted: ClassVar[str]  # what counts.<counted> counts: the train records
    curves: ClassVar[Sequence[tuple[str, Sequence[str]]]]  # (panel title, log keys) of the curves PNG
    curves_png: ClassVar[str]
    console_fields: ClassVar[Sequence[tuple[str, str]]]  # (log key, label) printed each step

    def __init__(self, config: ConfigT) -> None:
        self.config = config

    @abstractmethod
    def policy_source(self) -> ModelSource:
        """The model to start from (raises BadInput when the config names none or the wrong kind)."""

    def check_records(self, data: Artifact, records: list[Record], vocabulary: ActionVocabulary) -> None:
        """Refuse a train split this stage cannot train on (BadInput); nothing by default."""

    def processor_location(self, source: ModelSource) -> str:
        """Where the processor is read from."""
        return source.location

    @abstractmethod
    def build_trainer(self, setup: RunSetup) -> Any:
        """The TRL trainer for this run, with ``setup.callbacks`` and checkpoints under ``setup.checkpoints``."""

    @abstractmethod
    def metrics(self, history: list[dict[str, Any]]) -> dict[str, Any]:
        """This stage's metrics from the finished run's log history (the shared ones are added)."""

    @abstractmethod
    def manifest(self, setup: RunSetup, trainer: Any) -> dict[str, dict[str, Any]]:
        """Manifest sections: ``model``, ``training`` and ``curves`` extend the shared ones, others are added."""

    @abstractmethod
    def headline(self, metrics: Mapping[str, Any]) -> str:
        """The one-line result printed to the console, after the run's name."""

    def after_training(self, setup: RunSetup) -> None:
        """Work on the main process once the run is saved and the trainer freed; nothing by default."""


def run_training(recipe: TrainingRecipe[Any], data_path: Path, output: OutputSpec) -> Artifact:
    """Train on the train split of the artifact at ``data_path`` as ``recipe`` says and publish the result."""
    config = recipe.config
    data = open_artifact(data_path, stage=recipe.data_stages)
    vocabulary = dataset_vocabulary(data)
    records = list(iter_split(data, "train", vocabulary))
    if not records:
        raise BadInput(f"{data.path} has no records in its train split")
    recipe.check_records(data, records, vocabulary)
    source = recipe.policy_source()
    template = source.student_prompt(config.prompt)
    require_scene(template, records)
    base_config = model_config(source)  # config only: fails early on unsupported models
    inputs: dict[str, Artifact] = {"data": data}
    if source.artifact is not None:
        inputs[recipe.policy_role] = source.artifact
    settings = config.model_dump(mode="json")
    identity = {key: value for key, value in settings.items() if key not in recipe.run_only_settings}
    with (
        on_main(lambda: output.begin(recipe.stage, recipe.stage, settings, inputs=inputs, identity=identity)) as writer,
        deterministic_kernels(config.deterministic),
    ):
        return _train(recipe, writer, data, records, vocabulary, source, base_config, template)


def _train(
    recipe: TrainingRecipe[Any],
    writer: ArtifactWriter,
    data: Artifact,
    records: list[Record],
    vocabulary: ActionVocabulary,
    source: ModelSource,
    base_config: Any,
    template: PromptTemplate,
) -> Artifact:
    from alphadrive_cli.models.lora import trainable_parameters
    from alphadrive_cli.models.processor import load_processor

    config, family = recipe.config, base_config.model_type
    add_prompts(writer, template)
    precision = training_precision()
    avoid_cudnn_attention()
    model, quantized = load_policy(source, config, precision)
    processor = load_processor(recipe.processor_location(source), family=family)
    trainable, total = trainable_parameters(model)
    checkpoints = writer.dir / CHECKPOINT_DIR
    last, resumed_from = last_checkpoint(checkpoints)
    callbacks, tensorboard = trainer_callbacks(writer, recipe.console_fields, config)
    validation, panels = None, list(recipe.curves)
    if config.validation.every_steps:
        if config.validation.keep == "best" and launch_world_size() > 1:  # sharded weights (ZeRO-3) copy as shards
            raise BadInput("validation.keep: best runs in one process; drop it or train with one process")
        sample = validation_sample(data, vocabulary, config.validation)
        validation = validation_callback(sample, data.path, processor, template, vocabulary, config.validation)
        callbacks.insert(1, validation)  # before TensorBoard, which logs what it adds
        panels += validation_panels(vocabulary)
    setup = RunSetup(
        writer, data, records, vocabulary, source, family, template, precision, model, quantized, processor,
        checkpoints, resumed_from, callbacks,
    )  # fmt: skip
    trainer = recipe.build_trainer(setup)
    title = f"{recipe.stage} {writer.name}"
    history, curves = train_and_save(
        writer, trainer, model, processor, callbacks, last, panels, title, recipe.curves_png, validation
    )
    metrics = {**recipe.metrics(history), **run_metrics(trainer, precision)}
    sections = recipe.manifest(setup, trainer)
    del trainer, model
    setup.model = None  # the training copies are freed before after_training (sft's merge loads the base again)
    on_main(lambda: recipe.after_training(setup))
    resumed = f" (resumed from step {resumed_from})" if resumed_from is not None else ""
    console.print(f"{title}: {recipe.headline(metrics)}{resumed}")
    extra = {
        "model": {**model_summary(source, family, canonical_hash(base_config.to_dict())), **sections.pop("model", {})},
        "training": {**training_summary(config, precision, quantized, resumed_from), **sections.pop("training", {})},
        "curves": {
            "png": recipe.curves_png,
            "plotted": curves,
            "log_history": LOG_HISTORY,
            "tensorboard": tensorboard,
            **sections.pop("curves", {}),
        },
        **sections,
        **({"validation": validation.summary()} if validation is not None else {}),
    }
    counts = {recipe.counted: len(records), "trainable_parameters": trainable, "parameters": total}
    return on_main(lambda: writer.publish(counts=counts, metrics=metrics, extra=extra))
