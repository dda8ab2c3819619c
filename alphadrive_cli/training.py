"""What the SFT and GRPO stages share around a transformers ``Trainer``.

Device and precision, the trainable policy (a base model with fresh LoRA adapters, or a trained
adapter continued), console and TensorBoard callbacks (stdout stays reserved for the artifact path),
and the checkpoint an interrupted run continues from.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from alphadrive_cli.artifacts import ArtifactWriter
from alphadrive_cli.distributed import after_everyone, is_main_process, on_main
from alphadrive_cli.errors import BadInput
from alphadrive_cli.models.loading import ModelSource, load_model
from alphadrive_cli.numerics import NonFiniteGradientGuard, check_finite, nonfinite_steps
from alphadrive_cli.schemas import TrainingConfig
from alphadrive_cli.ui import console

CHECKPOINT_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
LOG_HISTORY = "log_history.json"
CLOCK_KEY = "train_elapsed_s"  # stamped on every log entry: training seconds so far, over all sessions of a run
# Extra transformers TrainerCallbacks for every run (tests use it to interrupt a run after a checkpoint).
EXTRA_CALLBACKS: list[Any] = []


@dataclass(frozen=True)
class Precision:
    """Where training runs and in which floating-point type."""

    cuda: bool
    bf16: bool

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.bf16 else torch.float32

    @property
    def device(self) -> str:
        return "cuda" if self.cuda else "cpu"


def training_precision() -> Precision:
    """bf16 on a CUDA device that supports it, else fp32 (CPU)."""
    cuda = torch.cuda.is_available()
    return Precision(cuda=cuda, bf16=cuda and torch.cuda.is_bf16_supported())


def weight_dtype(config: TrainingConfig, precision: Precision) -> torch.dtype:
    """The dtype the policy's weights are loaded in: fp32 master weights for ``finetune: full`` (bf16 runs
    as autocast, so small updates are not rounded away), else the precision's dtype under frozen bases."""
    return torch.float32 if config.finetune == "full" else precision.dtype


def base_model_location(source: ModelSource) -> str:
    """What an adapter's ``base_model_name_or_path`` records: an absolute path, or the hub id."""
    weights = source.weights
    return weights.location if weights.kind == "hub" else str(Path(weights.location).resolve())


def load_policy(source: ModelSource, config: TrainingConfig, precision: Precision) -> tuple[Any, bool]:
    """The trainable model and whether its base is 4-bit quantised.

    ``finetune: lora`` puts fresh LoRA adapters on a full model, or continues a trained adapter (an
    ``sft`` or ``grpo`` artifact holding one), its LoRA shape taken from the adapter; ``finetune: full``
    trains every weight of a full model (the vision tower stays frozen with ``freeze_vision``).
    Peak GPU memory is counted from here. Without CUDA a 4-bit request falls back to full-precision LoRA, and the
    console says so.
    """
    from alphadrive_cli.models.lora import apply_lora, prepare_for_training, quantization_config

    if precision.cuda:
        torch.cuda.reset_peak_memory_stats()  # run_metrics' peak memory counts from the load on
    if config.finetune == "full" and source.base is not None:
        raise BadInput(
            f"{source.reference} is a LoRA adapter: full fine-tuning needs a full model "
            f"(merge it with `sft --merge`, or use finetune: lora to continue the adapter)"
        )
    quantization = quantization_config(config)
    if config.quantization == "4bit" and quantization is None:
        console.print("[yellow]note:[/] 4-bit quantization (QLoRA) needs CUDA; training plain LoRA in fp32 on the CPU")
    load_kwargs: dict[str, Any] = {"quantization_config": quantization} if quantization is not None else {}
    if precision.cuda:
        load_kwargs["device_map"] = {"": torch.cuda.current_device()}
    if source.base is not None:
        model = load_model(source, dtype=precision.dtype, trainable_adapter=True, **load_kwargs)
        prepare_for_training(model, config)
    elif config.finetune == "lora":
        model = apply_lora(load_model(source, dtype=precision.dtype, **load_kwargs), config)
        model.peft_config["default"].base_model_name_or_path = base_model_location(source)
    else:
        model = load_model(source, dtype=weight_dtype(config, precision), **load_kwargs)
        prepare_for_training(model, config)
    return model, quantization is not None


def restore_full_weights(model: Any, checkpoint: str | None) -> None:
    """Load a fully fine-tuned model's weights from the checkpoint a run resumes from (adapters need nothing).

    transformers 5.17 saves checkpoints with Qwen-VL's original key names and its resume reloads them
    without mapping the names back, so it restores no weight (huggingface/transformers#43701); its
    warnings about missing and unexpected keys that follow are about that and are harmless here.
    """
    from peft import PeftModel

    if checkpoint is None or isinstance(model, PeftModel):
        return
    model.load_state_dict(type(model).from_pretrained(checkpoint, dtype=model.dtype).state_dict())
    console.print(
        f"restored the model's weights from {Path(checkpoint).name} (transformers' warnings about its keys "
        f"that may follow are expected)"
    )


