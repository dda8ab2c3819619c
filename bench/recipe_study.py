"""#19's recipe study: GRPO settings after one SFT (with reasoning by default), compared on the validation split only.

Usage: python -m bench.recipe_study --root runs/study --frames 4000 --workers 15 --jobs 8 --budget-s 900 \
           --out docs/bench/recipe_study.json --plot docs/bench/recipe_study_curves.png [--configs lr5e-6 ...]

One `data sim` data set (--data-seed, front camera at 224 px, --data-set's settings) and its grounded traces, the
small Qwen2-VL from random weights (or with --language a pretrained language model behind a random vision tower of
that size: `models build`; seeded by --seed, as are the SFT and every GRPO run), `sft --scale small` on the traces
(with --sft-set's settings; with --no-reasoning their answers only, and every GRPO run in the answer-only format),
then every configuration of CONFIGS as a `grpo --scale small` run from that SFT model for --rl-epochs passes over
the train split, validated every --every steps on --val-frames frames of the validation split (greedy plans). Each
run, and the SFT model, is then scored by `eval --split val` on the whole split, and each run's gain over the SFT
model comes with a paired bootstrap 95 % interval (the same frames), as does its difference from the --reference
configuration (REFERENCE unless given); each run's row also names the classes whose validation F1 fell more than
0.05 below the SFT model's (#19's per-class bar, bench/ablation.py's F1_DROP), how many validation frames' greedy
answers changed from the SFT model's (per head, and how many plans became right or wrong), and per quarter of its
training the sampled accuracy on the train frames and the share of groups without reward spread
(bench/rl_curves.py): whether RL moved the policy at all. The test split is not touched: the winner is scored there
once, by bench/ablation.py.
Jobs run through bench/ablation.py's runner (a dependency graph, --jobs at a time, resumable under the same --root,
stopped at --budget-s).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from alphadrive_cli.artifacts.store import partial_dir  # noqa: E402
from alphadrive_cli.evaluation.paired import answers_changed, eval_gain  # noqa: E402
from alphadrive_cli.training.plots import curve  # noqa: E402
from bench.ablation import (  # noqa: E402
    REWARD_ABLATIONS,
    Job,
    data_jobs,
    data_mismatch,
    execute,
    f1_drop_text,
    f1_drops,
    last_error,
    model_command,
    train_seconds,
    training_settings_problem,
    with_sets,
)
from bench.entry import run_main
from bench.report import report  # noqa: E402
from bench.rl_curves import training_signal  # noqa: E402

# The `small` preset as the study ran it, before it adopted `scale_rewards: none` (docs/results.md): every
# configuration below is these `--set`s and its own (the later wins).
STUDY_BASE = ("scale_rewards=group",)
# Every GRPO setting tried, by name; the first is the preset as it was before the study (lr 5e-5).
CONFIGS: dict[str, tuple[str, ...]] = {
    "preset_lr5e-5": ("learning_rate=5e-5",),  # the preset before the study adopted 2e-5
    "lr1e-6": ("learning_rate=1e-6",),
    "lr5e-6": ("learning_rate=5e-6",),
    "lr2e-5": ("learning_rate=2e-5",),
    "lr2e-5_seed1": ("learning_rate=2e-5", "seed=1"),  # the same SFT start, another RL seed (sampling, order)
    "lr2e-5_beta0": ("learning_rate=2e-5", "beta=0"),
    "lr2e-5_scale_batch": ("learning_rate=2e-5", "scale_rewards=batch"),
    "lr2e-5_balanced": ("learning_rate=2e-5", "prompt_sampling=balanced"),
    "lr2e-5_released_code": ("learning_rate=2e-5", "rewards.style=released_code"),
    "lr2e-5_temp0.7": ("learning_rate=2e-5", "temperature=0.7"),
    "lr2e-5_g16": ("learning_rate=2e-5", "num_generations=16", "per_device_batch_size=128"),
    "lr2e-5_inverse_freq": ("learning_rate=2e-5", "scale_rewards=batch", "action_weighting=inverse_frequency"),
    "lr2e-5_scale_none": ("learning_rate=2e-5", "scale_rewards=none"),
    # the adopted preset (no scaling) with rare actions' rewards weighted up: a rare class the SFT model does answer,
    # but with low precision (ACCELERATE on the visible-braking data), is what RL gave up in 5 of 8 runs there
    "lr2e-5_scale_none_inverse_freq": (
        "learning_rate=2e-5",
        "scale_rewards=none",
        "action_weighting=inverse_frequency",
    ),
    "lr2e-5_scale_none_inverse_sqrt_freq": (  # the same push, milder
        "learning_rate=2e-5",
        "scale_rewards=none",
        "action_weighting=inverse_sqrt_frequency",
    ),
    # the adopted preset with rollouts sampled by a bf16 copy of the policy (a speed change that changes what is
    # sampled: it is adopted only if validation does not suffer)
    "lr2e-5_scale_none_bf16_rollouts": ("learning_rate=2e-5", "scale_rewards=none", "rollout_dtype=bfloat16"),
    # the adopted preset sampling hotter: in the answer-only study (docs/results.md) most groups had no reward spread
    # and no lane change was ever answered, and RL can only reward what it samples
    "lr2e-5_scale_none_temp1.3": ("learning_rate=2e-5", "scale_rewards=none", "temperature=1.3"),
    "lr2e-5_safety": ("learning_rate=2e-5", "rewards.safety_coef=1.0"),  # needs --judge (#20's safety reward)
    # the adopted preset with every action weight 1.0: on the test split, answer-only RL from the scene prompt lost
    # 2.4 points with the weights and none without (docs/results.md); adopted only if validation agrees
    "lr2e-5_scale_none_weights_off": (
        "learning_rate=2e-5",
        "scale_rewards=none",
        *REWARD_ABLATIONS["no_action_weights"],
    ),
}
NEEDS_JUDGED_DATA = ("lr2e-5_safety",)
REFERENCE = "lr2e-5"  # the adopted learning rate alone: every other configuration is one change from it
ACCURACY = "val/planning_accuracy"


def plan(args: argparse.Namespace) -> list[Job]:
    """The data, traces, model, SFT, its validation score, then each configuration and its validation score."""
    scale = ("--scale", args.scale)
    answers_only = ("--no-reasoning",) if args.no_reasoning else ()
    model = argparse.Namespace(
        language=args.language, dimensions=args.dimensions or None, model_set=[f"max_pixels={args.image_size**2}"]
    )
    jobs = [
        *data_jobs(
            args.frames,
            args.workers,
            [f"render.image_size={args.image_size}", *args.data_set],
            [f"share={args.sft_share}", *args.trace_set],
            judge=args.judge,
            data_seed=args.data_seed,
        ),
        Job("model", model_command(args.seed, model)),
        Job(
            "sft",
            (
                "sft",
                "--data",
                "@traces",
                "--model",
                "@model",
                *answers_only,
                *scale,
                "--set",
                f"epochs={args.sft_epochs}",
                "--set",
                f"seed={args.seed}",
                *with_sets(args.sft_set),
            ),
        ),
        Job("val-sft", ("eval", "--model", "@sft", "--data", "@data", *scale, "--set", "split=val")),
    ]
    common = [
        f"epochs={args.rl_epochs}",
        "max_steps=-1",
        f"generation_batch_size={args.rollout}",
        f"validation.every_steps={args.every}",
        f"validation.frames={args.val_frames}",
        "validation.batch_size=128",
        "save_steps=100",
        f"seed={args.seed}",
    ]
    for name in args.configs:
        sets = [*common, *STUDY_BASE, *CONFIGS[name]]
        jobs += [
            Job(f"rl-{name}", ("grpo", "--data", "@data", "--init", "@sft", *answers_only, *scale, *with_sets(sets))),
            Job(f"val-{name}", ("eval", "--model", f"@rl-{name}", "--data", "@data", *scale, "--set", "split=val")),
        ]
    return jobs


def eval_metrics(eval_dir: Path) -> dict[str, Any]:
    """The metrics.json of one `eval` artifact."""
    return json.loads((eval_dir / "metrics.json").read_text())


def val_scores(metrics: dict[str, Any], answer_only: bool = False) -> dict[str, Any]:
    """Planning accuracy, format (the answer-only format with ``answer_only``), per-class F1 and, on simulator
    frames, each scenario's planning accuracy of one `eval --split val`'s metrics."""
    return {
        "val_planning_accuracy": metrics["planning_accuracy"],
        "val_format_valid_rate": metrics["answer_only_format_rate" if answer_only else "format_valid_rate"],
        "val_speed_macro_f1": metrics["speed"]["macro_f1"],
        "val_path_macro_f1": metrics["path"]["macro_f1"],
        **({"val_acceptable_rate": metrics["judged"]["acceptable_rate"]} if "judged" in metrics else {}),
        "val_f1": {
            action: round(values["f1"], 4)
            for head in ("speed", "path")
            for action, values in metrics[head]["per_class"].items()
        },
        **(
            {"val_by_scenario": {name: round(group["planning_accuracy"], 4) for name, group in scenarios.items()}}
            if (scenarios := metrics.get("by_scenario"))
            else {}
        ),
    }


def failed_run(root: Path, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The row of a run that stopped with an error (its log's last error line) and the log history of its last
    checkpoint, or None if it never ran."""
    log = root / "logs" / f"rl-{name}.log"
    if not log.is_file():
        return None
    error = last_error(log)
    states = sorted(
        partial_dir(root / "grpo", f"rl-{name}").glob("checkpoints/checkpoint-*/trainer_state.json"),
        key=lambda path: int(path.parent.name.split("-")[1]),
    )
    history = json.loads(states[-1].read_text())["log_history"] if states else []
    row = {
        "config": name,
        "sets": list(CONFIGS[name]),
        "outcome": error or "stopped without a published model",
        "steps": max((int(entry["step"]) for entry in history), default=0),
    }
    return row, history


