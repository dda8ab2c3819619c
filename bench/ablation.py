"""The paper's ablation on simulator data: SFT without / with reasoning, RL only, SFT + RL.

Usage: python bench/ablation.py --frames 2000 --seeds 0 1 --out docs/bench/ablation_cpu.json
       [--dimensions configs/models/small-qwen2-vl.json] [--sft-epochs 3] [--grpo-steps 40] [--episodes 2]

Runs the real CLI stage by stage, as a user would: one simulator data set and its grounded traces,
then per seed a model trained from scratch (random weights of the dimensions given) in four rows:
1. `sft --no-reasoning` (answers only), 2. `sft` on the traces, 3. `grpo` from the untrained model
(RL only), 4. `grpo` from row 2 (the AlphaDrive recipe). Every row is scored open loop on the test
split and closed loop (`eval --closed-loop`, all scenarios, the same seeds for every row); the expert's
closed-loop row comes with each. Prints a Markdown table; --out writes every number as JSON.
Artifact paths in the output are relative to --root. Rows 1-2 train every weight for --sft-epochs; rows 3-4 add --grpo-steps GRPO steps (row 4 therefore
has more compute than row 2: its SFT plus the RL steps; the table states each row's wall time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from report import report  # bench/report.py

ROWS = ("sft_no_reasoning", "sft_reasoning", "rl_only", "sft_rl")
ROW_TITLES = {"sft_no_reasoning": "SFT, no reasoning", "sft_reasoning": "SFT with reasoning",
              "rl_only": "RL only", "sft_rl": "SFT + RL (AlphaDrive)"}


def alphadrive(root: Path, *args: str) -> Path:
    """Run one CLI command with its artifacts under ``root``; the artifact path it printed."""
    command = [sys.executable, "-m", "alphadrive_cli.cli", *args, "--out-root", str(root)]
    print("$ alphadrive " + " ".join(args), file=sys.stderr, flush=True)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"alphadrive {args[0]} failed with exit code {done.returncode}")
    return Path(done.stdout.strip())


def timed(root: Path, *args: str) -> tuple[Path, float]:
    started = time.perf_counter()
    path = alphadrive(root, *args)
    return path, time.perf_counter() - started


def scores(root: Path, model: Path, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Open-loop metrics on the test split and closed-loop metrics (model and expert) of one trained model."""
    opened = alphadrive(root, "eval", "--model", str(model), "--data", str(data), "--scale", args.scale)
    metrics = json.loads((opened / "metrics.json").read_text())
    closed = alphadrive(root, "eval", "--closed-loop", "--model", str(model), "--data", str(data), "--scale", args.scale,
                        "--episodes", str(args.episodes), "--set", f"closed_loop.seconds={args.seconds}")
    drivers = json.loads((closed / "closed_loop.json").read_text())["drivers"]
    return {"planning_accuracy": metrics["planning_accuracy"], "format_valid_rate": metrics["format_valid_rate"],
            "speed_macro_f1": metrics["speed"]["macro_f1"], "path_macro_f1": metrics["path"]["macro_f1"],
            "speed_f1": {a: v["f1"] for a, v in metrics["speed"]["per_class"].items()},
            "path_f1": {a: v["f1"] for a, v in metrics["path"]["per_class"].items()},
            "closed_loop": drivers["model"]["overall"], "expert_closed_loop": drivers["expert"]["overall"],
            "eval_artifacts": [str(opened.relative_to(root)), str(closed.relative_to(root))]}


