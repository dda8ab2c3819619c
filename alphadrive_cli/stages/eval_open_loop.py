"""``alphadrive eval``: open-loop planning metrics of a model, or of predictions made elsewhere.

Either way the result is an ``eval`` artifact: ``metrics.json`` (docs/spec.md#metrics),
``predictions.jsonl`` (raw text, parsed plan, correctness), confusion matrices and per-class F1 as
PNG, and a table laid out like the paper's Table 1 on stderr. Generated completions are cached in
the unfinished artifact batch by batch, so an interrupted evaluation resumes where it stopped.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from alphadrive_cli.actions import ActionVocabulary, parse_answer
from alphadrive_cli.artifacts.store import (
    Artifact,
    ArtifactWriter,
    OutputSpec,
    open_artifact,
    sha256_file,
)
from alphadrive_cli.config.schemas import EvalConfig
from alphadrive_cli.data.records import Record, dataset_vocabulary, frames_hash, iter_split
from alphadrive_cli.errors import BadInput
from alphadrive_cli.evaluation.metrics import (
    UNNAMED_SCENARIO,
    accuracy_by_group,
    frame_episode,
    frame_scenario,
    judged_plans,
    multimodality,
    open_loop_metrics,
    reward_signal,
    single_action,
)
from alphadrive_cli.evaluation.plots import confusion_png, f1_bars_png
from alphadrive_cli.evaluation.served import identity_settings, served_completions
from alphadrive_cli.models.generation import (
    GenerationSettings,
    complete_records,
    decoding_summary,
    load_for_generation,
)
from alphadrive_cli.models.loading import ModelSource, model_inputs, resolve_model_source
from alphadrive_cli.prompts import PromptTemplate, add_prompts, require_scene, student_prompt
from alphadrive_cli.textfiles import read_text_file
from alphadrive_cli.ui import console, progress_bar, user_text

DATA_STAGES = ("data", "distill")
CACHE_NAME = ".completions.jsonl"


def _records(data: Artifact, split: str) -> tuple[list[Record], ActionVocabulary]:
    vocabulary = dataset_vocabulary(data)
    records = list(iter_split(data, split, vocabulary))
    if not records:
        raise BadInput(f"{data.path} has no records in its {split} split")
    return records, vocabulary


def with_shuffled_images(records: Sequence[Record], seed: int = 0) -> list[Record]:
    """``records`` (same order, ids, prompts and labels), each with the images of another record: a random cycle
    through all of them, so no frame keeps its own and every frame's images are used once."""
    if len(records) < 2:
        raise BadInput("images=shuffled needs at least two frames in the split")
    order = random.Random(seed).sample(range(len(records)), len(records))
    donor = {order[index]: order[(index + 1) % len(order)] for index in range(len(order))}
    return [record.model_copy(update={"images": records[donor[index]].images}) for index, record in enumerate(records)]


def _cached_completions(writer: ArtifactWriter) -> dict[str, list[str]]:
    cache = writer.dir / CACHE_NAME
    if not cache.is_file():
        return {}
    done: dict[str, list[str]] = {}
    for line in cache.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a crash: that batch is generated again
            continue
        done[entry["id"]] = entry["texts"]
    return done