def summary(
    root: Path,
    paths: dict[str, Path],
    configs: list[str],
    answer_only: bool = False,
    reference: str = REFERENCE,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row per configuration run (and the SFT start): finished, or failed with its error and its curve up to
    its last checkpoint; and every run's validation curve. ``answer_only``: the models answer without reasoning;
    ``reference``: the configuration every other run is compared with on the same frames."""
    rows, curves = [], {}
    sft_metrics = None
    if "val-sft" in paths:  # its metrics read once: every run is compared with them
        sft_metrics = eval_metrics(paths["val-sft"])
        rows.append({"config": "SFT (start of every run)", **val_scores(sft_metrics, answer_only)})
    for name in configs:
        run = paths.get(f"rl-{name}")
        if run is None:
            failed = failed_run(root, name)
            if failed is not None:
                row, history = failed
                rows.append(row)
                steps, values = curve(history, ACCURACY)
                curves[name] = {"steps": steps, "val_planning_accuracy": values, "finished": False}
            continue
        history = json.loads((run / "log_history.json").read_text())
        steps, values = curve(history, ACCURACY)
        curves[name] = {"steps": steps, "val_planning_accuracy": values, "finished": True}
        manifest = json.loads((run / "manifest.json").read_text())
        row = {
            "config": name,
            "sets": list(CONFIGS[name]),
            "outcome": "finished",
            "steps": manifest["metrics"].get("steps"),
            "train_wall_s": round(train_seconds(root, [f"rl-{name}"]), 1),
            "samples_per_s": manifest["metrics"].get("train_samples_per_second"),
            "final_reward": manifest["metrics"].get("final_reward"),
            "best_val_step": manifest.get("validation", {}).get("best_step"),
            "best_val_sample_accuracy": manifest.get("validation", {}).get("best_planning_accuracy"),
            **training_signal(history, manifest["metrics"].get("steps") or 1),
        }
        if f"val-{name}" in paths:
            metrics = eval_metrics(paths[f"val-{name}"])
            row.update(val_scores(metrics, answer_only))
            if sft_metrics is not None:
                gain = eval_gain(paths["val-sft"], paths[f"val-{name}"])
                row["val_gain_over_sft"] = gain["difference"]
                row["val_gain_ci95"] = [gain["low"], gain["high"]]
                row["val_f1_drops"] = f1_drops(sft_metrics, metrics, (paths["val-sft"], paths[f"val-{name}"]))
                row["val_classes_below_sft"] = f1_drop_text(row["val_f1_drops"])
                row["val_answers_changed"] = answers_changed(paths["val-sft"], paths[f"val-{name}"])
            if name != reference and f"val-{reference}" in paths:
                versus = eval_gain(paths[f"val-{reference}"], paths[f"val-{name}"])
                row["val_gain_over_reference"] = versus["difference"]
                row["val_reference_ci95"] = [versus["low"], versus["high"]]
        rows.append(row)
    return rows, curves


def curves_png(curves: dict[str, Any], path: Path) -> None:
    """Validation planning accuracy against step, every configuration on one axis (step 0: the SFT start; a
    run that stopped with an error dashed, up to its last checkpoint)."""
    figure, axis = plt.subplots(figsize=(8, 5))
    for name, points in curves.items():
        finished = points["finished"]
        axis.plot(
            points["steps"],
            points["val_planning_accuracy"],
            marker=".",
            linestyle="-" if finished else "--",
            label=name if finished else f"{name} (stopped, last checkpoint)",
        )
    axis.set_xlabel("GRPO step")
    axis.set_ylabel("planning accuracy, validation sample")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("runs/study"))
    parser.add_argument("--frames", type=int, default=4000)
    parser.add_argument("--scale", default="small", help="scale preset of every stage")
    parser.add_argument(
        "--dimensions", default="configs/models/small-qwen2-vl.json", help="model dimensions ('' = tiny)"
    )
    parser.add_argument(
        "--language", default=None, help="start from `models build --language L` (e.g. smollm2-135m) instead"
    )
    parser.add_argument("--no-reasoning", action="store_true", help="answer-only SFT and GRPO")
    parser.add_argument("--data-seed", type=int, default=0, help="`data sim --seed`")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the model (`models build/tiny --seed`), its SFT and every GRPO run (a configuration that sets "
        "its own keeps it)",
    )
    parser.add_argument(
        "--data-set", action="append", default=[], help="`data sim --set` (repeatable), e.g. labels.horizon_s=2.0"
    )
    parser.add_argument(
        "--trace-set",
        action="append",
        default=[],
        help="`distill --set` of the grounded traces (repeatable), e.g. grounded_facts=one_frame",
    )
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=2, help="simulator worker processes")
    parser.add_argument(
        "--sft-share",
        type=float,
        default=1.0,
        help="share of the frames given traces for the SFT warm-up (distill's share); RL runs on all of them",
    )
    parser.add_argument("--sft-epochs", type=float, default=2)
    parser.add_argument(
        "--sft-set",
        action="append",
        default=[],
        help="`sft --set` (repeatable), e.g. prompt=student-scene-v1 (GRPO and eval then plan with that prompt too)",
    )
    parser.add_argument("--rl-epochs", type=float, default=1)
    parser.add_argument("--rollout", type=int, default=512, help="generation_batch_size of every run")
    parser.add_argument("--every", type=int, default=50, help="validation every N GRPO steps")
    parser.add_argument(
        "--val-frames", type=int, default=100000, help="validation frames scored during training (default: all)"
    )
    parser.add_argument("--configs", nargs="+", default=None, choices=list(CONFIGS), help="default: every one")
    parser.add_argument(
        "--reference",
        default=None,
        choices=list(CONFIGS),
        help=f"the configuration every other run is compared with on the same frames (default {REFERENCE})",
    )
    parser.add_argument(
        "--judge", action="store_true", help="judge every plan of the data (data sim --judge): the safety config"
    )
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument(
        "--budget-s",
        type=float,
        default=float("inf"),
        help="after this many seconds start nothing new and stop what runs (the same command resumes it)",
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    needs_judge = [name for name in args.configs or () if name in NEEDS_JUDGED_DATA]
    if needs_judge and not args.judge:
        parser.error(f"{', '.join(needs_judge)} needs judged data: add --judge")
    if args.configs is None:
        args.configs = [name for name in CONFIGS if args.judge or name not in NEEDS_JUDGED_DATA]
    if args.reference is not None and args.reference not in args.configs:
        parser.error(f"--reference {args.reference} is not among the configurations run (--configs)")
    args.reference = args.reference or REFERENCE
    # the SFT settings are checked as bench.ablation checks its own (the study's GRPO settings are CONFIGS, tested;
    # it has no supervised controls)
    sft_only = argparse.Namespace(**vars(args), grpo_set=[], control_set=[])
    if problem := data_mismatch(args.root, args.frames, args.data_seed) or training_settings_problem(sft_only):
        parser.error(problem)
    args.root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    paths = execute(plan(args), args.root, args.jobs, args.budget_s)
    rows, curves = summary(args.root, paths, args.configs, answer_only=args.no_reasoning, reference=args.reference)
    print(f"this invocation {time.perf_counter() - started:.0f} s")
    columns = (
        "config",
        "outcome",
        "steps",
        "val_planning_accuracy",
        "val_gain_over_sft",
        "val_gain_ci95",
        "val_gain_over_reference",
        "val_reference_ci95",
        "val_classes_below_sft",
        "val_answers_changed",
        "zero_std_by_quarter",
        "speed_accuracy_by_quarter",
        "val_speed_macro_f1",
        "val_path_macro_f1",
        "val_format_valid_rate",
        *(("val_acceptable_rate",) if args.judge else ()),
        "best_val_step",
        "final_reward",
        "samples_per_s",
        "train_wall_s",
    )
    settings = {
        key: getattr(args, key)
        for key in (
            *("frames", "data_seed", "seed", "data_set", "language", "no_reasoning", "sft_share", "sft_epochs"),
            *("rl_epochs", "rollout", "every", "val_frames", "judge", "reference"),
        )
    }
    report(columns, rows, args.out, **settings, curves=curves)
    if args.plot is not None and curves:
        curves_png(curves, args.plot)


if __name__ == "__main__":
    run_main(main)
