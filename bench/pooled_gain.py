"""How much does RL gain over the SFT model it starts from, over several runs at once?

Usage: python -m bench.pooled_gain --pair LABEL SFT_EVAL RL_EVAL [--pair ...] [--group NAME] [--out FILE]

Each ``--pair`` is one RL run's open-loop `eval` and the `eval` of the SFT model it started from, on the same
frames. Every pair's gain comes with its paired bootstrap 95% interval (as `eval compare` gives it); the pooled
gain is the mean of the pairs' gains, with a bootstrap that resamples the test frames, once for all pairs that
scored the same frames (runs of several seeds on one data set share their frames, so their errors move
together) and independently across data sets. The interval covers which test frames were drawn, given these
runs: how much the runs themselves vary with the seed shows in the spread of the pairs' gains beside it.

Frames of one simulator episode are about one stretch of traffic and are right or wrong together, so a bootstrap
over frames treats as independent what is not. Where the first SFT eval's predictions name each frame's episode
(`eval` writes it since 2026-12-07), whole episodes are resampled instead, as `eval compare` does; ``--episodes
DATA`` does so for older evals (each scored frame's ``source.episode`` in DATA's records). A frame without an
episode is its own. This cluster bootstrap widens every interval by as much as the episodes' frames move together.
"""

from __future__ import annotations

import argparse
import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alphadrive_cli.evaluation.metrics import frame_episode, resampled_means, resampling_units
from alphadrive_cli.evaluation.paired import frame_episodes, gain_over, plan_outcomes
from bench.entry import run_main
from bench.reasoning_facts import split_records
from bench.report import report

Outcomes = Mapping[str, bool]  # whether each frame's plan was right, by frame id


def pooled_gain(
    pairs: Sequence[tuple[Outcomes, Outcomes]],
    resamples: int = 2000,
    seed: int = 0,
    episodes: Mapping[str, str] | None = None,
) -> dict[str, float | int]:
    """The mean over ``pairs`` of (run accuracy - start accuracy), with a 95% percentile bootstrap interval that
    resamples frames jointly for pairs scored on the same frames; with ``episodes`` (each frame's episode, by
    frame id) it resamples whole episodes instead, a frame missing from it being its own episode."""
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
        units = resampling_units(None if episodes is None else [episodes.get(frame) for frame in frames], len(frames))
        means[:, members] = resampled_means([differences[index] for index in members], units, resamples, generator)
    low, high = np.percentile(means.mean(axis=1), [2.5, 97.5])
    return {
        "gain": round(float(np.mean([difference.mean() for difference in differences])), 4),
        "low": round(float(low), 4),
        "high": round(float(high), 4),
        "pairs": len(pairs),
        "frame_sets": len(groups),
    }


def episodes_for(data: Path | None, first_eval: Path) -> dict[str, str] | None:
    """The episodes to resample: DATA's records' where given, else those the first eval's predictions name; None
    (resample frames) where neither names any."""
    return (episodes_of(data) if data is not None else frame_episodes(first_eval)) or None


def episodes_of(data: Path) -> dict[str, str]:
    """Each frame's simulator episode, by frame id, over every split of ``data`` (frames without one left out)."""
    return {
        frame: episode
        for split in ("train", "val", "test")
        for frame, record in split_records(data, split).items()
        if (episode := frame_episode(record.get("source") or {})) is not None
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
    parser.add_argument(
        "--episodes",
        type=Path,
        metavar="DATA",
        help="resample the simulator episodes DATA's records name, for evals whose predictions do not name them",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    outcomes = [(plan_outcomes(Path(sft)), plan_outcomes(Path(rl))) for _, sft, rl in args.pair]
    episodes = episodes_for(args.episodes, Path(args.pair[0][1]))
    rows: list[dict[str, Any]] = []
    for (label, sft, rl), (start, run) in zip(args.pair, outcomes, strict=True):
        gain = gain_over(start, run, episodes)
        rows.append(
            {
                "run": label,
                "sft_eval": Path(sft).name,
                "rl_eval": Path(rl).name,
                "frames": len(start),
                "sft accuracy": round(float(np.mean(list(start.values()))), 4),
                "rl accuracy": round(float(np.mean(list(run.values()))), 4),
                "gain [95% CI]": interval_text(gain["difference"], gain["low"], gain["high"]),
            }
        )
    pooled = pooled_gain(outcomes, episodes=episodes)
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
        + ("" if args.episodes is None else f"--episodes {shlex.quote(str(args.episodes))} ")
        + " ".join(f"--pair {' '.join(map(shlex.quote, pair))}" for pair in args.pair),
        resampled="episodes" if episodes is not None else "frames",
        pooled=pooled,
        wall_s=round(time.perf_counter() - started, 2),
    )


if __name__ == "__main__":
    run_main(main)