def run_seed(root: Path, data: Path, traces: Path, seed: int, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The four rows for one seed (model initialisation and training order); each row's scores are also
    appended to ``<root>/rows.jsonl`` as soon as they exist, so a run cut short keeps what it finished."""
    dims = ["--dimensions", str(args.dimensions)] if args.dimensions else []
    model = alphadrive(root, "models", "tiny", "--seed", str(seed), *dims, "--name", f"scratch-s{seed}")
    sft = ["--scale", args.scale, "--set", f"epochs={args.sft_epochs}", "--set", f"seed={seed}"]
    grpo = ["--scale", args.scale, "--set", f"max_steps={args.grpo_steps}", "--set", f"seed={seed}"]
    trained: dict[str, tuple[Path, float]] = {}
    trained["sft_no_reasoning"] = timed(root, "sft", "--data", str(data), "--model", str(model), "--no-reasoning", *sft,
                                        "--name", f"sft-noreason-s{seed}")
    trained["sft_reasoning"] = timed(root, "sft", "--data", str(traces), "--model", str(model), *sft,
                                     "--name", f"sft-reason-s{seed}")
    trained["rl_only"] = timed(root, "grpo", "--data", str(data), "--init", str(model), *grpo, "--name", f"rl-only-s{seed}")
    policy, seconds = timed(root, "grpo", "--data", str(data), "--init", str(trained["sft_reasoning"][0]), *grpo,
                            "--name", f"sft-rl-s{seed}")
    trained["sft_rl"] = (policy, seconds + trained["sft_reasoning"][1])
    rows = {}
    for row, (path, wall) in trained.items():
        rows[row] = {"train_wall_s": round(wall, 1), "artifact": str(path.relative_to(root)), **scores(root, path, data, args)}
        with (root / "rows.jsonl").open("a") as handle:
            handle.write(json.dumps({"seed": seed, "row": row, **rows[row]}) + "\n")
    return rows


def summary_rows(results: dict[int, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One table row per configuration: the mean over seeds, with the spread (min-max) where there are several."""
    rows = []
    for row in ROWS:
        runs = [results[seed][row] for seed in sorted(results)]

        def cell(get: Any, fmt: str = "{:.3f}") -> str:
            values = [get(run) for run in runs]
            text = fmt.format(statistics.fmean(values))
            return text + (f" ({fmt.format(min(values))}–{fmt.format(max(values))})" if len(values) > 1 else "")

        rows.append({"configuration": ROW_TITLES[row], "seeds": len(runs),
                     "planning accuracy": cell(lambda r: r["planning_accuracy"]),
                     "speed macro F1": cell(lambda r: r["speed_macro_f1"]),
                     "path macro F1": cell(lambda r: r["path_macro_f1"]),
                     "format valid": cell(lambda r: r["format_valid_rate"]),
                     "collisions": cell(lambda r: r["closed_loop"]["collision_rate"], "{:.2f}"),
                     "route completion": cell(lambda r: r["closed_loop"]["route_completion_rate"], "{:.2f}"),
                     "speed m/s": cell(lambda r: r["closed_loop"]["mean_speed_mps"], "{:.1f}"),
                     "unparsed plans": cell(lambda r: r["closed_loop"]["parse_failure_rate"], "{:.2f}"),
                     "train s": cell(lambda r: r["train_wall_s"], "{:.0f}")})
    expert = next(iter(results.values()))["sft_rl"]["expert_closed_loop"]
    rows.append({"configuration": "expert driver (labels)", "seeds": "–", "planning accuracy": "–", "speed macro F1": "–",
                 "path macro F1": "–", "format valid": "–", "collisions": f"{expert['collision_rate']:.2f}",
                 "route completion": f"{expert['route_completion_rate']:.2f}", "speed m/s": f"{expert['mean_speed_mps']:.1f}",
                 "unparsed plans": "–", "train s": "–"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("runs/ablation"), help="artifact root")
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dimensions", type=Path, default=None, help="model dimensions JSON [default: the tiny model]")
    parser.add_argument("--scale", default="tiny", help="scale preset of the training stages")
    parser.add_argument("--sft-epochs", type=float, default=3)
    parser.add_argument("--grpo-steps", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--episodes", type=int, default=2, help="closed-loop episodes per scenario")
    parser.add_argument("--seconds", type=float, default=15, help="closed-loop seconds per episode")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    data = alphadrive(args.root, "data", "sim", "--frames", str(args.frames), "--seed", "0", "--workers", str(args.workers))
    traces = alphadrive(args.root, "distill", "--data", str(data), "--teacher", "grounded")
    results = {seed: run_seed(args.root, data, traces, seed, args) for seed in args.seeds}
    columns = ("configuration", "seeds", "planning accuracy", "speed macro F1", "path macro F1", "format valid",
               "collisions", "route completion", "speed m/s", "unparsed plans", "train s")
    print(f"data: {args.frames} simulator frames (seed 0), grounded traces; model: {args.dimensions or 'tiny'} "
          f"from random weights; scale preset {args.scale}; SFT {args.sft_epochs} epochs, GRPO {args.grpo_steps} steps; "
          f"closed loop: 5 scenarios x {args.episodes} seeds x {args.seconds} s; seeds {args.seeds}")
    report(columns, summary_rows(results), args.out, frames=args.frames, dimensions=str(args.dimensions or "tiny"),
           scale=args.scale, sft_epochs=args.sft_epochs, grpo_steps=args.grpo_steps, seeds=args.seeds,
           episodes=args.episodes, seconds=args.seconds, results={str(seed): rows for seed, rows in results.items()})


if __name__ == "__main__":
    main()
