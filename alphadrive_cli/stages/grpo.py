"""``alphadrive grpo``: reinforcement learning with GRPO and AlphaDrive's four planning rewards.

TRL's ``GRPOTrainer`` samples ``num_generations`` completions per frame (the frame's images in the
prompt, rendered with the student template exactly as at evaluation time) and scores them with
:class:`~alphadrive_cli.grpo_rewards.PlanningRewards`. ``--init`` is an ``sft`` artifact (its LoRA
adapter is continued, and with ``beta > 0`` TRL keeps a frozen copy of it as the KL reference: the SFT
policy) or a base model (fresh LoRA adapters: the RL-only ablation). Checkpoints are written into the
unfinished artifact, so an interrupted run continues from the last one. The artifact holds the
adapter, the processor, ``samples.jsonl``, ``reward_curves.png``, the log history and TensorBoard files.
Under ``accelerate launch`` or ``torchrun`` every process generates and scores its own share of the frames
and the main one writes the artifact (:mod:`alphadrive_cli.distributed`).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from alphadrive_cli.actions import ActionVocabulary
from alphadrive_cli.artifacts import Artifact, ArtifactWriter, ResumePolicy, begin, canonical_hash, open_artifact
from alphadrive_cli.data.schema import Record, dataset_vocabulary, iter_split
from alphadrive_cli.distributed import is_main_process, launch_world_size, on_main
from alphadrive_cli.errors import BadInput
from alphadrive_cli.grpo_rewards import COMPONENTS, REWARD_FUNCTIONS, PlanningRewards, SampleLog
from alphadrive_cli.models.loading import ModelSource, model_config, processor_location, resolve_model_source
from alphadrive_cli.prompts import STUDENT_PROMPT, PromptTemplate, load_prompt, student_messages
from alphadrive_cli.schemas import GrpoConfig
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

DATA_STAGES = ("data", "distill")
SAMPLES = "samples.jsonl"
CURVES_PNG = "reward_curves.png"
CURVES = (
    ("total reward", ("reward",)),
    ("reward functions (mean)", tuple(f"rewards/{name}/mean" for name in REWARD_FUNCTIONS)),
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


def _policy_source(reference: str | None) -> ModelSource:
    if reference is None:
        raise BadInput(
            "grpo needs a policy to start from: pass --init (an `sft` artifact, or a base model "
            "such as one from `alphadrive models tiny` for RL only)"
        )
    return resolve_model_source(reference)


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
    rollout = (
        config.generation_batch_size // world
        if config.generation_batch_size is not None
        else config.per_device_batch_size * config.gradient_accumulation_steps
    )
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


def train_grpo(
    data_path: Path, config: GrpoConfig, root: Path | None, name: str | None, resume: ResumePolicy
) -> Artifact:
    """Train the policy with GRPO on the planning rewards and publish its LoRA adapter."""
    _check_batch(config)
    source = _policy_source(config.model)
    data = open_artifact(data_path, stage=DATA_STAGES)
    vocabulary = dataset_vocabulary(data)
    try:
        config.rewards.check_vocabulary(vocabulary)
    except ValueError as exc:
        raise BadInput(f"rewards: {exc}") from None
    records = list(iter_split(data, "train", vocabulary))
    if not records:
        raise BadInput(f"{data.path} has no records in its train split")
    base_config = model_config(source)  # config only: fails early on unsupported models
    inputs: dict[str, Artifact] = {"data": data}
    if source.artifact is not None:
        inputs["init"] = source.artifact
    settings = config.model_dump(mode="json")
    identity = {
        key: value for key, value in settings.items() if key not in ("save_steps", "sample_every", "sample_groups")
    }
    with on_main(
        lambda: begin("grpo", name or "grpo", settings, root=root, resume=resume, inputs=inputs, identity=identity)
    ) as writer:
        return _train(
            writer,
            data,
            records,
            vocabulary,
            source,
            base_config.model_type,
            config,
            canonical_hash(base_config.to_dict()),
        )


def prompt_rows(records: list[Record], data_root: Path, template: PromptTemplate, vocabulary: ActionVocabulary) -> Any:
    """A ``datasets.Dataset`` of GRPO prompts: the student's chat messages, the frame's images (decoded
    lazily from the artifact), and the columns the rewards read (frame id and true actions)."""
    import datasets

    datasets.disable_progress_bars()
    table = {
        "prompt": [student_messages(template, record, vocabulary) for record in records],
        "images": [[str(data_root / image) for image in record.images] for record in records],
        "frame_id": [record.id for record in records],
        "speed_action": [record.speed_action for record in records],
        "path_action": [record.path_action for record in records],
    }
    return datasets.Dataset.from_dict(table).cast_column("images", datasets.List(datasets.Image()))


def _train(
    writer: ArtifactWriter,
    data: Artifact,
    records: list[Record],
    vocabulary: ActionVocabulary,
    source: ModelSource,
    family: str,
    config: GrpoConfig,
    base_config_hash: str,
) -> Artifact:
    from peft import PeftModel
    from trl import GRPOConfig as TrlGrpoConfig
    from trl import GRPOTrainer

    from alphadrive_cli.models.graph_decoding import use_graph_decoding
    from alphadrive_cli.models.lora import trainable_parameters
    from alphadrive_cli.models.processor import load_processor

    template = load_prompt(STUDENT_PROMPT)
    writer.add_prompt(template.id, template.sha256)
    precision = training_precision()
    model, quantized = load_policy(source, config, precision)
    processor = load_processor(processor_location(source), family=family)
    trainable, total = trainable_parameters(model)

    checkpoints = writer.dir / CHECKPOINT_DIR
    last, resumed_from = last_checkpoint(checkpoints)
    samples = writer.dir / SAMPLES if is_main_process() else None  # the main process writes every process's samples
    rewards = PlanningRewards(
        config.rewards, vocabulary, SampleLog(samples, config.sample_every, config.sample_groups, resumed_from)
    )
    callbacks, tensorboard = trainer_callbacks(writer, CONSOLE_FIELDS, config)
    compiled = _compiled_generation(config, precision.cuda, quantized)
    args = TrlGrpoConfig(
        **trainer_arguments(config, precision, checkpoints),
        generation_batch_size=config.generation_batch_size,
        cache_implementation="static" if compiled else None,
        num_generations=config.num_generations,
        temperature=config.temperature,
        max_completion_length=config.max_completion_length,
        beta=config.beta,
        loss_type=config.loss_type,
        scale_rewards=config.scale_rewards,
        reward_weights=rewards.reward_weights(),
        log_completions=False,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=rewards.reward_functions(),
        args=args,
        train_dataset=prompt_rows(records, data.path, template, vocabulary),
        processing_class=processor,
        callbacks=callbacks,
    )
    trainer.generation_config.disable_compile = not compiled  # TRL always turns generate's compilation off
    if compiled:  # where graph_sample falls back to transformers' _sample, that still compiles its step
        use_graph_decoding(model.get_base_model() if isinstance(model, PeftModel) else model)
    history, curves = train_and_save(
        writer, trainer, model, processor, callbacks, last, CURVES, f"grpo {writer.name}", CURVES_PNG
    )

    metrics = {**reward_summary(history), **run_metrics(trainer, precision)}
    console.print(
        f"grpo {writer.name}: {metrics['steps']} steps, reward {metrics['first_reward']} -> {metrics['final_reward']}"
        + (f" (resumed from step {resumed_from})" if resumed_from is not None else "")
    )
    return on_main(
        lambda: writer.publish(
            counts={"prompts": len(records), "trainable_parameters": trainable, "parameters": total},
            metrics=metrics,
            extra={
                "model": {**model_summary(source, family, base_config_hash), "init": _init_kind(source, config)},
                "training": training_summary(config, precision, quantized, resumed_from),
                "generation": {
                    "batch_size": args.generation_batch_size,
                    "steps_per_generation": args.steps_per_generation,
                    "compiled": compiled,
                    "cache": "static" if compiled else "dynamic",
                },
                "rewards": {
                    "functions": list(REWARD_FUNCTIONS),
                    "weights": rewards.reward_weights(),
                    "components_logged": list(COMPONENTS),
                },
                "curves": {
                    "png": CURVES_PNG,
                    "plotted": curves,
                    "log_history": LOG_HISTORY,
                    "tensorboard": tensorboard,
                    "samples": SAMPLES,
                },
            },
        )
    )


def _init_kind(source: ModelSource, config: GrpoConfig) -> str:
    if source.base is not None:
        return "continued adapter"
    return "every weight trained" if config.finetune == "full" else "fresh LoRA on the base model"


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
    }
    for component in ("format", "speed_accuracy", "path_accuracy", "quality"):
        summary[f"final_{component}"] = mean(last, f"planning/{component}/mean")
    return summary
