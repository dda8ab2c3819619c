"""``alphadrive grpo``: reinforcement learning with GRPO and AlphaDrive's four planning rewards.

TRL's ``GRPOTrainer`` samples ``num_generations`` completions per frame (the frame's images in the
prompt, rendered with the student template exactly as at evaluation time) and scores them with
:class:`~alphadrive_cli.rewards.trl_adapter.PlanningRewards`. ``--init`` is an ``sft`` artifact (its LoRA
adapter is continued, and with ``beta > 0`` TRL keeps a frozen copy of it as the KL reference: the SFT
policy) or a base model (fresh LoRA adapters: the RL-only ablation). Checkpoints are written into the
unfinished artifact, so an interrupted run continues from the last one. The artifact holds the
adapter, the processor, ``samples.jsonl``, ``reward_curves.png``, the log history and TensorBoard files.
Under ``accelerate launch`` or ``torchrun`` every process generates and scores its own share of the frames
and the main one writes the artifact (:mod:`alphadrive_cli.training.distributed`).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alphadrive_cli.actions import ActionVocabulary
from alphadrive_cli.artifacts.store import Artifact, OutputSpec
from alphadrive_cli.config.schemas import GrpoConfig
from alphadrive_cli.data.records import Record
from alphadrive_cli.errors import BadInput
from alphadrive_cli.models.distinct_texts import tokenize_distinct_texts
from alphadrive_cli.models.frame_cache import DecodedFrames, PatchedImages, assemble_on
from alphadrive_cli.models.generation import decoding_summary, unwrapped
from alphadrive_cli.models.loading import ModelSource, processor_location, resolve_model_source, use_fast_paths
from alphadrive_cli.models.rollout_copy import attach_bf16_copy, rollout_copy_of
from alphadrive_cli.models.token_types import type_tokens_per_batch
from alphadrive_cli.prompts import PromptTemplate, student_messages
from alphadrive_cli.rewards.trl_adapter import (
    COMPONENTS,
    REWARD_FUNCTIONS,
    SAFETY_FUNCTION,
    PlanningRewards,
    SampleLog,
    plan_key,
)
from alphadrive_cli.training import prompt_loader
from alphadrive_cli.training.class_balance import WEIGHTING_POWERS, balanced_prompts, inverse_frequency_weights
from alphadrive_cli.training.distributed import is_main_process, launch_world_size
from alphadrive_cli.training.reward_signal import RewardSignalWatch, has_signal
from alphadrive_cli.training.run import RunSetup, TrainingRecipe, finite_round, run_training, trainer_arguments
from alphadrive_cli.training.scoring import scoring_in_chunks_of
from alphadrive_cli.ui import console

SAMPLES = "samples.jsonl"
CURVES = (
    ("total reward", ("reward",)),
    ("reward functions (mean)", tuple(f"rewards/{name}/mean" for name in (*REWARD_FUNCTIONS, SAFETY_FUNCTION))),
    (
        "planning accuracy and diversity (mean)",
        tuple(
            f"planning/{name}/mean" for name in ("speed_accuracy", "path_accuracy", "speed_diversity", "path_diversity")
        ),
    ),
    ("groups without advantage", ("frac_reward_zero_std",)),
    ("KL to the reference", ("kl",)),
    ("completion length (tokens)", ("completions/mean_length",)),
)
CONSOLE_FIELDS = (
    ("reward", "reward"),
    ("rewards/format/mean", "format"),
    ("planning/speed_accuracy/mean", "speed acc"),
    ("planning/path_accuracy/mean", "path acc"),
    ("frac_reward_zero_std", "flat groups"),
    ("kl", "kl"),
    ("completions/mean_length", "length"),
)


def _check_batch(config: GrpoConfig) -> None:
    """Each process scores the rollouts it generated, and the diversity reward compares a frame's completions
    with each other: every process's rollout must hold whole groups of ``num_generations`` completions."""
    world = launch_world_size()
    if config.generation_batch_size is not None and config.generation_batch_size % (
        config.per_device_batch_size * world
    ):
        raise BadInput(
            f"generation_batch_size = {config.generation_batch_size} is not a multiple of per_device_batch_size x "
            f"processes = {config.per_device_batch_size * world}: a rollout must fill whole optimiser steps"
        )
    rollout = _rollout_completions(config)
    if rollout % config.num_generations:
        raise BadInput(
            f"each process generates {rollout} completions per rollout (per_device_batch_size x "
            f"gradient_accumulation_steps, or generation_batch_size / processes), not a multiple of "
            f"num_generations = {config.num_generations}: each frame's group of completions must be scored "
            f"together (e.g. --set per_device_batch_size={config.num_generations})"
        )


