"""``alphadrive sft``: supervised warm-up of the student on reasoning traces (LoRA, QLoRA on CUDA).

TRL's ``SFTTrainer`` runs with :class:`~alphadrive_cli.models.sft_data.VisionSFTCollator` (loss on
the assistant turn only). Checkpoints are written into the unfinished artifact, so an interrupted
run continues from its last checkpoint when the same command is run again; they are removed before
publishing. The artifact holds the LoRA adapter (``adapter_config.json`` names the base model's
absolute location, or its hub id), the processor, training curves as PNG, the trainer's log history
and, where the ``tensorboard`` package is installed, TensorBoard event files.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
from pathlib import Path
from typing import Any

from alphadrive_cli.artifacts import Artifact, ArtifactWriter, ResumePolicy, begin, canonical_hash, open_artifact
from alphadrive_cli.data.schema import Record, dataset_vocabulary, iter_split
from alphadrive_cli.errors import BadInput
from alphadrive_cli.models.loading import ModelSource, model_config, resolve_model_source
from alphadrive_cli.prompts import STUDENT_PROMPT, load_prompt
from alphadrive_cli.schemas import SftConfig
from alphadrive_cli.ui import console

DATA_STAGES = ("distill", "data")
CHECKPOINT_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
CURVES_PNG = "training_curves.png"
LOG_HISTORY = "log_history.json"
MERGED_DIR = "merged"
# Extra transformers TrainerCallbacks for every run (tests use it to interrupt a run after a checkpoint).
EXTRA_CALLBACKS: list[Any] = []


def _training_records(data_path: Path, config: SftConfig) -> tuple[Artifact, list[Record], Any]:
    data = open_artifact(data_path, stage=DATA_STAGES)
    vocabulary = dataset_vocabulary(data)
    records = list(iter_split(data, "train", vocabulary))
    if not records:
        raise BadInput(f"{data.path} has no records in its train split")
    if config.reasoning:
        missing = [record.id for record in records if not record.reasoning]
        if missing:
            raise BadInput(f"{data.path} is a {data.stage} artifact without reasoning traces ({len(missing)} of "
                           f"{len(records)} train records have none): run `alphadrive distill` on it first, "
                           f"or pass --no-reasoning to train on answers only")
    return data, records, vocabulary


def _model_source(reference: str | None) -> ModelSource:
    if reference is None:
        raise BadInput("sft needs a base model: pass --model (a model artifact such as one from "
                       "`alphadrive models tiny`, a local directory or a hub id)")
    source = resolve_model_source(reference)
    if source.base is not None:
        raise BadInput(f"{reference} is a LoRA adapter; sft trains a fresh adapter on a base model "
                       f"(pass its base, {source.base.reference})")
    return source


def base_model_location(source: ModelSource) -> str:
    """What the adapter's ``base_model_name_or_path`` records: an absolute path, or the hub id."""
    return source.location if source.kind == "hub" else str(Path(source.location).resolve())


def _last_checkpoint(directory: Path) -> str | None:
    if not directory.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint  # noqa: PLC0415 - heavy import

    return get_last_checkpoint(str(directory))


