"""What each GRPO run did while it trained: one entry per rollout and the mean of each quarter of the run.

Usage: python -m bench.rl_curves GRPO_ARTIFACT [...] [--out FILE]

Reads each run's `log_history.json` and manifest. With `generation_batch_size` above the optimiser batch, one rollout
feeds several optimiser steps, and only the first step of each rollout logs its rewards; those entries are kept.
The table gives each quarter's mean sampled speed accuracy on the train frames and the share of groups whose samples
all earned the same reward (no learning signal), the two numbers that say whether RL moved the policy, and where the
time went: the first step (compilation and the first rollout), a rollout step (generation, scoring and one
optimiser step), an optimiser step between rollouts, and the time between steps (checkpoints, logging).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.common import device_facts
from bench.entry import run_main
from bench.report import report

LOGGED = (
    "step",
    "reward",
    "reward_std",
    "frac_reward_zero_std",
    "kl",
    "completions/mean_length",
    "rewards/format/mean",
    "rewards/speed_planning/mean",
    "rewards/path_planning/mean",
    "planning/speed_accuracy/mean",
    "planning/path_accuracy/mean",
    "train_elapsed_s",
)
QUARTERS = 4


def rollout_entries(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The log entries that carry a rollout's rewards (the first optimiser step of each), cut to ``LOGGED``'s keys."""
    return [{key: entry[key] for key in LOGGED if key in entry} for entry in history if "reward" in entry]


def quarter_means(entries: list[dict[str, Any]], key: str, steps: int) -> list[float | None]:
    """Mean of ``key`` over the rollouts in each quarter of a run of ``steps`` optimiser steps."""
    quarters: list[list[float]] = [[] for _ in range(QUARTERS)]
    for entry in entries:
        if key in entry:
            quarters[min(QUARTERS - 1, (entry["step"] - 1) * QUARTERS // steps)].append(entry[key])
    return [round(sum(values) / len(values), 3) if values else None for values in quarters]


def training_signal(history: list[dict[str, Any]], steps: int) -> dict[str, list[float | None]]:
    """Per quarter of a run of ``steps`` optimiser steps: the sampled speed and path accuracy on the train frames and
    the share of groups whose samples all earned the same reward (flat groups: no learning signal)."""
    log = rollout_entries(history)
    return {
        "speed_accuracy_by_quarter": quarter_means(log, "planning/speed_accuracy/mean", steps),
        "path_accuracy_by_quarter": quarter_means(log, "planning/path_accuracy/mean", steps),
        "zero_std_by_quarter": quarter_means(log, "frac_reward_zero_std", steps),
    }


def step_times(history: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds of the first step, of the mean later rollout step and optimiser step, and outside every step (the
    last step's elapsed training time less the sum of the steps' own times)."""
    steps = [entry for entry in history if "step_time" in entry]
    rollouts = [entry["step_time"] for entry in steps[1:] if "reward" in entry]
    between = [entry["step_time"] for entry in steps[1:] if "reward" not in entry]
    return {
        "first_step_s": round(steps[0]["step_time"], 2),
        "rollout_step_s": round(sum(rollouts) / len(rollouts), 2) if rollouts else 0.0,
        "optimiser_step_s": round(sum(between) / len(between), 3) if between else 0.0,
        "outside_steps_s": round(steps[-1]["train_elapsed_s"] - sum(entry["step_time"] for entry in steps), 1),
    }


def run_curves(artifact: Path) -> dict[str, Any]:
    """One GRPO artifact's metrics, rollout entries and quarter means."""
    metrics = json.loads((artifact / "manifest.json").read_text())["metrics"]
    history = json.loads((artifact / "log_history.json").read_text())
    return {
        "metrics": metrics,
        "step_times": step_times(history),
        **training_signal(history, metrics["steps"]),
        "log": rollout_entries(history),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="grpo artifacts")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    runs = {str(path): run_curves(path) for path in args.runs}
    rows = [
        {
            "run": name,
            "steps": run["metrics"]["steps"],
            "reward first → last": f"{run['metrics']['first_reward']:.3f} → {run['metrics']['final_reward']:.3f}",
            "sampled speed accuracy by quarter": " / ".join(f"{value}" for value in run["speed_accuracy_by_quarter"]),
            "groups without reward spread by quarter": " / ".join(f"{value}" for value in run["zero_std_by_quarter"]),
            "samples/s": round(run["metrics"]["train_samples_per_second"], 1),
            "s: first step / rollout step / optimiser step / outside steps": " / ".join(
                str(value) for value in run["step_times"].values()
            ),
            "peak GPU GB": run["metrics"].get("peak_memory_gb", "–"),
        }
        for name, run in runs.items()
    ]
    report(
        list(rows[0]),
        rows,
        args.out,
        **device_facts(),
        command="python -m bench.rl_curves " + " ".join(sys.argv[1:]),
        curves=runs,
    )


if __name__ == "__main__":
    run_main(main)