def _compiled_generation(config: GrpoConfig, cuda: bool, quantized: bool) -> bool:
    """Whether rollouts decode with a static KV cache and graph decoding (folded-GQA attention, every step after
    the first compiled and replayed as one CUDA graph); the console says why not, where asked."""
    if not (config.compile_generation and cuda):
        return False
    reason = (
        "gradient checkpointing is on (TRL toggles it around every rollout, which would recompile the decoder)"
        if config.gradient_checkpointing
        else "4-bit weights cannot be compiled"
        if quantized
        else None
    )
    if reason:
        console.print(f"[yellow]note:[/] compiled generation is off: {reason}")
    return reason is None


class GrpoRecipe(TrainingRecipe[GrpoConfig]):
    """GRPO on TRL's GRPOTrainer, the rollouts scored by the planning rewards."""

    stage = "grpo"
    data_stages = ("data", "distill")
    policy_role = "init"
    run_only_settings = ("save_steps", "sample_every", "sample_groups")
    counted = "prompts"
    curves = CURVES
    curves_png = "reward_curves.png"
    console_fields = CONSOLE_FIELDS

    def __init__(self, config: GrpoConfig) -> None:
        _check_batch(config)
        super().__init__(config)
        if config.model is None:  # config problems are said before any data is read
            raise BadInput(
                "grpo needs a policy to start from: pass --init (an `sft` artifact, or a base model "
                "such as one from `alphadrive models tiny` for RL only)"
            )
        self._source = resolve_model_source(config.model)
        self.signal_watch = RewardSignalWatch(stop_after=config.stop_without_signal)

    def policy_source(self) -> ModelSource:
        return self._source

    def check_records(self, data: Artifact, records: list[Record], vocabulary: ActionVocabulary) -> None:
        try:
            self.config.rewards.check_vocabulary(vocabulary)
        except ValueError as exc:
            raise BadInput(f"rewards: {exc}") from None
        rollout_frames = _rollout_frames(self.config) * launch_world_size()
        if len(records) < rollout_frames:  # TRL's sampler would then yield no rollout at all
            completions = rollout_frames * self.config.num_generations
            raise BadInput(
                f"one rollout takes {rollout_frames} frames ({completions} completions / num_generations = "
                f"{self.config.num_generations}), but {data.path} has {len(records)} train frames: lower "
                f"generation_batch_size (without it: per_device_batch_size x gradient_accumulation_steps) to at most "
                f"{len(records) * self.config.num_generations} completions, or use more frames"
            )
        unjudged = [record.id for record in records if record.plans is None]
        if self.config.rewards.safety_coef > 0 and unjudged:
            raise BadInput(
                f"rewards.safety_coef > 0 pays plans by their simulated outcome, but {len(unjudged)} of "
                f"{len(records)} train frames have no judged plans (first: {unjudged[0]}): judge the data set first "
                "(`alphadrive data judge DATA`, or `data sim --judge`)"
            )

    def processor_location(self, source: ModelSource) -> str:
        return processor_location(source)

    def build_trainer(self, setup: RunSetup) -> Any:
        from trl import GRPOConfig as TrlGrpoConfig
        from trl import GRPOTrainer

        from alphadrive_cli.models.graph_decoding import use_graph_decoding

        config, model = self.config, setup.model
        samples = setup.writer.dir / SAMPLES if is_main_process() else None  # the main process writes all samples
        self.prompts = (
            balanced_prompts(setup.records, config.seed) if config.prompt_sampling == "balanced" else setup.records
        )
        self.reward_config = config.rewards
        if config.action_weighting in WEIGHTING_POWERS:  # of the prompts trained on: balanced ones need little
            power = WEIGHTING_POWERS[config.action_weighting]
            weights = inverse_frequency_weights(self.prompts, setup.vocabulary, power)
            self.reward_config = config.rewards.model_copy(update={"action_weights": weights})
        self.rewards = PlanningRewards(
            self.reward_config,
            setup.vocabulary,
            SampleLog(samples, config.sample_every, config.sample_groups, setup.resumed_from),
        )
        self.compiled = _compiled_generation(config, setup.precision.cuda, setup.quantized)
        images_per_rollout = 2 * _rollout_frames(config) * max(len(record.images) for record in self.prompts)
        setup.processor.image_processor = PatchedImages(setup.processor.image_processor, images_per_rollout)
        args = TrlGrpoConfig(
            **trainer_arguments(config, setup.precision, setup.checkpoints),
            **prompt_loader.ARGUMENTS,
            generation_batch_size=config.generation_batch_size,
            cache_implementation="static" if self.compiled else None,
            num_generations=config.num_generations,
            temperature=config.temperature,
            max_completion_length=config.max_completion_length,
            beta=config.beta,
            disable_dropout=config.disable_dropout,
            loss_type=config.loss_type,
            scale_rewards=config.scale_rewards,
            reward_weights=self.rewards.reward_weights(),
            log_completions=False,
        )
        trainer = prompt_loader.host_prompt_loader(scoring_in_chunks_of(GRPOTrainer, config.scoring_batch_size))(
            model=model,
            reward_funcs=self.rewards.reward_functions(),
            args=args,
            train_dataset=prompt_rows(
                self.prompts,
                setup.data.path,
                setup.template,
                setup.vocabulary,
                DecodedFrames(images_per_rollout),
                with_verdicts=self.rewards.uses_safety,
            ),
            processing_class=setup.processor,
            callbacks=[*setup.callbacks, self.signal_watch],
        )
        assemble_on(setup.processor, trainer.accelerator.device)  # each rollout's pixel values built where they go
        tokenize_distinct_texts(setup.processor)  # each of a rollout's prompts tokenized once, not twice x G
        type_tokens_per_batch(setup.processor)  # each batch's token modalities in one pass, not row by row
        if trainer.ref_model is not None:  # TRL loads it again from the weights' path
            use_fast_paths(trainer.ref_model)
        trainer.generation_config.disable_compile = not self.compiled  # TRL always turns generate's compilation off
        if self.compiled:  # where graph_sample falls back to transformers' _sample, that still compiles its step
            use_graph_decoding(unwrapped(model))
        if config.rollout_dtype == "bfloat16":
            self._attach_bf16_copy(trainer, unwrapped(model))
        return trainer

    def _attach_bf16_copy(self, trainer: Any, model: Any) -> None:
        """rollout_dtype: bfloat16 where it can apply; the console says why not where it cannot."""
        if not self.compiled:
            reason = "it needs graph decoding (compile_generation on CUDA)"
        elif trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
            reason = "sharded training replaces the weights it would copy"
        elif attach_bf16_copy(model):
            return
        else:
            reason = "the policy is not a plain fp32 model (finetune: full): it decodes in bf16 already or has adapters"
        console.print(f"[yellow]note:[/] rollout_dtype: bfloat16 is not used: {reason}")

    def metrics(self, history: list[dict[str, Any]]) -> dict[str, Any]:
        return {**reward_summary(history), "stopped_without_reward_signal": self.signal_watch.stopped}

    def manifest(self, setup: RunSetup, trainer: Any) -> dict[str, dict[str, Any]]:
        return {
            "model": {"init": _init_kind(setup.source, self.config)},
            "generation": {
                "batch_size": trainer.args.generation_batch_size,
                "steps_per_generation": trainer.args.steps_per_generation,
                "scoring_batch_size": self.config.scoring_batch_size or trainer.args.per_device_train_batch_size,
                **decoding_summary(self.compiled),
                "rollout_dtype": "weights" if rollout_copy_of(unwrapped(trainer.model)) is None else "bfloat16",
            },
            "rewards": {
                "functions": self.rewards.function_names(),
                "weights": self.rewards.reward_weights(),
                "components_logged": list(COMPONENTS),
                "style": self.reward_config.style,
                "action_weights": self.reward_config.action_weights,
            },
            "prompt_sampling": {  # beside the manifest's "prompts", the templates used
                "sampling": self.config.prompt_sampling,
                "classes": dict(sorted(Counter(f"{r.speed_action}, {r.path_action}" for r in self.prompts).items())),
            },
            "curves": {"samples": SAMPLES},
        }

    def headline(self, metrics: Mapping[str, Any]) -> str:
        line = f"{metrics['steps']} steps, reward {metrics['first_reward']} -> {metrics['final_reward']}"
        if metrics.get("steps_with_reward_signal") == 0:
            line += " (no step had a reward signal: every group's rewards were equal, so the policy did not learn)"
        if metrics.get("stopped_without_reward_signal"):
            line += "; stopped early by stop_without_signal"
        return line


