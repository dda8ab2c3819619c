"""``alphadrive sft``: supervised warm-up of the student on reasoning traces (LoRA, QLoRA on CUDA).

TRL's ``SFTTrainer`` runs with :class:`~alphadrive_cli.models.sft_data.VisionSFTCollator` (loss on
the assistant turn only). Checkpoints are written into the unfinished artifact, so an interrupted
run continues from its last checkpoint when the same command is run again; they are removed before
publishing. The artifact holds the LoRA adapter (``adapter_config.json`` names the base model's
absolute location, or its hub id), the processor, training curves as PNG, the trainer's log history
and, where the ``tensorboard`` package is installed, TensorBoard event files. Under ``accelerate launch``
or ``torchrun`` every process trains and the main one writes the artifact (:mod:`alphadrive_cli.distributed`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alphadrive_cli.artifacts import Artifact, ArtifactWriter, ResumePolicy, begin, canonical_hash, open_artifact
from alphadrive_cli.data.schema import Record, dataset_vocabulary, iter_split
from alphadrive_cli.distributed import on_main
from alphadrive_cli.errors import BadInput
from alphadrive_cli.models.loading import ModelSource, model_config, resolve_model_source
from alphadrive_cli.prompts import STUDENT_PROMPT, load_prompt
from alphadrive_cli.schemas import SftConfig
from alphadrive_cli.training import (
    CHECKPOINT_DIR,
    LOG_HISTORY,
    finite_round,
    last_checkpoint,
    load_policy,
    model_summary,
    run_metrics,
    train_and_save,
    trainer_arguments,
    trainer_callbacks,
    training_precision,
    training_summary,
)
from alphadrive_cli.ui import console

DATA_STAGES = ("distill", "data")
CURVES_PNG = "training_curves.png"
MERGED_DIR = "merged"
CURVES = (("training loss", ("loss",)), ("learning rate", ("learning_rate",)), ("gradient norm", ("grad_norm",)))
CONSOLE_FIELDS = (("loss", "loss"), ("grad_norm", "grad_norm"), ("learning_rate", "learning_rate"))


def _training_records(data_path: Path, config: SftConfig) -> tuple[Artifact, list[Record], Any]:
    data = open_artifact(data_path, stage=DATA_STAGES)
    vocabulary = dataset_vocabulary(data)
    records = list(iter_split(data, "train", vocabulary))
    if not records:
        raise BadInput(f"{data.path} has no records in its train split")
    if config.reasoning:
        missing = [record.id for record in records if not record.reasoning]
        if missing:
            raise BadInput(
                f"{data.path} is a {data.stage} artifact without reasoning traces ({len(missing)} of "
                f"{len(records)} train records have none): run `alphadrive distill` on it first, "
                f"or pass --no-reasoning to train on answers only"
            )
    return data, records, vocabulary


def _model_source(reference: str | None) -> ModelSource:
    if reference is None:
        raise BadInput(
            "sft needs a base model: pass --model (a model artifact such as one from "
            "`alphadrive models tiny`, a local directory or a hub id)"
        )
    source = resolve_model_source(reference)
    if source.base is not None:
        raise BadInput(
            f"{reference} is a LoRA adapter; sft trains a fresh adapter on a base model "
            f"(pass its base, {source.base.reference})"
        )
    return source


def train_sft(
    data_path: Path, config: SftConfig, root: Path | None, name: str | None, resume: ResumePolicy
) -> Artifact:
    """Fine-tune LoRA adapters on a distilled (or, with ``reasoning: false``, any labelled) data set; publish them."""
    data, records, vocabulary = _training_records(data_path, config)
    source = _model_source(config.model)
    base_config = model_config(source)  # config only: fails early on unsupported models
    family = base_config.model_type
    inputs: dict[str, Artifact] = {"data": data}
    if source.artifact is not None:
        inputs["model"] = source.artifact
    settings = config.model_dump(mode="json")
    identity = {key: value for key, value in settings.items() if key != "save_steps"}
    with on_main(
        lambda: begin("sft", name or "sft", settings, root=root, resume=resume, inputs=inputs, identity=identity)
    ) as writer:
        return _train(writer, data, records, vocabulary, source, family, config, canonical_hash(base_config.to_dict()))


def _train(
    writer: ArtifactWriter,
    data: Artifact,
    records: list[Record],
    vocabulary: Any,
    source: ModelSource,
    family: str,
    config: SftConfig,
    base_config_hash: str,
) -> Artifact:
    from datasets import Dataset
    from trl import SFTConfig as TrlSftConfig
    from trl import SFTTrainer

    from alphadrive_cli.models.lora import trainable_parameters
    from alphadrive_cli.models.processor import load_processor
    from alphadrive_cli.models.sft_data import VisionSFTCollator, sft_examples

    template = load_prompt(STUDENT_PROMPT)
    writer.add_prompt(template.id, template.sha256)
    precision = training_precision()
    model, quantized = load_policy(source, config, precision)
    processor = load_processor(source.location, family=family)
    trainable, total = trainable_parameters(model)

    dataset = Dataset.from_list(sft_examples(records, vocabulary, config.reasoning))
    collator = VisionSFTCollator(processor, template, vocabulary, data.path, config.max_length)
    checkpoints = writer.dir / CHECKPOINT_DIR
    callbacks, tensorboard = trainer_callbacks(writer, CONSOLE_FIELDS, config)
    args = TrlSftConfig(
        **trainer_arguments(config, precision, checkpoints),
        dataset_kwargs={"skip_prepare_dataset": True},
        max_length=config.max_length,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        processing_class=processor,
        callbacks=callbacks,
    )
    last, resumed_from = last_checkpoint(checkpoints)
    history, curves = train_and_save(
        writer, trainer, model, processor, callbacks, last, CURVES, f"sft {writer.name}", CURVES_PNG
    )

    losses = [entry["loss"] for entry in history if "loss" in entry]
    metrics: dict[str, Any] = {
        "first_loss": finite_round(losses[0]) if losses else None,
        "final_loss": finite_round(losses[-1]) if losses else None,
        **run_metrics(trainer, precision),
    }
    if config.merge:
        del trainer, model  # free the training copy before loading the base unquantised
        on_main(lambda: _save_merged(writer, source, processor, precision.dtype))
    console.print(
        f"sft {writer.name}: {metrics['steps']} steps, train loss {metrics['train_loss']}"
        + (f" (resumed from step {resumed_from})" if resumed_from is not None else "")
    )
    return on_main(
        lambda: writer.publish(
            counts={"examples": len(records), "trainable_parameters": trainable, "parameters": total},
            metrics=metrics,
            extra={
                "model": {
                    **model_summary(source, family, base_config_hash),
                    "merged": MERGED_DIR if config.merge else None,
                },
                "training": {
                    **training_summary(config, precision, quantized, resumed_from),
                    "reasoning": config.reasoning,
                },
                "curves": {
                    "png": CURVES_PNG,
                    "plotted": curves,
                    "log_history": LOG_HISTORY,
                    "tensorboard": tensorboard,
                },
            },
        )
    )


def _save_merged(writer: ArtifactWriter, source: ModelSource, processor: Any, dtype: Any) -> None:
    """Reload the base unquantised, merge the saved adapter into it and save the full model under merged/."""
    from peft import PeftModel

    from alphadrive_cli.models.loading import load_model

    base = load_model(source, dtype=dtype)
    merged = PeftModel.from_pretrained(base, str(writer.dir)).merge_and_unload()
    merged.save_pretrained(str(writer.dir / MERGED_DIR))
    processor.save_pretrained(str(writer.dir / MERGED_DIR))
    console.print(f"merged weights saved under {MERGED_DIR}/")