def save_policy(model: Any, directory: Path, weights: dict[str, Any] | None = None) -> None:
    """Save the trained adapter (only the policy's: not TRL's frozen KL reference copy) or the full model;
    ``weights``: the full state dict where training sharded it (see :func:`gathered_weights`)."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model.save_pretrained(str(directory), selected_adapters=["default"], state_dict=weights)
    else:
        model.save_pretrained(str(directory), state_dict=weights)


def gathered_weights(trainer: Any) -> dict[str, Any] | None:
    """The policy's full state dict where several processes each hold a shard of it (DeepSpeed ZeRO-3, FSDP),
    else None (every process holds it whole: one process, DDP, ZeRO-1/2). Every process must call it."""
    if trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
        return trainer.accelerator.get_state_dict(trainer.model_wrapped)
    return None


def model_summary(source: ModelSource, family: str, config_sha256: str) -> dict[str, Any]:
    """The manifest's ``model`` section: where the trained model came from."""
    return {
        "reference": source.reference,
        **source.describe(),
        "family": family,
        "base_model_name_or_path": base_model_location(source),
        "config_sha256": config_sha256,
    }


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
    from alphadrive_cli.training_plots import curves_png  # matplotlib only when needed

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
) -> tuple[list[dict[str, Any]], list[str]]:
    """Train (resuming from ``checkpoint``, if any), then, once every process has finished, save the run on the
    main process (:func:`save_run`). Returns the log history and the curves drawn."""
    silence_stdout_callbacks(trainer)
    restore_full_weights(model, checkpoint)
    trainer.train(resume_from_checkpoint=checkpoint)
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
        "resumed_from_step": resumed_from,
    }


def console_logger(fields: Sequence[tuple[str, str]]) -> Any:
    """A callback printing each training step's ``fields`` ((log key, label) pairs) to the console (stderr)."""
    from transformers import TrainerCallback

    class ConsoleLogger(TrainerCallback):
        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
        ) -> None:
            if not logs or "loss" not in logs:
                return
            parts = [f"{label} {logs[key]:.4g}" for key, label in fields if isinstance(logs.get(key), (int, float))]
            console.print(
                f"step {state.global_step}/{state.max_steps}: " + ", ".join(parts), highlight=False, soft_wrap=True
            )

    return ConsoleLogger()


def training_clock() -> Any:
    """A callback stamping each new log entry with ``train_elapsed_s``: training seconds so far, counted on from
    the last stamp of the restored history when a run resumes (time lost after the checkpoint is not counted,
    like the steps redone)."""
    from transformers import TrainerCallback

    class TrainingClock(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.before = max((entry.get(CLOCK_KEY, 0.0) for entry in state.log_history), default=0.0)
            self.started = time.perf_counter()

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
        ) -> None:
            if state.log_history:
                state.log_history[-1][CLOCK_KEY] = round(self.before + time.perf_counter() - self.started, 3)

    return TrainingClock()


def trainer_callbacks(
    writer: ArtifactWriter, fields: Sequence[tuple[str, str]], config: TrainingConfig
) -> tuple[list[Any], str]:
    """The training clock, the non-finite gradient guard, the console logger, :data:`EXTRA_CALLBACKS` and TensorBoard
    (where installed; written by the main process only); and what the manifest says about TensorBoard."""
    callbacks = [
        training_clock(),
        NonFiniteGradientGuard(config.max_nonfinite_steps),
        console_logger(fields),
        *EXTRA_CALLBACKS,
    ]
    if importlib.util.find_spec("tensorboard") is None:
        return callbacks, "skipped: the tensorboard package is not installed (pip install tensorboard)"
    if not is_main_process():
        return callbacks, f"{TENSORBOARD_DIR}/"
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    callbacks.append(TensorBoardCallback(SummaryWriter(log_dir=str(writer.dir / TENSORBOARD_DIR))))
    return callbacks, f"{TENSORBOARD_DIR}/"


def silence_stdout_callbacks(trainer: Any) -> None:
    """Remove the trainer's printers: they write to stdout, which carries only the artifact path."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)


def close_tensorboard(callbacks: Sequence[Any]) -> None:
    """Flush and close TensorBoard event files (before the artifact's files are hashed)."""
    for callback in callbacks:
        tb_writer = getattr(callback, "tb_writer", None)
        if tb_writer is not None:
            tb_writer.close()


def last_checkpoint(directory: Path) -> tuple[str | None, int | None]:
    """The newest complete checkpoint under ``directory`` and its step, or (None, None); the console says so.

    The trainer writes ``trainer_state.json`` last, so a checkpoint without a readable one was cut off
    mid-write (Ctrl-C, a kill): it is removed, and the one before it is used. The main process decides
    for every process of a multi-process run.
    """
    return on_main(lambda: _last_complete_checkpoint(directory))


def _last_complete_checkpoint(directory: Path) -> tuple[str | None, int | None]:
    checkpoints = [path for path in directory.glob("checkpoint-*") if path.is_dir() and path.name[11:].isdigit()]
    for path in sorted(checkpoints, key=lambda path: int(path.name[11:]), reverse=True):
        try:
            step = int(json.loads((path / "trainer_state.json").read_text())["global_step"])
        except (OSError, ValueError, KeyError, TypeError):
            console.print(f"removing {path.name}: it was cut off while being written")
            shutil.rmtree(path, ignore_errors=True)
            continue
        console.print(f"resuming from checkpoint {path.name} (step {step})")
        return str(path), step
    return None, None


def write_log_history(writer: ArtifactWriter, history: list[dict[str, Any]]) -> None:
    """The trainer's log history as JSON in the artifact."""
    writer.path(LOG_HISTORY).write_text(json.dumps(history, indent=1) + "\n")


def finite_round(value: Any, digits: int = 6) -> Any:
    """``value`` rounded if it is a finite number; anything else unchanged."""
    if value is None or not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
        return value
    return round(float(value), digits)
