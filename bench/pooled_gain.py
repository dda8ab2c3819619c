"""How much does RL gain over the SFT model it starts from, over several runs at once?

Usage: python -m bench.pooled_gain --pair LABEL SFT_EVAL RL_EVAL [--pair ...] [--group NAME] [--out FILE]

Each ``--pair`` is one RL run's open-loop `eval` and the `eval` of the SFT model it started from, on the same
frames. Every pair's gain comes with its paired bootstrap 95% interval (as `eval compare` gives it); the pooled
gain is the mean of the pairs' gains, with a bootstrap that resamples the test frames, once for all pairs that
scored the same frames (runs of several seeds on one data set share their frames, so their errors move
together) and independently across data sets. The interval covers which test frames were drawn, given these
runs: how much the runs themselves vary with the seed shows in the spread of the pairs' gains beside it.
"""

from __future__ import annotations

import argparse
import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alphadrive_cli.evaluation.paired import gain_over, plan_outcomes
from bench.entry import run_main
from bench.report import report

Outcomes = Mapping[str, bool]  # whether each frame's plan was right, by frame id


def pooled_gain(
    pairs: Sequence[tuple[Outcomes, Outcomes]], resamples: int = 2000, seed: int = 0
) -> dict[str, float | int]:
    """The mean over ``pairs`` of (run accuracy - start accuracy), with a 95% percentile bootstrap interval that
    resamples frames jointly for pairs scored on the same frames."""
    if not pairs:
        raise ValueError("no pairs to pool")
    groups: dict[tuple[str, ...], list[int]] = {}
    differences = []
    for index, (start, run) in enumerate(pairs):
        frames = tuple(sorted(start))
        if tuple(sorted(run)) != frames:
            raise ValueError(f"pair {index + 1}: the two evaluations scored different frames")
        groups.setdefault(frames, []).append(index)
        differences.append(np.array([float(run[frame]) - float(start[frame]) for frame in frames]))
    generator = np.random.default_rng(seed)
    means = np.empty((resamples, len(pairs)))
    for frames, members in groups.items():
        draws = generator.integers(0, len(frames), size=(resamples, len(frames)))
        for index in members:
            means[:, index] = differences[index][draws].mean(axis=1)
    low, high = np.percentile(means.mean(axis=1), [2.5, 97.5])
    return {
        "gain": round(float(np.mean([difference.mean() for difference in differences])), 4),
        "low": round(float(low), 4),
        "high": round(float(high), 4),
        "pairs": len(pairs),
        "frame_sets": len(groups),
    }


def interval_text(value: float, low: float, high: float) -> str:
    """A signed gain with its interval, e.g. ``+0.044 [+0.024, +0.066]``."""
    return f"{value:+.3f} [{low:+.3f}, {high:+.3f}]"


def add_pair_option(parser: argparse.ArgumentParser) -> None:
    """``--pair LABEL SFT_EVAL RL_EVAL`` (repeatable, at least one): one RL run and its SFT start's eval."""
    parser.add_argument(
        "--pair",
        nargs=3,
        action="append",
        required=True,
        metavar=("LABEL", "SFT_EVAL", "RL_EVAL"),
        help="one RL run: a label, the eval of its SFT start and its own eval (same frames)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_pair_option(parser)
    parser.add_argument("--group", default="pooled", help="the pooled row's label")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    outcomes = [(plan_outcomes(Path(sft)), plan_outcomes(Path(rl))) for _, sft, rl in args.pair]
    rows: list[dict[str, Any]] = []
    for (label, sft, rl), (start, run) in zip(args.pair, outcomes, strict=True):
        gain = gain_over(start, run)
        rows.append(
            {
                "run": label,
                "sft_eval": Path(sft).name,
                "rl_eval": Path(rl).name,
                "frames": gain["frames"],
                "sft accuracy": round(float(np.mean(list(start.values()))), 4),
                "rl accuracy": round(float(np.mean(list(run.values()))), 4),
                "gain [95% CI]": interval_text(gain["difference"], gain["low"], gain["high"]),
            }
        )
    pooled = pooled_gain(outcomes)
    rows.append(
        {
            "run": f"{args.group}: mean of {pooled['pairs']} runs on {pooled['frame_sets']} frame sets",
            "gain [95% CI]": interval_text(pooled["gain"], pooled["low"], pooled["high"]),
        }
    )
    report(
        ["run", "frames", "sft accuracy", "rl accuracy", "gain [95% CI]"],
        rows,
        args.out,
        command=f"python -m bench.pooled_gain --group {shlex.quote(args.group)} "
        + " ".join(f"--pair {' '.join(map(shlex.quote, pair))}" for pair in args.pair),
        pooled=pooled,
        wall_s=round(time.perf_counter() - started, 2),
    )


if __name__ == "__main__":
    run_main(main)
