"""``alphadrive sft``: supervised warm-up of the student on reasoning traces (LoRA, QLoRA on CUDA).

TRL's ``SFTTrainer`` runs with :class:`~alphadrive_cli.training.sft_data.VisionSFTCollator` (loss on
the assistant turn only). Checkpoints are written into the unfinished artifact, so an interrupted
run continues from its last checkpoint when the same command is run again; they are removed before
publishing. The artifact holds the LoRA adapter (``adapter_config.json`` names the base model's
absolute location, or its hub id), the processor, training curves as PNG, the trainer's log history
and, where the ``tensorboard`` package is installed, TensorBoard event files. Under ``accelerate launch``
or ``torchrun`` every process trains and the main one writes the artifact (:mod:`alphadrive_cli.training.distributed`).
The run itself is :func:`alphadrive_cli.training.run.run_training`; this module holds what is particular to SFT.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alphadrive_cli.actions import ActionVocabulary
from alphadrive_cli.artifacts.store import Artifact, ArtifactWriter, OutputSpec
from alphadrive_cli.config.schemas import SftConfig
from alphadrive_cli.data.records import Record
from alphadrive_cli.errors import BadInput
from alphadrive_cli.models.loading import ModelSource, resolve_model_source
from alphadrive_cli.prompts import PERCEPTION_PROMPT, load_prompt, scene_phrasing
from alphadrive_cli.training.run import RunSetup, TrainingRecipe, finite_round, run_training, trainer_arguments
from alphadrive_cli.ui import console

MERGED_DIR = "merged"


class SftRecipe(TrainingRecipe[SftConfig]):
    """Supervised fine-tuning on TRL's SFTTrainer, the loss on the assistant turn only."""

    stage = "sft"
    data_stages = ("distill", "data")
    policy_role = "model"
    run_only_settings = ("save_steps",)
    counted = "examples"
    curves = (("training loss", ("loss",)), ("learning rate", ("learning_rate",)), ("gradient norm", ("grad_norm",)))
    curves_png = "training_curves.png"
    console_fields = (("loss", "loss"), ("grad_norm", "grad_norm"), ("learning_rate", "learning_rate"))
    freeze: Any = None  # the LanguageFreeze of a run with language_frozen_epochs

    def check_records(self, data: Artifact, records: list[Record], vocabulary: ActionVocabulary) -> None:
        from alphadrive_cli.training.sft_data import perception_target

        if self.config.perception_examples and not any(perception_target(record) for record in records):
            raise BadInput(
                f"perception_examples needs scene facts an image shows (simulator data): none of the {len(records)} "
                f"train records of {data.path} has any"
            )
        if not self.config.reasoning:
            return
        missing = [record.id for record in records if not record.reasoning]
        if missing:
            raise BadInput(
                f"{data.path} is a {data.stage} artifact without reasoning traces ({len(missing)} of "
                f"{len(records)} train records have none): run `alphadrive distill` on it first, "
                f"or pass --no-reasoning to train on answers only"
            )

    def policy_source(self) -> ModelSource:
        reference = self.config.model
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

    def build_trainer(self, setup: RunSetup) -> Any:
        from datasets import Dataset
        from trl import SFTConfig as TrlSftConfig
        from trl import SFTTrainer

        from alphadrive_cli.training.language_freeze import LanguageFreeze
        from alphadrive_cli.training.sft_data import VisionSFTCollator, sft_examples

        config = self.config
        self.freeze = LanguageFreeze(config.language_frozen_epochs) if config.language_frozen_epochs else None
        perception = load_prompt(PERCEPTION_PROMPT) if config.perception_examples else None
        if perception is not None:
            setup.writer.add_prompt(perception.id, perception.sha256)
        return SFTTrainer(
            model=setup.model,
            args=TrlSftConfig(
                **trainer_arguments(config, setup.precision, setup.checkpoints),
                dataset_kwargs={"skip_prepare_dataset": True},
                max_length=config.max_length,
            ),
            train_dataset=Dataset.from_list(
                sft_examples(setup.records, setup.vocabulary, config.reasoning, config.perception_examples)
            ),
            data_collator=VisionSFTCollator(
                setup.processor,
                setup.template,
                setup.vocabulary,
                setup.data.path,
                config.max_length,
                perception,
            ),
            processing_class=setup.processor,
            callbacks=[*setup.callbacks, *([self.freeze] if self.freeze else [])],
        )

    def metrics(self, history: list[dict[str, Any]]) -> dict[str, Any]:
        losses = [entry["loss"] for entry in history if "loss" in entry]
        return {
            "first_loss": finite_round(losses[0]) if losses else None,
            "final_loss": finite_round(losses[-1]) if losses else None,
        }

    def manifest(self, setup: RunSetup, trainer: Any) -> dict[str, dict[str, Any]]:
        return {
            "model": {"merged": MERGED_DIR if self.config.merge else None},
            "training": {
                "reasoning": self.config.reasoning,
                **self.perception_summary(trainer),
                **({"language_thawed_at_step": self.freeze.thawed_at_step} if self.freeze else {}),
            },
        }

    def perception_summary(self, trainer: Any) -> dict[str, Any]:
        """The manifest's word on the perception examples: how many the trainer's data set holds, and the phrasing
        their targets come from."""
        if not self.config.perception_examples:
            return {}
        templates = scene_phrasing()
        return {
            "perception_example_count": sum(task == "perception" for task in trainer.train_dataset["task"]),
            "perception_phrasing": {"id": templates.id, "sha256": templates.sha256},
        }

    def headline(self, metrics: Mapping[str, Any]) -> str:
        return f"{metrics['steps']} steps, train loss {metrics['train_loss']}"

    def after_training(self, setup: RunSetup) -> None:
        if self.config.merge:
            _save_merged(setup.writer, setup.source, setup.processor, setup.precision.dtype)


def run(config: SftConfig, output: OutputSpec, *, data: Path) -> Artifact:
    """Fine-tune on a distilled (or, with ``reasoning: false``, any labelled) data set; publish the result."""
    return run_training(SftRecipe(config), data, output)


def _save_merged(writer: ArtifactWriter, source: ModelSource, processor: Any, dtype: Any) -> None:
    """Reload the base unquantised, merge the saved adapter into it and save the full model under merged/."""
    from peft import PeftModel

    from alphadrive_cli.models.loading import load_model

    base = load_model(source, dtype=dtype)
    merged = PeftModel.from_pretrained(base, str(writer.dir)).merge_and_unload()
    merged.save_pretrained(str(writer.dir / MERGED_DIR))
    processor.save_pretrained(str(writer.dir / MERGED_DIR))
    console.print(f"merged weights saved under {MERGED_DIR}/")
