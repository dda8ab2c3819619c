"""How much more does SFT -> RL plan right than SFT alone, when each was run several times?

Usage: python -m bench.pipeline_gain --sft LABEL EVAL [--sft ...] --rl LABEL EVAL [--rl ...] [--out FILE]

Each ``--sft`` / ``--rl`` is one run's open-loop `eval`; LABEL groups the runs of one configuration (a model seed,
say) whose two arms are compared. A group's gain is the mean accuracy of its RL runs minus the mean of its SFT runs,
each run counted once whichever SFT run an RL run started from. Its 95% interval comes from a two-level bootstrap
that resamples the test frames (once for every run: all must have scored the same frames) and, within each arm,
the runs themselves, so it covers both which frames were drawn and how far a repeat of either command lands from
the last (an arm of one run adds no run-to-run spread, and the table marks it; with few runs the bootstrap also
understates that spread, by (n-1)/n in variance). The pooled row is the mean over groups, resampled the same way.
Beside it, each class's F1 averaged over each arm's runs, and the classes whose RL mean falls more than 0.05 below
the SFT mean (#19's bar, between the two commands rather than between two draws), and a permutation p-value that
the RL runs land closer together than the SFT runs (`spread_p_value`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alphadrive_cli.evaluation.paired import plan_outcomes, same_frames
from bench.entry import run_main
from bench.pooled_gain import interval_text
from bench.report import report

Outcomes = Mapping[str, bool]  # whether each frame's plan was right, by frame id
CLASS_MARGIN = 0.05  # #19: no class's F1 more than this below its SFT value


def outcome_matrix(runs: Sequence[Outcomes], reference: Outcomes) -> np.ndarray:
    """One row per run, one column per frame of ``reference`` (sorted): 1.0 where the plan was right."""
    frames = sorted(reference)
    for run in runs:
        same_frames(reference, run)
    return np.array([[float(run[frame]) for frame in frames] for run in runs])


def pipeline_gain(
    groups: Mapping[str, tuple[Sequence[Outcomes], Sequence[Outcomes]]], resamples: int = 4000, seed: int = 0
) -> dict[str, dict[str, float | int]]:
    """For each group's (SFT runs, RL runs), and pooled over the groups as ``"pooled"``: the RL runs' mean accuracy
    minus the SFT runs' mean, with a 95% percentile interval that resamples frames and, per arm, runs."""
    if not groups:
        raise ValueError("no groups to compare")
    for label, (sft_runs, rl_runs) in groups.items():
        if not sft_runs or not rl_runs:
            raise ValueError(f"group {label!r} needs at least one SFT and one RL run")
    reference = next(iter(groups.values()))[0][0]
    generator = np.random.default_rng(seed)
    frame_draws = generator.integers(0, len(reference), size=(resamples, len(reference)))
    results: dict[str, dict[str, float | int]] = {}
    gains: list[float] = []
    pooled_draws = np.zeros(resamples)
    for label, (sft_runs, rl_runs) in groups.items():
        arms = [outcome_matrix(sft_runs, reference), outcome_matrix(rl_runs, reference)]
        arm_means = []
        for arm in arms:
            # accuracy of every run on every frame draw, then each draw's resampled runs averaged
            accuracies = np.stack([arm[:, draw].mean(axis=1) for draw in frame_draws])
            run_draws = generator.integers(0, len(arm), size=(resamples, len(arm)))
            arm_means.append(np.take_along_axis(accuracies, run_draws, axis=1).mean(axis=1))
        draws = arm_means[1] - arm_means[0]
        pooled_draws += draws / len(groups)
        low, high = np.percentile(draws, [2.5, 97.5])
        gains.append(float(arms[1].mean() - arms[0].mean()))
        results[label] = {
            "gain": round(gains[-1], 4),
            "low": round(float(low), 4),
            "high": round(float(high), 4),
            "sft_runs": len(arms[0]),
            "rl_runs": len(arms[1]),
        }
    low, high = np.percentile(pooled_draws, [2.5, 97.5])
    results["pooled"] = {
        "gain": round(float(np.mean(gains)), 4),
        "low": round(float(low), 4),
        "high": round(float(high), 4),
        "groups": len(groups),
    }
    return results


def run_accuracies(runs: Sequence[Outcomes]) -> list[float]:
    """Each run's share of frames planned right."""
    return [float(np.mean(list(run.values()))) for run in runs]


def arm_summary(runs: Sequence[Outcomes]) -> str:
    """Mean accuracy of ``runs``, their range and standard deviation, e.g. ``0.750 (0.698–0.799, sd 0.031)``; one
    run says that its interval resamples frames only."""
    accuracies = run_accuracies(runs)
    if len(accuracies) == 1:
        return f"{accuracies[0]:.3f} (one run: frames resampled only)"
    spread = float(np.std(accuracies, ddof=1))
    return f"{np.mean(accuracies):.3f} ({min(accuracies):.3f}–{max(accuracies):.3f}, sd {spread:.3f})"


