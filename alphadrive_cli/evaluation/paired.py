"""Two evaluations of the same frames compared frame by frame: which plans each got right, and the difference
in planning accuracy with its paired bootstrap 95 % interval (used by `eval compare` and the benchmarks)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alphadrive_cli.evaluation.metrics import (
    UNNAMED_SCENARIO,
    paired_difference_ci,
    paired_f1_change_ci,
    released_code_correct,
    single_action,
)


def plan_outcomes(eval_dir: Path, released_rule: bool = False) -> dict[str, bool]:
    """Whether each frame's plan was right, by frame id, from one `eval`'s predictions: its exact plan, or with
    ``released_rule`` by the paper's released evaluation (metrics.released_code_correct)."""
    rows = map(json.loads, (eval_dir / "predictions.jsonl").read_text().splitlines())
    if released_rule:
        return {row["id"]: released_code_correct(row["text"], tuple(row["truth"])) for row in rows}
    return {row["id"]: row["plan_correct"] for row in rows}


def frame_scenarios(eval_dir: Path) -> dict[str, str]:
    """Each frame's simulator scenario (``UNNAMED_SCENARIO`` for a frame without one), by frame id, from one
    `eval`'s predictions; an eval written before predictions named scenarios gives ``UNNAMED_SCENARIO`` throughout."""
    rows = map(json.loads, (eval_dir / "predictions.jsonl").read_text().splitlines())
    return {row["id"]: row.get("scenario", UNNAMED_SCENARIO) for row in rows}


def same_frames(start: dict[str, Any], run: dict[str, Any]) -> list[str]:
    """The frame ids two evaluations both scored, sorted; an error where they scored different frames."""
    frames = sorted(start)
    if sorted(run) != frames:
        raise ValueError("the two evaluations scored different frames")
    return frames


def frame_episodes(eval_dir: Path) -> dict[str, str]:
    """Each frame's simulator episode, by frame id, from one `eval`'s predictions; frames that name none (not
    simulator frames, or an eval written before predictions named episodes) are left out."""
    rows = map(json.loads, (eval_dir / "predictions.jsonl").read_text().splitlines())
    return {row["id"]: str(row["episode"]) for row in rows if row.get("episode") is not None}


def gain_over(
    start: dict[str, bool], run: dict[str, bool], episodes: Mapping[str, str] | None = None
) -> dict[str, float]:
    """A run's planning accuracy minus its start's on the same frames, with its paired bootstrap 95 % interval;
    with ``episodes`` (each frame's, by id) whole episodes are resampled, a frame without one being its own."""
    frames = same_frames(start, run)
    return paired_difference_ci(
        [start[frame] for frame in frames],
        [run[frame] for frame in frames],
        units=None if episodes is None else [episodes.get(frame) for frame in frames],
    )


def eval_gain(start: Path, run: Path, released_rule: bool = False) -> dict[str, float]:
    """:func:`gain_over` of two `eval`s of the same frames (:func:`plan_outcomes` of each, by ``released_rule``),
    resampling whole episodes where the first's predictions name each frame's (simulator frames)."""
    return gain_over(
        plan_outcomes(start, released_rule), plan_outcomes(run, released_rule), frame_episodes(start) or None
    )


def head_answers(eval_dir: Path, head: str) -> dict[str, tuple[str, str | None]]:
    """Each frame's true action of ``head`` (speed or path) and the one it predicted (None: none or hedged, as
    the eval's metrics count it), by frame id, from one `eval`'s predictions."""
    index = ("speed", "path").index(head)
    rows = map(json.loads, (eval_dir / "predictions.jsonl").read_text().splitlines())
    return {row["id"]: (row["truth"][index], single_action(frozenset(row["parsed"][head]))) for row in rows}


def f1_change(
    before: dict[str, tuple[str, str | None]],
    after: dict[str, tuple[str, str | None]],
    action: str,
    episodes: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """``action``'s F1 in a run's :func:`head_answers` (``after``) minus in its start's (``before``), on the same
    frames, with its paired bootstrap 95 % interval (whole ``episodes`` resampled where given)."""
    frames = same_frames(before, after)
    return paired_f1_change_ci(
        [before[frame][0] for frame in frames],
        [before[frame][1] for frame in frames],
        [after[frame][1] for frame in frames],
        action,
        units=None if episodes is None else [episodes.get(frame) for frame in frames],
    )


def answers_changed(before: Path, after: Path) -> dict[str, int]:
    """How many frames' greedy answers differ between two `eval`s of the same frames, per head, and how many of
    the frames whose answer changed got a right plan that was wrong before, or the reverse."""
    plans_before, plans_after = plan_outcomes(before), plan_outcomes(after)
    frames = same_frames(plans_before, plans_after)
    answers = {head: (head_answers(before, head), head_answers(after, head)) for head in ("speed", "path")}
    moved = {
        head: {frame for frame in frames if old[frame][1] != new[frame][1]} for head, (old, new) in answers.items()
    }
    either = moved["speed"] | moved["path"]
    return {
        "frames": len(frames),
        "speed": len(moved["speed"]),
        "path": len(moved["path"]),
        "became_right": sum(plans_after[frame] and not plans_before[frame] for frame in either),
        "became_wrong": sum(plans_before[frame] and not plans_after[frame] for frame in either),
    }


def answer_changes(
    before: dict[str, tuple[str, str | None]], after: dict[str, tuple[str, str | None]]
) -> Counter[tuple[str, str | None, str | None]]:
    """(true action, answer before, answer after) of every frame whose answer differs between two
    :func:`head_answers` of the same frames, counted: what a run changed, and on which true actions."""
    frames = same_frames(before, after)
    return Counter(
        (before[frame][0], before[frame][1], after[frame][1]) for frame in frames if before[frame][1] != after[frame][1]
    )
