"""``alphadrive eval --closed-loop``: the trained VLM drives highway-env episodes; the expert drives the same seeds.

The result is an ``eval`` artifact with ``closed_loop.json`` (per driver, per scenario and overall:
collision, off-road and route-completion rates, mean speed, distance, plan-parse failures; and every
episode), ``decisions.jsonl`` (each of the model's decisions: what it saw, wrote and did) and
``drive.gif`` (a few of the model's episodes with the chosen plan on every frame).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from alphadrive_cli.actions import DEFAULT_VOCABULARY
from alphadrive_cli.artifacts.store import Artifact, ArtifactWriter, OutputSpec
from alphadrive_cli.config.schemas import EvalConfig, RenderConfig
from alphadrive_cli.errors import BadInput
from alphadrive_cli.evaluation.closed_loop.animation import write_gif
from alphadrive_cli.evaluation.closed_loop.driving import EXPERT, EpisodeSpec, Observation, episode_specs
from alphadrive_cli.evaluation.closed_loop.runner import FALLBACK_PLAN, DriveLog, Planner, drive
from alphadrive_cli.evaluation.closed_loop.views import closed_loop_render
from alphadrive_cli.evaluation.metrics import closed_loop_metrics
from alphadrive_cli.models.generation import GenerationSettings, decoding_summary, generate, load_for_generation
from alphadrive_cli.models.loading import ModelSource, model_inputs, resolve_model_source
from alphadrive_cli.prompts import PromptTemplate, add_prompts, driving_messages
from alphadrive_cli.ui import console, progress_bar

MODEL = "model"
RESULT = "closed_loop.json"
DECISIONS = "decisions.jsonl"
GIF = "drive.gif"
TABLE_COLUMNS = (
    ("crash", "collision_rate", "{:.0%}"),
    ("off-road", "off_road_rate", "{:.0%}"),
    ("route", "route_completion_rate", "{:.0%}"),
    ("m/s", "mean_speed_mps", "{:.1f}"),
    ("m", "distance_m", "{:.0f}"),
    ("unparsed", "parse_failure_rate", "{:.0%}"),
)


def model_planner(source: ModelSource, template: PromptTemplate, config: EvalConfig) -> tuple[Planner, bool]:
    """Greedy plans for a batch of observations, ``batch_size`` views per generate call, and whether they are
    decoded with graphs."""
    model, processor, compiled = load_for_generation(source, config.compile_generation)
    settings = GenerationSettings(config.max_new_tokens)

    def plan(observations: Sequence[Observation]) -> list[str]:
        texts: list[str] = []
        for start in range(0, len(observations), config.batch_size):
            batch = observations[start : start + config.batch_size]
            prompts = [
                processor.apply_chat_template(
                    driving_messages(
                        template, o.navigation, o.ego_speed_mps, len(o.images), DEFAULT_VOCABULARY, o.scene
                    ),
                    add_generation_prompt=True,
                    tokenize=False,
                )
                for o in batch
            ]
            texts.extend(row[0] for row in generate(model, processor, prompts, [o.images for o in batch], settings))
        return texts

    return plan, compiled


def run(config: EvalConfig, output: OutputSpec, *, model: str, data: Path | None = None) -> Artifact:
    """Drive the scenarios with the model and with the expert on the same seeds; publish the comparison."""
    if config.images != "own":
        raise BadInput("images=shuffled is an open-loop diagnostic: closed-loop driving sees its own frames")
    source = resolve_model_source(model)
    render, render_source = closed_loop_render(source, data)
    specs = episode_specs(list(config.closed_loop.scenarios), config.closed_loop.seed_list())
    inputs = model_inputs(source)
    if render_source is not None:
        inputs["data"] = render_source
    settings = {
        **config.model_dump(mode="json"),
        "render": render.model_dump(mode="json"),
    }
    with output.begin(
        "eval",
        "closed-loop",
        settings,
        inputs=inputs,
        identity={"config": settings, "model": model},
    ) as writer:
        template = source.student_prompt(config.prompt)
        add_prompts(writer, template)
        return _drive_and_publish(writer, source, template, config, render, specs)


def _drive_and_publish(
    writer: ArtifactWriter,
    source: ModelSource,
    template: PromptTemplate,
    config: EvalConfig,
    render: RenderConfig,
    specs: list[EpisodeSpec],
) -> Artifact:
    loop = config.closed_loop
    planner, compiled = model_planner(source, template, config)
    per_episode = max(1, round(loop.seconds / loop.decision_interval_s))
    log = DriveLog(record_episodes={spec.id for spec in specs[: loop.gif_episodes]})
    started = time.perf_counter()
    with progress_bar("decisions") as progress:
        outcomes = []
        for driver, plan in ((EXPERT, None), (MODEL, planner)):
            task = progress.add_task(f"{driver} driving", total=len(specs) * per_episode, note="")
            outcomes += drive(
                specs,
                driver,
                plan,
                render,
                loop.seconds,
                loop.decision_interval_s,
                DEFAULT_VOCABULARY,
                log if driver == MODEL else None,
                lambda n, task=task: progress.advance(task, n),
            )
            progress.update(task, completed=len(specs) * per_episode)
    seconds = time.perf_counter() - started
    episodes = [outcome.as_dict() for outcome in outcomes]
    metrics = closed_loop_metrics(episodes)
    result = {
        "drivers": metrics,
        "episodes": episodes,
        "fallback": {"initial_plan": list(FALLBACK_PLAN), "rule": "no parseable plan: keep the last plan"},
    }
    writer.path(RESULT).write_text(json.dumps(result, indent=2) + "\n")
    with writer.path(DECISIONS).open("w", encoding="utf-8") as handle:
        for row in log.decisions:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    gif_frames = write_gif(log.frames, writer.path(GIF))
    console.print(closed_loop_table(metrics, f"closed loop {writer.name}: {len(specs)} episodes per driver"))
    return writer.publish(
        counts={"episodes": len(specs), "decisions": metrics[MODEL]["overall"]["decisions"], "gif_frames": gif_frames},
        metrics={"closed_loop": {driver: metrics[driver]["overall"] for driver in metrics}},
        extra={
            "closed_loop": {
                "model": {"reference": source.reference, **source.describe()},
                "episodes": [spec.id for spec in specs],
                "wall_s": round(seconds, 2),
                "decoding": decoding_summary(compiled),
                "gif": GIF if gif_frames else None,
            }
        },
    )


def closed_loop_table(metrics: dict[str, Any], title: str) -> Table:
    """Expert and model, per scenario and overall, one row each."""
    table = Table(
        title=title, box=box.SIMPLE_HEAD, padding=(0, 1), show_edge=False, pad_edge=False, collapse_padding=True
    )
    for column in ("driver", "scenario", "runs", *(title for title, _, _ in TABLE_COLUMNS)):
        table.add_column(column, justify="left" if column in ("driver", "scenario") else "right", no_wrap=True)
    for driver, summary in metrics.items():
        rows = [*summary["scenarios"].items(), ("overall", summary["overall"])]
        for position, (scenario, values) in enumerate(rows):
            table.add_row(
                driver if position == 0 else "",
                scenario,
                str(values["episodes"]),
                *(fmt.format(values[key]) for _, key, fmt in TABLE_COLUMNS),
                end_section=position == len(rows) - 1,
            )
    return table