def spread_p_value(sft: Sequence[float], rl: Sequence[float], limit: int = 20_000, seed: int = 0) -> float | None:
    """How often a split of the runs' accuracies, each centred on its arm's mean, gives the RL-sized part a spread
    as far below the rest's as the RL runs' (variance ratio at least the observed one): a one-sided permutation
    p-value that RL's repeats land closer together than SFT's. Every split where there are at most ``limit``,
    else ``limit`` random ones; None where either arm has fewer than two runs or RL's runs agree exactly."""
    if len(sft) < 2 or len(rl) < 2 or np.var(rl) == 0:
        return None
    residuals = np.array([*(value - np.mean(sft) for value in sft), *(value - np.mean(rl) for value in rl)])
    observed = np.var(sft, ddof=1) / np.var(rl, ddof=1)
    count = len(residuals)
    if math.comb(count, len(rl)) <= limit:
        splits = [list(chosen) for chosen in itertools.combinations(range(count), len(rl))]
    else:
        generator = np.random.default_rng(seed)
        splits = [list(generator.choice(count, len(rl), replace=False)) for _ in range(limit)]
    ratios = []
    for chosen in splits:
        rest = np.delete(residuals, chosen)
        small = np.var(residuals[chosen], ddof=1)
        ratios.append(np.inf if small == 0 else np.var(rest, ddof=1) / small)
    return round(float(np.mean(np.array(ratios) >= observed * (1 - 1e-9))), 4)


def mean_class_f1(evaluations: Sequence[Path]) -> dict[str, float]:
    """Each speed and path class's F1, averaged over ``evaluations`` (their metrics.json)."""
    per_run = []
    for evaluation in evaluations:
        metrics = json.loads((evaluation / "metrics.json").read_text())
        per_run.append(
            {name: prf["f1"] for head in ("speed", "path") for name, prf in metrics[head]["per_class"].items()}
        )
    return {name: round(float(np.mean([run[name] for run in per_run])), 3) for name in per_run[0]}


def classes_below(sft: Mapping[str, float], rl: Mapping[str, float], margin: float = CLASS_MARGIN) -> str:
    """The classes whose mean F1 under RL is more than ``margin`` below SFT's, e.g. ``ACCELERATE 0.415 → 0.280``."""
    below = [f"{name} {sft[name]:.3f} → {rl[name]:.3f}" for name in sft if rl[name] < sft[name] - margin]
    return ", ".join(below) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for arm in ("sft", "rl"):
        parser.add_argument(
            f"--{arm}",
            nargs=2,
            action="append",
            required=True,
            metavar=("LABEL", "EVAL"),
            help=f"one {arm.upper()} run's eval, under its group's label (all runs on the same frames)",
        )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    folders: dict[str, tuple[list[Path], list[Path]]] = {}
    for arm_index, arm in enumerate((args.sft, args.rl)):
        for label, evaluation in arm:
            folders.setdefault(label, ([], []))[arm_index].append(Path(evaluation))
    groups = {label: tuple([plan_outcomes(path) for path in arm] for arm in arms) for label, arms in folders.items()}
    results = pipeline_gain(groups)
    class_f1 = {label: tuple(map(mean_class_f1, arms)) for label, arms in folders.items()}
    rows: list[dict[str, Any]] = [
        {
            "group": label,
            "sft runs": len(sft_runs),
            "sft accuracy": arm_summary(sft_runs),
            "rl runs": len(rl_runs),
            "rl accuracy": arm_summary(rl_runs),
            "gain [95% CI]": interval_text(results[label]["gain"], results[label]["low"], results[label]["high"]),
            "classes below SFT (mean F1)": classes_below(*class_f1[label]),
            "RL repeats closer than SFT's, p": spread_p_value(*(run_accuracies(runs) for runs in (sft_runs, rl_runs))),
        }
        for label, (sft_runs, rl_runs) in groups.items()
    ]
    pooled = results["pooled"]
    rows.append(
        {
            "group": f"pooled over {pooled['groups']} groups",
            "gain [95% CI]": interval_text(pooled["gain"], pooled["low"], pooled["high"]),
        }
    )
    report(
        [
            "group",
            "sft runs",
            "sft accuracy",
            "rl runs",
            "rl accuracy",
            "gain [95% CI]",
            "classes below SFT (mean F1)",
            "RL repeats closer than SFT's, p",
        ],
        rows,
        args.out,
        command="python -m bench.pipeline_gain "
        + " ".join(f"--{arm} {' '.join(map(shlex.quote, run))}" for arm in ("sft", "rl") for run in getattr(args, arm)),
        groups=results,
        class_f1={label: {"sft": sft, "rl": rl} for label, (sft, rl) in class_f1.items()},
        wall_s=round(time.perf_counter() - started, 2),
    )


if __name__ == "__main__":
    run_main(main)