def run(config: GrpoConfig, output: OutputSpec, *, data: Path) -> Artifact:
    """Train the policy with GRPO on the planning rewards (the train split of ``data``) and publish it."""
    return run_training(GrpoRecipe(config), data, output)


def prompt_rows(
    records: list[Record],
    data_root: Path,
    template: PromptTemplate,
    vocabulary: ActionVocabulary,
    frames: DecodedFrames,
    with_verdicts: bool = False,
) -> Any:
    """A dataset of GRPO prompts (:class:`~alphadrive_cli.training.rollout_rows.RolloutRows`): the student's chat
    messages, the frame's images (decoded from the artifact when a row is read, through ``frames``), and the
    columns the rewards read (frame id, true actions and, ``with_verdicts``, the plans the simulator judged
    acceptable)."""
    import datasets

    from alphadrive_cli.training.rollout_rows import RolloutRows

    datasets.disable_progress_bars()
    table = {
        "prompt": [student_messages(template, record, vocabulary) for record in records],
        "images": [[str(data_root / image) for image in record.images] for record in records],
        "frame_id": [record.id for record in records],
        "speed_action": [record.speed_action for record in records],
        "path_action": [record.path_action for record in records],
    }
    if with_verdicts:
        table["acceptable_plans"] = [sorted(map(plan_key, record.acceptable_plans())) for record in records]
    rows = RolloutRows.from_dict(table)

    def decode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return {**batch, "images": [[frames(path) for path in paths] for paths in batch["images"]]}

    rows.set_transform(decode)
    return rows