def _console_logger() -> Any:
    """A callback printing each logged step to the console (stderr): stdout carries only the artifact path."""
    from transformers import TrainerCallback  # noqa: PLC0415

    class ConsoleLogger(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            if not logs or "loss" not in logs:
                return
            parts = [f"{key} {logs[key]:.4g}" for key in ("loss", "grad_norm", "learning_rate") if isinstance(logs.get(key), (int, float))]
            console.print(f"step {state.global_step}/{state.max_steps}: " + ", ".join(parts), highlight=False)

    return ConsoleLogger()


def _callbacks(writer: ArtifactWriter) -> tuple[list[Any], str]:
    callbacks = [_console_logger(), *EXTRA_CALLBACKS]
    if importlib.util.find_spec("tensorboard") is None:
        return callbacks, "skipped: the tensorboard package is not installed (pip install tensorboard)"
    from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415
    from transformers.integrations import TensorBoardCallback  # noqa: PLC0415

    callbacks.append(TensorBoardCallback(SummaryWriter(log_dir=str(writer.dir / TENSORBOARD_DIR))))
    return callbacks, f"{TENSORBOARD_DIR}/"


def train_sft(data_path: Path, config: SftConfig, root: Path | None, name: str | None, resume: ResumePolicy) -> Artifact:
    """Fine-tune LoRA adapters on a distilled (or, with ``reasoning: false``, any labelled) data set and publish them."""
    data, records, vocabulary = _training_records(data_path, config)
    source = _model_source(config.model)
    base_config = model_config(source)  # config only: fails early on unsupported models
    family = base_config.model_type
    inputs: dict[str, Artifact] = {"data": data}
    if source.artifact is not None:
        inputs["model"] = source.artifact
    settings = config.model_dump(mode="json")
    identity = {key: value for key, value in settings.items() if key != "save_steps"}
    with begin("sft", name or "sft", settings, root=root, resume=resume, inputs=inputs, identity=identity) as writer:
        return _train(writer, data, records, vocabulary, source, family, config, canonical_hash(base_config.to_dict()))


def _train(writer: ArtifactWriter, data: Artifact, records: list[Record], vocabulary: Any, source: ModelSource,
           family: str, config: SftConfig, base_config_hash: str) -> Artifact:
    import torch  # noqa: PLC0415 - heavy imports only once the inputs are known good
    from datasets import Dataset  # noqa: PLC0415
    from trl import SFTConfig as TrlSftConfig  # noqa: PLC0415
    from trl import SFTTrainer  # noqa: PLC0415

    from alphadrive_cli.models.loading import load_model  # noqa: PLC0415
    from alphadrive_cli.models.lora import apply_lora, quantization_config, trainable_parameters  # noqa: PLC0415
    from alphadrive_cli.models.processor import load_processor  # noqa: PLC0415
    from alphadrive_cli.models.sft_data import VisionSFTCollator, sft_examples  # noqa: PLC0415
    from alphadrive_cli.training_plots import training_curves_png  # noqa: PLC0415

    template = load_prompt(STUDENT_PROMPT)
    writer.add_prompt(template.id, template.sha256)
    cuda = torch.cuda.is_available()
    quantization = quantization_config(config)
    if config.quantization == "4bit" and quantization is None:
        console.print("[yellow]note:[/] 4-bit quantization (QLoRA) needs CUDA; training plain LoRA in fp32 on the CPU")
    bf16 = cuda and torch.cuda.is_bf16_supported()
    dtype = torch.bfloat16 if bf16 else torch.float32
    load_kwargs: dict[str, Any] = {"quantization_config": quantization} if quantization is not None else {}
    if cuda:
        load_kwargs["device_map"] = {"": torch.cuda.current_device()}
        torch.cuda.reset_peak_memory_stats()
    model = load_model(source, dtype=dtype, **load_kwargs)
    processor = load_processor(source.location, family=family)
    model = apply_lora(model, config)
    model.peft_config["default"].base_model_name_or_path = base_model_location(source)
    trainable, total = trainable_parameters(model)

    dataset = Dataset.from_list(sft_examples(records, vocabulary, config.reasoning))
    collator = VisionSFTCollator(processor, template, vocabulary, data.path, config.max_length)
    checkpoints = writer.dir / CHECKPOINT_DIR
    callbacks, tensorboard = _callbacks(writer)
    args = TrlSftConfig(
        output_dir=str(checkpoints),
        per_device_train_batch_size=config.per_device_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        max_steps=config.max_steps,
        num_train_epochs=config.epochs,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        logging_steps=1,
        report_to="none",
        seed=config.seed,
        bf16=bf16,
        use_cpu=not cuda,
        gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        max_length=config.max_length,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, data_collator=collator,
                         processing_class=processor, callbacks=callbacks)
    from transformers.trainer_callback import PrinterCallback, ProgressCallback  # noqa: PLC0415

    for stdout_callback in (PrinterCallback, ProgressCallback):  # they print to stdout
        trainer.remove_callback(stdout_callback)
    last = _last_checkpoint(checkpoints)
    resumed_from = None
    if last is not None:
        state = json.loads((Path(last) / "trainer_state.json").read_text())
        resumed_from = int(state.get("global_step", 0))
        console.print(f"resuming from checkpoint {Path(last).name} (step {resumed_from})")
    result = trainer.train(resume_from_checkpoint=last)

    model.save_pretrained(str(writer.dir))
    processor.save_pretrained(str(writer.dir))
    history = trainer.state.log_history
    writer.path(LOG_HISTORY).write_text(json.dumps(history, indent=1) + "\n")
    curves = training_curves_png(history, f"sft {writer.name}", writer.path(CURVES_PNG))
    for callback in callbacks:  # flush TensorBoard event files before hashing
        tb_writer = getattr(callback, "tb_writer", None)
        if tb_writer is not None:
            tb_writer.close()
    shutil.rmtree(checkpoints, ignore_errors=True)

    losses = [entry["loss"] for entry in history if "loss" in entry]
    metrics: dict[str, Any] = {
        "train_loss": _round(result.training_loss),
        "first_loss": _round(losses[0]) if losses else None,
        "final_loss": _round(losses[-1]) if losses else None,
        "steps": trainer.state.global_step,
        "epochs": _round(trainer.state.epoch),
        "train_samples_per_second": _round(result.metrics.get("train_samples_per_second")),
        "train_runtime_s": _round(result.metrics.get("train_runtime")),
    }
    if cuda:
        metrics["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    if config.merge:
        del trainer, model  # free the training copy before loading the base unquantised
        _save_merged(writer, source, processor, torch.bfloat16 if bf16 else torch.float32)
    console.print(f"sft {writer.name}: {metrics['steps']} steps, train loss {metrics['train_loss']}"
                  + (f" (resumed from step {resumed_from})" if resumed_from is not None else ""))
    return writer.publish(
        counts={"examples": len(records), "trainable_parameters": trainable, "parameters": total},
        metrics=metrics,
        extra={
            "model": {"reference": source.reference, **source.describe(), "family": family,
                      "base_model_name_or_path": base_model_location(source), "config_sha256": base_config_hash,
                      "merged": MERGED_DIR if config.merge else None},
            "training": {"quantization": "4bit" if quantization is not None else "none",
                         "requested_quantization": config.quantization, "dtype": str(dtype).removeprefix("torch."),
                         "device": "cuda" if cuda else "cpu", "reasoning": config.reasoning,
                         "resumed_from_step": resumed_from},
            "curves": {"png": CURVES_PNG, "plotted": curves, "log_history": LOG_HISTORY, "tensorboard": tensorboard},
        },
    )


def _save_merged(writer: ArtifactWriter, source: ModelSource, processor: Any, dtype: Any) -> None:
    """Reload the base unquantised, merge the saved adapter into it and save the full model under merged/."""
    from peft import PeftModel  # noqa: PLC0415

    from alphadrive_cli.models.loading import load_model  # noqa: PLC0415

    base = load_model(source, dtype=dtype)
    merged = PeftModel.from_pretrained(base, str(writer.dir)).merge_and_unload()
    merged.save_pretrained(str(writer.dir / MERGED_DIR))
    processor.save_pretrained(str(writer.dir / MERGED_DIR))
    console.print(f"merged weights saved under {MERGED_DIR}/")


def _round(value: Any, digits: int = 6) -> Any:
    if value is None or not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
        return value
    return round(float(value), digits)
