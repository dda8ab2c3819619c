"""Where does RL end, given where its SFT start was? Every SFT -> SFT + RL pair of some `bench.ablation` results.

Usage: python -m bench.rl_end_points ABLATION_JSON [ABLATION_JSON ...] [--label NAME ...] [--plot FILE] [--out FILE]

For each result file (labelled by --label, in order, else by its folder) and each seed of each GRPO row that starts
from an SFT row (SFT + RL with reasoning, and answer-only): the two rows' test planning accuracy. Per row kind it
reports the pairs, the least-squares slope of RL's accuracy on its SFT's (1: RL adds the same to any start; 0: RL
ends at one point whatever SFT scored), the mean and spread of where RL ends, and the mean gain. Give it results of
one data set's test split (the same frames), or the end points mean nothing together; the plot shows each pair
against the line RL = SFT.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bench.entry import run_main  # noqa: E402
from bench.report import report  # noqa: E402

# each GRPO row after SFT, the SFT row it starts from, and its name in the report
RL_AFTER_SFT = {
    "sft_rl": ("sft_reasoning", "with reasoning"),
    "sft_no_reasoning_rl": ("sft_no_reasoning", "answer-only"),
}


def end_points(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The (SFT, SFT + RL) test planning accuracy of every seed of every GRPO row after SFT in one ablation's
    ``results`` (``{row: {seed: {"planning_accuracy": ...}}}``)."""
    pairs = []
    for row, (start, kind) in RL_AFTER_SFT.items():
        for seed, run in sorted(results.get(row, {}).items()):
            if (begun := results.get(start, {}).get(seed)) is not None:
                pairs.append(
                    {"kind": kind, "seed": seed, "sft": begun["planning_accuracy"], "rl": run["planning_accuracy"]}
                )
    return pairs


def summary(pairs: list[dict[str, Any]]) -> dict[str, float | int]:
    """RL's accuracy against its SFT's over ``pairs``: the least-squares slope (None below two distinct starts),
    RL's mean and standard deviation, SFT's, and the mean gain."""
    sft, rl = np.array([pair["sft"] for pair in pairs]), np.array([pair["rl"] for pair in pairs])
    slope = float(np.polyfit(sft, rl, 1)[0]) if len(set(sft.tolist())) > 1 else None
    spread = statistics.stdev if len(pairs) > 1 else (lambda values: 0.0)
    return {
        "pairs": len(pairs),
        "slope": None if slope is None else round(slope, 3),
        "sft_mean": round(float(sft.mean()), 4),
        "sft_sd": round(float(spread(sft.tolist())), 4),
        "rl_mean": round(float(rl.mean()), 4),
        "rl_sd": round(float(spread(rl.tolist())), 4),
        "mean_gain": round(float((rl - sft).mean()), 4),
    }


def end_points_png(pairs: list[dict[str, Any]], path: Path) -> None:
    """Each pair as a point (SFT's accuracy, RL's), one marker per row kind, with the line RL = SFT."""
    figure, axes = plt.subplots(figsize=(5.5, 5))
    values = [pair[key] for pair in pairs for key in ("sft", "rl")]
    low, high = min(values) - 0.02, max(values) + 0.02
    axes.plot([low, high], [low, high], color="grey", linewidth=1, label="RL = SFT")
    for kind, marker in (("with reasoning", "o"), ("answer-only", "s")):
        mine = [pair for pair in pairs if pair["kind"] == kind]
        if mine:
            axes.scatter([p["sft"] for p in mine], [p["rl"] for p in mine], marker=marker, label=kind, alpha=0.8)
    axes.set(xlim=(low, high), ylim=(low, high), xlabel="SFT: test planning accuracy", ylabel="SFT + RL")
    axes.set_title("where RL ends, given its SFT start")
    axes.legend(loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="bench.ablation JSON files (one data set's test split)")
    parser.add_argument("--label", nargs="+", default=None, help="a name for each file, in order")
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.label is not None and len(args.label) != len(args.results):
        parser.error(f"--label: {len(args.label)} names for {len(args.results)} result files")
    started = time.perf_counter()
    labels = args.label or [path.parent.name for path in args.results]
    pairs = [
        {"run": label, **pair}
        for label, path in zip(labels, args.results, strict=True)
        for pair in end_points(json.loads(path.read_text()).get("results") or {})
    ]
    if not pairs:
        parser.error("no SFT -> SFT + RL pairs in these results")
    kinds = {pair["kind"] for pair in pairs}
    rows = [{"kind": kind} | summary([pair for pair in pairs if pair["kind"] == kind]) for kind in sorted(kinds)]
    report(
        ["kind", "pairs", "slope", "sft_mean", "sft_sd", "rl_mean", "rl_sd", "mean_gain"],
        rows,
        args.out,
        command="python -m bench.rl_end_points "
        + " ".join(str(path) for path in args.results)
        + (f" --label {' '.join(args.label)}" if args.label else ""),
        pairs=pairs,
        wall_s=round(time.perf_counter() - started, 2),
    )
    if args.plot is not None:
        end_points_png(pairs, args.plot)


if __name__ == "__main__":
    run_main(main)