def _rollout_completions(config: GrpoConfig) -> int:
    """Completions one process generates per rollout."""
    if config.generation_batch_size is not None:
        return config.generation_batch_size // launch_world_size()
    return config.per_device_batch_size * config.gradient_accumulation_steps


def _rollout_frames(config: GrpoConfig) -> int:
    """Frames in one process's rollout (each with ``num_generations`` completions)."""
    return max(1, _rollout_completions(config) // config.num_generations)


def _init_kind(source: ModelSource, config: GrpoConfig) -> str:
    if source.base is not None:
        return "continued adapter"
    return "every weight trained" if config.finetune == "full" else "fresh LoRA on the base model"


def _steps_with_signal(steps: list[dict[str, Any]]) -> int | None:
    """How many logged steps had a group of unequal rewards (None if no step logged TRL's zero-std fraction)."""
    signals = [signal for signal in map(has_signal, steps) if signal is not None]
    return sum(signals) if signals else None


def reward_summary(history: list[dict[str, Any]], window: int = 5) -> dict[str, Any]:
    """Mean total reward and component means over the first and the last ``window`` logged steps."""
    steps = [entry for entry in history if "reward" in entry and entry.get("reward") is not None]
    if not steps:
        return {"first_reward": None, "final_reward": None}

    def mean(entries: list[dict[str, Any]], key: str) -> float | None:
        values = [entry[key] for entry in entries if isinstance(entry.get(key), (int, float))]
        return finite_round(statistics.fmean(values)) if values else None

    first, last = steps[:window], steps[-window:]
    summary: dict[str, Any] = {
        "first_reward": mean(first, "reward"),
        "final_reward": mean(last, "reward"),
        "final_zero_std_fraction": mean(last, "frac_reward_zero_std"),
        "steps_with_reward_signal": _steps_with_signal(steps),
    }
    for component in ("format", "speed_accuracy", "path_accuracy", "quality"):
        summary[f"final_{component}"] = mean(last, f"planning/{component}/mean")
    return summary