def generate_completions(
    writer: ArtifactWriter,
    source: ModelSource,
    template: PromptTemplate,
    data: Artifact,
    records: Sequence[Record],
    vocabulary: ActionVocabulary,
    config: EvalConfig,
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Completions of ``template`` for every record (cached ones reused), and throughput figures."""

    done = _cached_completions(writer)
    todo = [record for record in records if record.id not in done]
    add_prompts(writer, template)
    stats: dict[str, Any] = {"generated_frames": len(todo), "cached_frames": len(records) - len(todo)}
    if not todo:
        return done, stats
    model, processor, compiled = load_for_generation(source, config.compile_generation)
    settings = GenerationSettings(config.max_new_tokens, config.samples, config.temperature)
    started = time.perf_counter()
    with progress_bar("frames") as progress, (writer.dir / CACHE_NAME).open("a", encoding="utf-8") as cache:
        task = progress.add_task("generating", total=len(todo), note="")
        for start in range(0, len(todo), config.batch_size):
            batch = todo[start : start + config.batch_size]
            completions = complete_records(model, processor, template, batch, vocabulary, data.path, settings)
            for record, texts in zip(batch, completions, strict=False):
                done[record.id] = texts
                cache.write(json.dumps({"id": record.id, "texts": texts}) + "\n")
            cache.flush()
            elapsed = time.perf_counter() - started
            progress.update(task, advance=len(batch), note=f"{(start + len(batch)) / elapsed:.2f} frames/s")
    seconds = time.perf_counter() - started
    stats.update(
        generation_s=round(seconds, 2),
        frames_per_s=round(len(todo) / seconds, 3),
        model={"reference": source.reference, **source.describe()},
        device=str(model.device),
        decoding=decoding_summary(compiled),
    )
    console.print(f"generated {len(todo)} frames in {seconds:.1f} s ({stats['frames_per_s']} frames/s)")
    return done, stats


def read_predictions(path: Path, records: Sequence[Record]) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Completions from a JSONL file of ``{"id", "text"}`` (or ``"texts"``: K samples); id problems are reported."""
    wanted = {record.id for record in records}
    found: dict[str, list[str]] = {}
    unknown: list[str] = []
    duplicate: list[str] = []
    for number, line in enumerate(read_text_file(path, "predictions file").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            identifier = str(entry["id"])
            texts = entry["texts"] if "texts" in entry else [entry["text"]]
            if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts) or not texts:
                raise TypeError("text must be a string (texts: a non-empty list of strings)")
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise BadInput(f'{path} line {number}: expected {{"id": ..., "text": ...}} ({exc})') from None
        if identifier not in wanted:
            unknown.append(identifier)
        elif identifier in found:
            duplicate.append(identifier)
        else:
            found[identifier] = texts
    missing = [record.id for record in records if record.id not in found]
    for label, ids in (
        ("unknown ids (not in the split, ignored)", unknown),
        ("duplicate ids (first kept)", duplicate),
        ("missing ids (scored as no answer)", missing),
    ):
        if ids:
            console.print(
                f"[yellow]warning:[/] {len(ids)} {label}: {user_text(', '.join(ids[:5]))}{' …' if len(ids) > 5 else ''}"
            )
    report = {"unknown_ids": unknown, "duplicate_ids": duplicate, "missing_ids": missing}
    return found, report


def _prediction_rows(
    records: Sequence[Record], completions: dict[str, list[str]], vocabulary: ActionVocabulary
) -> list[dict[str, Any]]:
    rows = []
    for record in records:
        texts = completions.get(record.id, [""])
        parsed = parse_answer(texts[0], vocabulary)
        speed, path = single_action(parsed.speed), single_action(parsed.path)
        rows.append(
            {
                "id": record.id,
                "text": texts[0],
                **({"samples": texts} if len(texts) > 1 else {}),
                "parsed": parsed.to_dict(),
                "truth": [record.speed_action, record.path_action],
                "speed_correct": speed == record.speed_action,
                "path_correct": path == record.path_action,
                "plan_correct": parsed.plan == (record.speed_action, record.path_action),
                **({"plan_acceptable": parsed.plan in record.acceptable_plans()} if record.plans else {}),
                **({"scenario": scenario} if (scenario := frame_scenario(record.source)) else {}),
                **({"episode": episode} if (episode := frame_episode(record.source)) else {}),
            }
        )
    return rows


def metrics_table(metrics: dict[str, Any], vocabulary: ActionVocabulary, title: str) -> Table:
    """The paper's Table 1 numbers (per-class F1 for speed and path, planning accuracy), one class per row
    so it fits a terminal; ``eval compare --markdown`` gives the paper's wide layout."""
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for column in ("head", "meta-action", "precision", "recall", "F1", "frames"):
        table.add_column(column, justify="left" if column in ("head", "meta-action") else "right")
    for head, actions in (("speed", vocabulary.speed), ("path", vocabulary.path)):
        for position, action in enumerate(actions):
            scores = metrics[head]["per_class"][action]
            table.add_row(
                head if position == 0 else "",
                action,
                f"{scores['precision']:.3f}",
                f"{scores['recall']:.3f}",
                f"{scores['f1']:.3f}",
                str(scores["support"]),
            )
        table.add_row("", "macro F1", "", "", f"{metrics[head]['macro_f1']:.3f}", "", end_section=True)
    table.add_row(
        "plan", "planning accuracy", "", "", f"{metrics['planning_accuracy']:.3f}", str(metrics["counts"]["frames"])
    )
    table.add_row("", "released code's rule", "", "", f"{metrics['released_code_accuracy']:.3f}", "")
    table.add_row("", "format valid", "", "", f"{metrics['format_valid_rate']:.3f}", "")
    if "reward_signal" in metrics:  # K samples per frame: what a first GRPO rollout would learn from
        signal = metrics["reward_signal"]
        for form, label in (("reasoning", "reasoning"), ("answer_only", "answer-only")):
            table.add_row(
                "", f"samples in {label} format", "", "", f"{signal[form]['format_rate']:.3f}", str(signal["samples"])
            )
            table.add_row(
                "", f"groups with {label} signal", "", "", f"{signal[form]['groups_with_signal_rate']:.3f}", ""
            )
    if "judged" in metrics:
        judged = metrics["judged"]
        table.add_row("", "acceptable (simulator)", "", "", f"{judged['acceptable_rate']:.3f}", str(judged["frames"]))
        if "two_acceptable_plans_rate" in judged:
            table.add_row("", "2+ acceptable of K", "", "", f"{judged['two_acceptable_plans_rate']:.3f}", "")
    if "by_scenario" in metrics:  # simulator frames: planning accuracy where each scenario's frames are
        table.add_section()
        for position, (scenario, scores) in enumerate(metrics["by_scenario"].items()):
            table.add_row(
                "scenario" if position == 0 else "",
                scenario,
                "",
                "",
                f"{scores['planning_accuracy']:.3f}",
                str(scores["frames"]),
            )
    return table


def publish_evaluation(
    writer: ArtifactWriter,
    records: Sequence[Record],
    completions: dict[str, list[str]],
    vocabulary: ActionVocabulary,
    extra: dict[str, Any],
) -> Artifact:
    """Score the completions and write metrics, predictions, plots and the manifest."""
    truths = [(record.speed_action, record.path_action) for record in records]
    first_answers = [completions.get(record.id, [""])[0] for record in records]
    metrics = open_loop_metrics(truths, first_answers, vocabulary)
    scenarios = [frame_scenario(record.source) for record in records]
    if any(scenarios):  # simulator frames: where the plans are right
        groups = [scenario or UNNAMED_SCENARIO for scenario in scenarios]
        metrics["by_scenario"] = accuracy_by_group(groups, truths, first_answers, vocabulary)
    samples = [completions.get(record.id, [""]) for record in records]
    answers = [[parse_answer(text, vocabulary).plan for text in texts] for texts in samples]
    if any(len(texts) > 1 for texts in completions.values()):
        metrics["multimodality"] = multimodality(answers, truths)
        metrics["reward_signal"] = reward_signal(samples, truths, vocabulary)
    judged = [index for index, record in enumerate(records) if record.plans]
    if judged:  # a data set judged by the simulator (data judge): verdicts beside exact match
        metrics["judged"] = judged_plans(
            [answers[index] for index in judged], [records[index].acceptable_plans() for index in judged]
        )
    writer.path("metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with writer.path("predictions.jsonl").open("w", encoding="utf-8") as handle:
        for row in _prediction_rows(records, completions, vocabulary):
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    for head, actions in (("speed", vocabulary.speed), ("path", vocabulary.path)):
        confusion_png(
            metrics[head]["confusion_matrix"], actions, f"{head} meta-action", writer.path(f"confusion_{head}.png")
        )
    f1_bars_png(
        {head: metrics[head]["per_class"] for head in ("speed", "path")},
        "per-class F1",
        writer.path("f1_per_class.png"),
    )
    (writer.dir / CACHE_NAME).unlink(missing_ok=True)
    console.print(metrics_table(metrics, vocabulary, f"eval {writer.name}: {len(records)} frames"))
    headline = {key: metrics[key] for key in ("planning_accuracy", "format_valid_rate")}
    headline.update(speed_macro_f1=metrics["speed"]["macro_f1"], path_macro_f1=metrics["path"]["macro_f1"])
    return writer.publish(counts={"frames": len(records)}, metrics=headline, extra=extra)


def _scored(config: EvalConfig, model: str | None, predictions: Path | None) -> dict[str, Any]:
    """What is scored, as the manifest's ``scored``: a model, a served model (its name and URL) or a file."""
    if model is not None:
        return {"model": model}
    if predictions is not None:
        if not predictions.is_file():
            raise BadInput(f"no such predictions file: {predictions}")
        return {"predictions_sha256": sha256_file(predictions)}
    if config.api.base_url is None:
        raise BadInput("eval needs --model MODEL, --predictions FILE or --base-url URL")
    return {"api_model": config.api.model, "base_url": config.api.base_url}


def run(
    config: EvalConfig, output: OutputSpec, *, data: Path, model: str | None = None, predictions: Path | None = None
) -> Artifact:
    """Evaluate ``model`` (generating), the model served at ``config.api.base_url`` (asking it) or ``predictions``
    (a file) on a data split."""
    data = open_artifact(data, stage=DATA_STAGES)
    records, vocabulary = _records(data, config.split)
    scored = _scored(config, model, predictions)
    if config.images == "shuffled" and "predictions_sha256" in scored:
        raise BadInput(
            "images=shuffled needs --model or --base-url: a predictions file was planned from its own images"
        )
    if "api_model" in scored and not config.api.model:
        raise BadInput("--base-url needs --api-model NAME: the name the endpoint serves the model under")
    source = resolve_model_source(model) if model is not None else None  # checked before any heavy loading
    # the prompt a model (the one it trained with) or a served model plans from; refused before any work where it
    # states scene facts the frames lack
    template = source.student_prompt(config.prompt) if source else student_prompt(config.prompt, None)
    if predictions is None:
        require_scene(template, records)
    inputs = {"data": data, **model_inputs(source)}
    identity = {key: value for key, value in scored.items() if key != "base_url"}  # a moved server still resumes
    with output.begin(
        "eval",
        "eval",
        config.model_dump(mode="json"),
        inputs=inputs,
        identity={"config": identity_settings(config), **identity},
    ) as writer:
        planned = with_shuffled_images(records) if config.images == "shuffled" else records
        if source is not None:
            completions, report = generate_completions(writer, source, template, data, planned, vocabulary, config)
        elif "api_model" in scored:
            completions, report = served_completions(writer, template, data.path, planned, vocabulary, config)
        else:
            completions, report = read_predictions(predictions, records)
        return publish_evaluation(
            writer,
            records,
            completions,
            vocabulary,
            extra={
                "split": config.split,
                "frames_hash": frames_hash(data, records),
                "scored": scored,
                "report": report,
                "vocabulary": vocabulary.to_dict(),
            },
        )
