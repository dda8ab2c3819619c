"""Two evaluations of the same frames compared frame by frame: which plans each got right, and the difference
in planning accuracy with its paired bootstrap 95 % interval (used by `eval compare` and the benchmarks)."""

from __future__ import annotations

import json
from pathlib import Path

from alphadrive_cli.evaluation.metrics import paired_difference_ci, released_code_correct


def plan_outcomes(eval_dir: Path, released_rule: bool = False) -> dict[str, bool]:
    """Whether each frame's plan was right, by frame id, from one `eval`'s predictions: its exact plan, or with
    ``released_rule`` by the paper's released evaluation (metrics.released_code_correct)."""
    rows = map(json.loads, (eval_dir / "predictions.jsonl").read_text().splitlines())
    if released_rule:
        return {row["id"]: released_code_correct(row["text"], tuple(row["truth"])) for row in rows}
    return {row["id"]: row["plan_correct"] for row in rows}


def gain_over(start: dict[str, bool], run: dict[str, bool]) -> dict[str, float]:
    """A run's planning accuracy minus its start's on the same frames, with its paired bootstrap 95 % interval."""
    frames = sorted(start)
    if sorted(run) != frames:
        raise ValueError("the two evaluations scored different frames")
    return paired_difference_ci([start[frame] for frame in frames], [run[frame] for frame in frames])
