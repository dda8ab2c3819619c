"""``alphadrive eval compare``: eval artifacts side by side, with deltas against the first."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

from rich.table import Table

from alphadrive_cli.actions import DEFAULT_VOCABULARY, ActionVocabulary
from alphadrive_cli.artifacts.store import Artifact, open_artifact
from alphadrive_cli.errors import BadInput
from alphadrive_cli.evaluation.paired import (
    answer_changes,
    frame_episodes,
    frame_scenarios,
    gain_over,
    head_answers,
    plan_outcomes,
)

T = TypeVar("T")
INTERVALS = {"collision_rate": "collision_rate_ci95"}  # numbers shown with their 95 % interval
CLOSED_LOOP_COLUMNS = (
    ("closed-loop collision rate", "collision_rate"),
    ("closed-loop off-road rate", "off_road_rate"),
    ("closed-loop route completion", "route_completion_rate"),
    ("closed-loop mean speed m/s", "mean_speed_mps"),
    ("closed-loop distance m", "distance_m"),
    ("closed-loop unparsed plans", "parse_failure_rate"),
)


def _columns(vocabulary: ActionVocabulary, scenarios: Sequence[str] = ()) -> list[tuple[str, tuple[str, ...]]]:
    """(column title, path into the artifact's open-loop and closed-loop results) for every compared number; the
    planning accuracy of each of ``scenarios`` (simulator frames) after the whole split's."""
    columns = [
        (f"{head} {action} F1", ("open", head, "per_class", action, "f1"))
        for head, actions in (("speed", vocabulary.speed), ("path", vocabulary.path))
        for action in actions
    ]
    columns += [
        ("speed macro F1", ("open", "speed", "macro_f1")),
        ("path macro F1", ("open", "path", "macro_f1")),
        ("planning accuracy", ("open", "planning_accuracy")),
        *(
            (f"planning accuracy, {scenario} frames", ("open", "by_scenario", scenario, "planning_accuracy"))
            for scenario in scenarios
        ),
        ("released code's rule", ("open", "released_code_accuracy")),
        ("format valid", ("open", "format_valid_rate")),
        ("acceptable plan (simulator)", ("open", "judged", "acceptable_rate")),
        ("best of K acceptable", ("open", "judged", "best_of_k_acceptable_rate")),
        ("2+ acceptable plans of K", ("open", "judged", "two_acceptable_plans_rate")),
    ]
    return columns + [(title, ("closed", "model", "overall", key)) for title, key in CLOSED_LOOP_COLUMNS]


def _lookup(metrics: dict, path: tuple[str, ...]) -> object | None:
    for key in path:
        if not isinstance(metrics, dict) or key not in metrics:
            return None
        metrics = metrics[key]
    return metrics


def _value(metrics: dict, path: tuple[str, ...]) -> float | None:
    value = _lookup(metrics, path)
    return None if value is None else float(value)


def _interval(metrics: dict, path: tuple[str, ...]) -> str:
    """`` [low, high]`` where the number has a recorded 95 % interval, else nothing."""
    if path[-1] not in INTERVALS:
        return ""
    bounds = _lookup(metrics, (*path[:-1], INTERVALS[path[-1]]))
    return f" [{bounds[0]:.2f}, {bounds[1]:.2f}]" if isinstance(bounds, list) else ""


def _results(artifact: Artifact) -> dict:
    """The open-loop metrics (metrics.json) and closed-loop results (closed_loop.json) an eval artifact holds."""
    results = {}
    for key, file, section in (("open", "metrics.json", None), ("closed", "closed_loop.json", "drivers")):
        path = artifact.path / file
        if path.is_file():
            loaded = json.loads(path.read_text())
            results[key] = loaded[section] if section else loaded
    return results


PAIRED_COLUMN = "planning accuracy vs first, same frames [95% CI]"
PAIRED_BY_EPISODE_COLUMN = "planning accuracy vs first, same frames, episodes resampled [95% CI]"
HEADS = ("speed", "path")
CHANGES_COLUMNS = tuple(f"{head} answers changed from the first's: first → this on the true action" for head in HEADS)
SHOWN_CHANGES = 3  # the most frequent changes a cell names


def _frames_scored(artifact: Artifact) -> tuple[object, object]:
    """Which frames an eval scored: the hash of those frames (records.frames_hash), or for an eval written before
    it was recorded, its data set's content hash and its split."""
    if "frames_hash" in artifact.manifest:
        return ("frames", artifact.manifest["frames_hash"])
    data = [item.get("content_hash") for item in artifact.manifest.get("inputs", []) if item.get("role") == "data"]
    return (data[0] if data else None, artifact.manifest.get("split"))


def _from_predictions(artifact: Artifact | None, read: Callable[[Path], T]) -> T | None:
    """``read`` of an open-loop eval's folder (which frames it planned right, or one head's answers, by frame id);
    None without an artifact, for a closed-loop eval, or where its predictions do not say."""
    if artifact is None or not (artifact.path / "predictions.jsonl").is_file():
        return None
    try:
        return read(artifact.path)
    except (KeyError, ValueError):
        return None


def _paired_gain(base: dict[str, bool] | None, other: dict[str, bool] | None, episodes: dict[str, str] | None) -> str:
    """The planning accuracy difference over the first artifact with its paired bootstrap interval (whole
    ``episodes`` resampled where given), where both scored the same frames (the same data set's split, the same
    frame ids); "–" otherwise."""
    if base is None or other is None or base.keys() != other.keys():
        return "–"
    gain = gain_over(base, other, episodes)
    return f"{gain['difference']:+.3f} [{gain['low']:+.3f}, {gain['high']:+.3f}]"


def _changes(base: dict | None, other: dict | None) -> str:
    """How many frames' answers differ from the first artifact's, and the most frequent changes with the true
    action of their frames (``KEEP→DECELERATE on KEEP 9``), where both scored the same frames; "–" otherwise."""
    if base is None or other is None or base.keys() != other.keys():
        return "–"
    changes = answer_changes(base, other)
    shown = [
        f"{old or 'none'}→{new or 'none'} on {truth} {count}"
        for (truth, old, new), count in changes.most_common(SHOWN_CHANGES)
    ]
    return (
        f"{changes.total()}"
        + (": " + ", ".join(shown) if shown else "")
        + (", …" if len(changes) > SHOWN_CHANGES else "")
    )


def _scenario_gain(
    base: dict[str, bool] | None,
    other: dict[str, bool] | None,
    scenarios: dict[str, str] | None,
    scenario: str,
    episodes: dict[str, str] | None,
) -> str:
    """`` [low, high]``: the paired bootstrap interval of the planning accuracy difference on ``scenario``'s frames
    (whole ``episodes`` resampled where given), where both evals scored the same frames and their predictions name
    each frame's scenario; else nothing."""
    if base is None or other is None or scenarios is None or base.keys() != other.keys():
        return ""
    frames = [frame for frame, named in scenarios.items() if named == scenario and frame in base]
    if not frames:
        return ""
    gain = gain_over({frame: base[frame] for frame in frames}, {frame: other[frame] for frame in frames}, episodes)
    return f" [{gain['low']:+.3f}, {gain['high']:+.3f}]"


def comparison(paths: Sequence[Path]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (one per artifact, first one absolute, the others with deltas); open-loop and
    closed-loop numbers side by side (the collision rate with its 95 % interval), "–" where an artifact has none;
    where open-loop evals scored the same frames as the first, their planning accuracy difference with its
    paired bootstrap 95 % interval (on simulator frames also each scenario's) and, per head, which answers changed
    from the first's."""
    if len(paths) < 2:
        raise BadInput("compare needs at least two eval artifacts")
    artifacts: list[Artifact] = [open_artifact(path, stage="eval") for path in paths]
    vocabularies = [artifact.manifest["vocabulary"] for artifact in artifacts if "vocabulary" in artifact.manifest]
    vocabulary = ActionVocabulary.from_dict(vocabularies[0]) if vocabularies else DEFAULT_VOCABULARY
    results = [_results(artifact) for artifact in artifacts]
    scenarios = sorted({scenario for values in results for scenario in _lookup(values, ("open", "by_scenario")) or {}})
    columns = [  # a number no artifact has (closed loop, simulator verdicts, scenarios) is left out
        (title, path)
        for title, path in _columns(vocabulary, scenarios)
        if any(_lookup(values, path) is not None for values in results)
    ]
    # simulator frames of one episode are right or wrong together: where the predictions name each frame's
    # episode, the intervals resample episodes (a cluster bootstrap), not frames
    episodes = _from_predictions(artifacts[0], frame_episodes) or None
    # each paired column: what it reads from an eval's predictions, and its cell from the first's and another's
    paired_columns = [
        (plan_outcomes, partial(_paired_gain, episodes=episodes)),
        *((partial(head_answers, head=head), _changes) for head in HEADS),
    ]
    first_frames = _frames_scored(artifacts[0])
    first = [_from_predictions(artifacts[0], read) for read, _ in paired_columns]  # read once
    comparable = [artifact if _frames_scored(artifact) == first_frames else None for artifact in artifacts[1:]]
    read = [[_from_predictions(artifact, reader) for reader, _ in paired_columns] for artifact in comparable]
    paired = [
        [cell(base, other) for (_, cell), base, other in zip(paired_columns, first, others, strict=True)]
        for others in read
    ]
    # each scenario column's difference comes with its own paired interval, on that scenario's frames
    scenario_frames = _from_predictions(artifacts[0], frame_scenarios) if scenarios else None
    header = ["artifact", "frames", *(title for title, _ in columns)]
    paired_title = PAIRED_COLUMN if episodes is None else PAIRED_BY_EPISODE_COLUMN
    if any(cells[0] != "–" for cells in paired):
        header += [paired_title, *CHANGES_COLUMNS]
    rows = []
    for index, (artifact, values) in enumerate(zip(artifacts, results, strict=False)):
        cells = [artifact.label, str(artifact.manifest["counts"].get("frames", "–"))]
        for _, path in columns:
            value, base = _value(values, path), _value(results[0], path)
            if value is None:
                cells.append("–")
            elif index == 0 or base is None:
                cells.append(f"{value:.3f}{_interval(values, path)}")
            elif path[:2] == ("open", "by_scenario"):
                paired_cell = _scenario_gain(first[0], read[index - 1][0], scenario_frames, path[2], episodes)
                cells.append(f"{value:.3f} ({value - base:+.3f}{paired_cell})")
            else:
                cells.append(f"{value:.3f}{_interval(values, path)} ({value - base:+.3f})")
        if paired_title in header:
            cells += ["–"] * len(paired_columns) if index == 0 else paired[index - 1]
        rows.append(cells)
    return header, rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def rich_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    """The same as a rich table (artifacts as columns, metrics as rows, so it fits a terminal)."""
    table = Table(title="eval comparison (deltas against the first)")
    table.add_column("metric")
    for row in rows:
        table.add_column(row[0], justify="right")
    for position, title in enumerate(header[1:], start=1):
        table.add_row(title, *(row[position] for row in rows))
    return table
