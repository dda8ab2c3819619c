"""Where does RL gain or lose? Many SFT -> SFT + RL runs' gains, pooled scenario by scenario.

Usage: python -m bench.gain_by_scenario DATA --pair LABEL SFT_EVAL RL_EVAL [--pair ...] [--by-episode] [--out FILE]

DATA is the simulator data set the evals scored (`data sim`; only its records are read, not its images), which
names each frame's scenario. Each ``--pair`` is one RL run's open-loop `eval` and its SFT start's, on the same
frames. Per scenario (and over all frames): its frames, SFT's and RL's mean accuracy over the runs, the gain pooled
over the runs with a bootstrap 95% interval over that scenario's frames (`bench/pooled_gain.py`; over its
episodes where the evals' predictions name them, or DATA's with ``--by-episode``), and how many runs gained and
lost there. A gain that every run shows on one scenario is a property of the method on that traffic, not of one
run; evals of predictions that do not name scenarios are placed by DATA's records.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np

from alphadrive_cli.evaluation.metrics import UNNAMED_SCENARIO, frame_scenario
from alphadrive_cli.evaluation.paired import plan_outcomes
from bench.entry import run_main
from bench.pooled_gain import Outcomes, add_pair_option, episodes_for, interval_text, pooled_gain
from bench.reasoning_facts import split_records
from bench.report import report

ALL_FRAMES = "all frames"


def scenarios_of(data: Path) -> dict[str, str]:
    """Each frame's simulator scenario, by frame id, over every split of ``data``."""
    return {
        frame: frame_scenario(record.get("source") or {}) or UNNAMED_SCENARIO
        for split in ("train", "val", "test")
        for frame, record in split_records(data, split).items()
    }


def scenario_rows(
    pairs: list[tuple[Outcomes, Outcomes]], scenarios: dict[str, str], episodes: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """One row per scenario of the pairs' frames, then one over all of them: frames, mean SFT and RL accuracy, the
    pooled gain with its interval (over ``episodes`` where given, else over frames), and the runs that gained and
    lost there."""
    frames = sorted(pairs[0][0])
    groups = {ALL_FRAMES: frames} | {
        name: [frame for frame in frames if scenarios[frame] == name]
        for name in sorted({scenarios[frame] for frame in frames})
    }
    rows = []
    for name, members in groups.items():
        subset = [({f: start[f] for f in members}, {f: run[f] for f in members}) for start, run in pairs]
        differences = [
            np.mean([run[f] for f in members]) - np.mean([start[f] for f in members]) for start, run in subset
        ]
        pooled = pooled_gain(subset, episodes=episodes)
        rows.append(
            {
                "scenario": name,
                "frames": len(members),
                "sft accuracy": round(float(np.mean([np.mean(list(start.values())) for start, _ in subset])), 4),
                "rl accuracy": round(float(np.mean([np.mean(list(run.values())) for _, run in subset])), 4),
                "gain, runs pooled [95% CI]": interval_text(pooled["gain"], pooled["low"], pooled["high"]),
                "runs gaining / losing": f"{sum(d > 0 for d in differences)} / {sum(d < 0 for d in differences)}",
                "pooled": pooled,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the data set the evals scored (`data sim`)")
    add_pair_option(parser)
    parser.add_argument(
        "--by-episode",
        action="store_true",
        help="resample the simulator episodes DATA's records name (a cluster bootstrap), for evals whose "
        "predictions do not name them",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    pairs = [(plan_outcomes(Path(sft)), plan_outcomes(Path(rl))) for _, sft, rl in args.pair]
    if any(sorted(start) != sorted(pairs[0][0]) or sorted(run) != sorted(start) for start, run in pairs):
        parser.error("every eval must have scored the same frames")
    scenarios = scenarios_of(args.data)
    if missing := sorted(set(pairs[0][0]) - set(scenarios)):
        parser.error(f"{len(missing)} scored frames are not in {args.data} (the first: {missing[0]})")
    episodes = episodes_for(args.data if args.by_episode else None, Path(args.pair[0][1]))
    report(
        ["scenario", "frames", "sft accuracy", "rl accuracy", "gain, runs pooled [95% CI]", "runs gaining / losing"],
        scenario_rows(pairs, scenarios, episodes),
        args.out,
        command=f"python -m bench.gain_by_scenario {args.data} "
        + " ".join(f"--pair {' '.join(map(shlex.quote, pair))}" for pair in args.pair)
        + (" --by-episode" if args.by_episode else ""),
        resampled="frames" if episodes is None else "episodes",
        run_labels=[label for label, _, _ in args.pair],
        wall_s=round(time.perf_counter() - started, 2),
    )


if __name__ == "__main__":
    run_main(main)
