"""Which of a model's wrong plans could one frame have told? Its test errors against a classifier of one frame.

Usage: python -m bench.headroom DATA --eval LABEL EVAL [--eval ...] [--seeds 0 1 2 3 4] [--out FILE]

DATA is the data artifact whose test split the evals scored. The classifier is `bench.label_ceiling`'s "one frame"
MLP for the whole plan (every number a record holds about its frame, to the speed and path actions as one class),
fitted on DATA's train split with its epoch chosen on val, once per seed; a test frame counts as one that one frame
tells where most seeds plan it right. Each eval's wrong frames split into those the classifier plans right, which a
model that read the frame as well could still get, and those it does not; the first are listed by true plan.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alphadrive_cli.evaluation.paired import plan_outcomes, same_frames
from bench.common import device_facts
from bench.label_ceiling import INPUTS, action_of, categories, features, fit, lead_gap
from bench.reasoning_facts import split_records
from bench.report import report

TOLD_COLUMN = "of them one frame tells (share of all frames)"


def one_frame_right(splits: Mapping[str, dict[str, dict[str, Any]]], seeds: Sequence[int]) -> dict[str, bool]:
    """For each test frame (by id), whether most seeds' one-frame plan classifier plans it right."""
    vocab = categories(list(splits["train"].values()))
    closing_speed, changes = INPUTS["one frame"]
    train, val, test = (
        features(splits[split], vocab, closing_speed, changes, label="plan") for split in ("train", "val", "test")
    )
    votes = sum((fit(train, val, seed, label="plan")[0](test[0]) == test[1]).int() for seed in seeds)
    return {frame: 2 * int(count) > len(seeds) for frame, count in zip(splits["test"], votes, strict=True)}


def lead_situation(record: dict[str, Any]) -> str:
    """What is ahead in a record's frame: its lead vehicle's kind and gap (under 20, 20-40, 40 m or more), or no lead
    and whether a junction is within 40 m."""
    scene = record.get("scene") or {}
    lead = scene.get("lead_vehicle")
    if lead:
        gap = lead_gap(record)
        return f"{lead.get('kind', 'vehicle')} {'<20' if gap < 20 else '20-40' if gap < 40 else '40+'} m ahead"
    junction = scene.get("distance_to_junction_m")
    return "no lead, junction within 40 m" if junction is not None and junction < 40 else "no lead, no junction near"


def headroom(
    told: Mapping[str, bool],
    outcomes: Mapping[str, bool],
    truths: Mapping[str, str],
    situations: Mapping[str, str],
) -> dict[str, Any]:
    """An eval's wrong frames (``outcomes``: right or not, by id) split by whether one frame tells their plan
    (``told``), with the true plans (``truths``) and what is ahead (``situations``) of those it tells, most frequent
    first."""
    frames = same_frames(told, outcomes)
    wrong = [frame for frame in frames if not outcomes[frame]]
    reachable = [frame for frame in wrong if told[frame]]
    return {
        "frames": len(frames),
        "accuracy": round(sum(outcomes.values()) / len(frames), 4),
        "wrong": len(wrong),
        "told_by_one_frame": len(reachable),
        "not_told": len(wrong) - len(reachable),
        "right_where_one_frame_is_not": sum(outcomes[frame] and not told[frame] for frame in frames),
        "told_by_true_plan": dict(Counter(truths[frame] for frame in reachable).most_common()),
        "told_by_what_is_ahead": dict(Counter(situations[frame] for frame in reachable).most_common()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the data artifact (`data sim`) whose test split the evals scored")
    parser.add_argument(
        "--eval", nargs=2, action="append", required=True, metavar=("LABEL", "EVAL"), help="an eval folder"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    splits = {name: split_records(args.data, name) for name in ("train", "val", "test")}
    told = one_frame_right(splits, args.seeds)
    truths = {frame: action_of(record, "plan") for frame, record in splits["test"].items()}
    situations = {frame: lead_situation(record) for frame, record in splits["test"].items()}
    rows: list[dict[str, Any]] = [
        {
            "eval": f"one-frame classifier ({len(args.seeds)} seeds, majority)",
            "accuracy": f"{sum(told.values()) / len(told):.3f}",
        }
    ]
    results = {}
    for label, evaluation in args.eval:
        result = results[label] = headroom(told, plan_outcomes(Path(evaluation)), truths, situations)
        plans, ahead = (
            ", ".join(f"{name} {count}" for name, count in list(result[key].items())[:4])
            for key in ("told_by_true_plan", "told_by_what_is_ahead")
        )
        told_share = result["told_by_one_frame"] / result["frames"]
        rows.append(
            {
                "eval": label,
                "accuracy": f"{result['accuracy']:.3f}",
                "wrong": result["wrong"],
                TOLD_COLUMN: f"{result['told_by_one_frame']} ({told_share:.1%})",
                "right where one frame does not tell": result["right_where_one_frame_is_not"],
                "told, by true plan": plans,
                "told, by what is ahead": ahead,
            }
        )
    report(
        [
            "eval",
            "accuracy",
            "wrong",
            TOLD_COLUMN,
            "right where one frame does not tell",
            "told, by true plan",
            "told, by what is ahead",
        ],
        rows,
        args.out,
        **device_facts(),
        command="python -m bench.headroom " + " ".join(sys.argv[1:]),
        wall_s=round(time.perf_counter() - started, 1),
        results=results,
    )


if __name__ == "__main__":
    main()
