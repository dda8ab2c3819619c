"""Where does an RL run's gain come from? Each test frame by how many of several SFT runs plan it right.

Usage: python -m bench.gain_by_sft_agreement --sft EVAL [EVAL ...] --rl EVAL [--start EVAL] [--out FILE]

Repeats of one SFT command disagree on some frames (docs/results.md, the SFT repeats). Bucketing the test frames
by how many of the SFT runs plan a frame right (never, sometimes, always) says what an RL run started from one
of them did there: plans no SFT run had (RL right where SFT never is), plans the SFT runs were split on (RL's
right answers on the "sometimes" frames against the SFT runs' mean there), and plans they all had that RL lost.
``--start`` names the SFT run the RL run started from, whose own right plans per bucket separate what RL did from
how lucky its start was on the frames the runs split on. Each bucket is also broken down by the frames' true plans.
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alphadrive_cli.evaluation.paired import plan_outcomes, same_frames
from bench.entry import run_main
from bench.report import report

BUCKETS = ("never", "sometimes", "always")


def bucket_of(rights: int, runs: int) -> str:
    """Which bucket a frame that ``rights`` of ``runs`` SFT runs plan right falls in."""
    return "never" if rights == 0 else "always" if rights == runs else "sometimes"


def by_agreement(
    sft_runs: Sequence[Mapping[str, bool]],
    rl: Mapping[str, bool],
    truths: Mapping[str, str],
    start: Mapping[str, bool] | None = None,
) -> list[dict[str, Any]]:
    """Per bucket: its frames, the SFT runs' mean count of right plans there, the RL run's right plans (and its
    ``start``'s, if given), and the RL run's by true plan (``truths``: each frame's true plan as text)."""
    if not sft_runs:
        raise ValueError("no SFT runs to bucket by")
    frames = same_frames(dict(rl), dict(sft_runs[0]))
    for run in [*sft_runs[1:], *([start] if start is not None else [])]:
        same_frames(dict(rl), dict(run))
    rows = {
        bucket: {"bucket": bucket, "frames": 0, "sft right (mean)": 0.0, "rl right": 0, "truths": Counter()}
        | ({"start right": 0} if start is not None else {})
        for bucket in BUCKETS
    }
    rl_right_by_truth: dict[str, Counter[str]] = {bucket: Counter() for bucket in BUCKETS}
    for frame in frames:
        rights = sum(run[frame] for run in sft_runs)
        row = rows[bucket_of(rights, len(sft_runs))]
        row["frames"] += 1
        row["sft right (mean)"] += rights / len(sft_runs)
        row["rl right"] += int(rl[frame])
        if start is not None:
            row["start right"] += int(start[frame])
        row["truths"][truths[frame]] += 1
        if rl[frame]:
            rl_right_by_truth[row["bucket"]][truths[frame]] += 1
    for bucket, row in rows.items():
        row["rl - sft"] = round(row["rl right"] - row["sft right (mean)"], 1)
        row["sft right (mean)"] = round(row["sft right (mean)"], 1)
        row["frames by true plan (rl right)"] = ", ".join(
            f"{truth} {count} ({rl_right_by_truth[bucket][truth]})" for truth, count in row.pop("truths").most_common()
        )
    return list(rows.values())


def true_plans(eval_dir: Path) -> dict[str, str]:
    """Each frame's true plan, e.g. ``DECELERATE, STRAIGHT``, from one `eval`'s predictions."""
    rows = map(json.loads, (eval_dir / "predictions.jsonl").read_text().splitlines())
    return {row["id"]: ", ".join(row["truth"]) for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft", type=Path, nargs="+", required=True, help="the SFT runs' evals (same frames)")
    parser.add_argument("--rl", type=Path, required=True, help="the RL run's eval")
    parser.add_argument("--start", type=Path, default=None, help="the eval of the SFT run the RL run started from")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    start = plan_outcomes(args.start) if args.start is not None else None
    sft = [plan_outcomes(path) for path in args.sft]
    rows = by_agreement(sft, plan_outcomes(args.rl), true_plans(args.rl), start)
    report(
        ["bucket", "frames", "sft right (mean)", *(["start right"] if start else []), "rl right", "rl - sft"]
        + ["frames by true plan (rl right)"],
        rows,
        args.out,
        command="python -m bench.gain_by_sft_agreement --sft "
        + " ".join(shlex.quote(str(path)) for path in args.sft)
        + f" --rl {shlex.quote(str(args.rl))}"
        + (f" --start {shlex.quote(str(args.start))}" if args.start else ""),
        sft_runs=len(args.sft),
    )


if __name__ == "__main__":
    run_main(main)
