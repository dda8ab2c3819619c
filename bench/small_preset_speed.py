"""Benchmark the `small` preset's stages one at a time, each speed change of #19 switched on in turn.

Usage (one CUDA GPU): python -m bench.small_preset_speed --workdir runs/sp --out docs/bench/small_preset_speed.json
CPU smoke test: python -m bench.small_preset_speed --smoke --workdir runs/sp

The inputs are those of the H200 baseline (docs/benchmarks.md): `data sim` frames at 224 px (front camera),
their grounded traces, the small Qwen2-VL (configs/models/small-qwen2-vl.json, random start) and a short
`sft --scale small` run that every `grpo` row starts from (so completions end where the traces taught them
to, as in the ablation). Each row runs the real stage in its own process; a change is switched off by
patching it out of that process (CHANGES says how), so the first row is the code as the baseline measured
it. `grpo` rows are timed over the steps after the warm-up rollouts (the first two compile the decoder):
samples/s = completions trained on per second of those steps; `train_samples_per_second` (the stage's own
figure, warm-up and compilation included) is reported beside it. `sft` rows report both too: their steady
samples/s counts the steps after the first SFT_WARMUP_STEPS (half the steps, if fewer); the step clock waits for the
GPU at every step, which rows timed before 2026-12-06's tenth session did not.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench.ablation import Job, data_jobs, execute
from bench.common import device_facts
from bench.entry import run_main

MODEL_DIMENSIONS = "configs/models/small-qwen2-vl.json"
FRAMES_PER_STEP = 8  # the small preset: eight frames x eight completions per optimiser step
GROUP = 8
SFT_WARMUP_STEPS = 8  # sft rows: steps before the steady window (loader workers starting, first allocations)


def _no_rope_batching() -> None:
    from alphadrive_cli.models import loading

    loading.use_batched_rope_index = lambda model: 0


def _no_vision_dedup() -> None:
    from alphadrive_cli.models import loading

    loading.use_distinct_image_features = lambda model: 0


def _no_frame_caches() -> None:
    from alphadrive_cli.models.frame_cache import DecodedFrames
    from alphadrive_cli.stages import grpo

    grpo.PatchedImages = lambda inner, capacity: inner
    grpo.DecodedFrames = lambda capacity: DecodedFrames(0)  # every read decodes, as `datasets.Image` did


def _no_batched_vision_attention() -> None:
    from alphadrive_cli.models import loading

    loading.use_batched_vision_attention = lambda model: 0


def _no_device_patches() -> None:
    from alphadrive_cli.stages import grpo

    grpo.assemble_on = lambda processor, device: False


def _no_distinct_texts() -> None:
    from alphadrive_cli.stages import grpo

    grpo.tokenize_distinct_texts = lambda processor: False


def _pinned_rows() -> None:
    from alphadrive_cli.training import prompt_loader

    prompt_loader.ARGUMENTS = {}  # transformers' default: the loader pins every fetched batch of prompt rows


def _rows_read_every_step() -> None:
    from alphadrive_cli.training import prompt_loader

    prompt_loader.read_rows_once_a_rollout = lambda trainer: None


def _batches_to_device() -> None:
    from alphadrive_cli.training import prompt_loader

    prompt_loader.leave_batches_on_host = lambda loader: None


def _modalities_row_by_row() -> None:
    from alphadrive_cli.stages import grpo

    grpo.type_tokens_per_batch = lambda processor: False


def _finite_check_per_tensor() -> None:
    from alphadrive_cli.training import numerics

    def per_tensor(tensors: Any) -> bool:  # the check as it was: two kernels and a result per gradient
        local = [tensor.detach() for tensor in tensors]
        return not local or bool(torch.stack([torch.isfinite(tensor).all() for tensor in local]).all())

    numerics.all_finite = per_tensor


CHANGES = {
    "rope": _no_rope_batching,
    "frames": _no_frame_caches,
    "dedup": _no_vision_dedup,
    "vision_attention": _no_batched_vision_attention,
    "device_patches": _no_device_patches,
    "distinct_texts": _no_distinct_texts,
    "unpinned_rows": _pinned_rows,
    "rows_once": _rows_read_every_step,
    "host_batches": _batches_to_device,
    "token_types": _modalities_row_by_row,
    "finite_check": _finite_check_per_tensor,
}  # each change, and how to switch it off

ROLLOUT_512 = {"generation_batch_size": 512, "dataloader_workers": 0}  # one rollout feeds 8 optimiser steps
SCORED_512 = {**ROLLOUT_512, "scoring_batch_size": 512}
# (change, the last change of CHANGES it includes, settings): a row switches off every change after that one
GRPO_ROWS: list[tuple[str, str | None, dict[str, Any]]] = [
    ("baseline: the small preset as measured at 617519a", None, {"dataloader_workers": 2}),
    ("+ batched rope index (host numpy, one copy each way)", "rope", {"dataloader_workers": 2}),
    ("+ frame caches (each frame decoded once, patched once per rollout)", "frames", {"dataloader_workers": 2}),
    (
        "+ generation_batch_size 512 (one rollout for 8 optimiser steps)",
        "frames",
        {"generation_batch_size": 512, "dataloader_workers": 2},
    ),
    ("+ dataloader_workers 0 (the caches live in the main process)", "frames", ROLLOUT_512),
    ("+ each distinct image through the vision tower once", "dedup", ROLLOUT_512),
    ("+ beta 0 (no reference model: a recipe choice, measured for its cost)", "dedup", {**ROLLOUT_512, "beta": 0.0}),
    (
        "row 6 with 512 completions per optimiser step (8x fewer, larger forwards; a recipe change)",
        "dedup",
        {**ROLLOUT_512, "per_device_batch_size": 512},
    ),
    ("row 6 + every image of a batch attended in one call per vision block", "vision_attention", ROLLOUT_512),
    (
        "row 9 + each rollout scored in one gradient-free pass of 512 (scoring_batch_size), not 8 of 64",
        "vision_attention",
        SCORED_512,
    ),
    (
        "row 10 + rollouts decoded by a bf16 copy of the fp32 policy (rollout_dtype: bfloat16)",
        "vision_attention",
        {**SCORED_512, "rollout_dtype": "bfloat16"},
    ),
    (
        "row 10 + each rollout's pixel values assembled on the GPU from one copy of each distinct image",
        "device_patches",
        SCORED_512,
    ),
    (
        "row 12 + each distinct prompt of a rollout tokenized once (the processor's tokenizer, not 2 x 8 times)",
        "distinct_texts",
        SCORED_512,
    ),
    (
        "row 13 + prompt rows not pinned (TRL fetches a rollout's 512 rows every step; they hold no tensor)",
        "unpinned_rows",
        SCORED_512,
    ),
    ("row 14 + a rollout's prompt rows read from the table once, not at each of its 8 steps", "rows_once", SCORED_512),
    (
        "row 15 + prompt rows left on the host (no walk of every row on its way to the device)",
        "host_batches",
        SCORED_512,
    ),
    (
        "row 16 with 2 loader workers (the small preset's setting until 2026-12-06)",
        "host_batches",
        {**SCORED_512, "dataloader_workers": 2},
    ),
    ("row 16 + each batch's token modalities typed in one pass, not row by row", "token_types", SCORED_512),
    ("row 18 + gradients checked for NaN and infinity in a few fused kernels", "finite_check", SCORED_512),
]


def switched_off(last: str | None) -> tuple[str, ...]:
    """The changes a row whose last included change is ``last`` switches off (all of them with None)."""
    names = list(CHANGES)
    return tuple(names[names.index(last) + 1 :] if last is not None else names)


# preset settings that a row leaves unset are reset to the stage default, so each row measures what it lists
# whatever the preset has adopted since
ROW_DEFAULTS = {"generation_batch_size": "null", "scoring_batch_size": "null", "rollout_dtype": "weights"}
EAGER = {"compile_generation": False}  # eval as it decoded before graph decoding reached it (still its default)
GRAPHS = {"compile_generation": True}
OTHER_ROWS: list[tuple[str, str, tuple[str, ...], dict[str, Any]]] = [  # (stage, change, switched off, settings)
    ("sft", "baseline", ("rope", "dedup", "vision_attention"), {}),
    ("sft", "+ batched rope index (SFT batches hold no repeated frames)", ("dedup", "vision_attention"), {}),
    ("sft", "+ every image of a batch attended in one call per vision block", ("dedup",), {}),
    ("eval", "baseline", ("rope", "dedup", "vision_attention"), EAGER),
    ("eval", "+ batched rope index", ("dedup", "vision_attention"), EAGER),
    ("eval", "+ every image of a batch attended in one call per vision block", ("dedup",), EAGER),
    ("eval", "+ graph decoding (static KV cache, every decoding step one CUDA graph)", ("dedup",), GRAPHS),
    ("eval", "row 6 with batches of 512 frames, not 128", ("dedup",), {**GRAPHS, "batch_size": 512}),
    ("eval", "row 5 with batches of 512 frames, not 128 (eager decoding)", ("dedup",), {**EAGER, "batch_size": 512}),
]


def inputs(workdir: Path, frames: int, sft_steps: int, workers: int, smoke: bool) -> dict[str, str]:
    """Data, traces, model and the SFT policy every grpo row starts from, built through bench/ablation.py's
    runner (logs in ``workdir/logs``; what is published is reused)."""
    size = 112 if smoke else 224
    scale = "tiny" if smoke else "small"
    dimensions = () if smoke else ("--dimensions", MODEL_DIMENSIONS)
    jobs = [
        *data_jobs(frames, workers, [f"render.image_size={size}"]),
        Job("model", ("models", "tiny", *dimensions, "--set", f"max_pixels={size**2}")),
        Job(
            "sft",
            ("sft", "--data", "@traces", "--model", "@model", "--scale", scale, "--set", f"max_steps={sft_steps}"),
        ),
    ]
    paths = execute(jobs, workdir, 1, float("inf"))
    if missing := [job.key for job in jobs if job.key not in paths]:
        raise SystemExit(f"building the inputs failed at {missing[0]}: see {workdir / 'logs'}")
    return {**{key: str(path) for key, path in paths.items()}, "scale": scale}


def run_grpo_row(index: int, paths: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """One grpo row in this process: the real stage, its changes switched off as the row says, timed."""
    from alphadrive_cli.artifacts.store import OutputSpec, ResumePolicy
    from alphadrive_cli.config.resolve import resolve_config
    from alphadrive_cli.config.schemas import GrpoConfig
    from alphadrive_cli.stages import grpo as grpo_stage
    from bench.grpo_profile import RolloutProfile
    from bench.grpo_speed import Timer
    from bench.python_profile import PythonProfile
    from bench.sync_sites import SyncSites

    change, last, settings = GRPO_ROWS[index]
    off = switched_off(last)
    for name in off:
        CHANGES[name]()
    preset_step = FRAMES_PER_STEP * GROUP if not args.smoke else 2 * 4  # the tiny preset: two frames x four
    per_step = settings.get("per_device_batch_size", preset_step) if not args.smoke else preset_step
    if args.smoke:  # same rows, shrunk to the tiny preset on a CPU
        settings = {**settings, "max_completion_length": 32}
        if "generation_batch_size" in settings:
            settings["generation_batch_size"] = 4 * per_step
        settings.pop("per_device_batch_size", None)
    steps_per_rollout = settings.get("generation_batch_size", per_step) // per_step
    warmup = steps_per_rollout * 2
    measured = max(args.measured_steps * preset_step // per_step, steps_per_rollout)  # as many samples per row
    measured = -(-measured // steps_per_rollout) * steps_per_rollout  # whole rollout cycles: a profile holds one
    timer = Timer(per_step)
    timer.install()
    windows = {}  # each asked for: one more rollout cycle after the timed steps (and any window before it)
    steps = warmup + measured
    for key, window, asked in (
        ("profile", RolloutProfile, args.profile),
        ("sync_sites", SyncSites, args.sync_sites),
        ("python_profile", PythonProfile, args.python_profile),
    ):
        if asked:
            windows[key] = window(steps, steps_per_rollout)
            windows[key].install()
            steps += steps_per_rollout
    config = resolve_config(
        "grpo",
        GrpoConfig,
        scale=paths["scale"],
        options={
            "model": paths["sft"],
            "max_steps": steps,
            "save_steps": 100_000,
            "sample_every": 100_000,
            "seed": 0,
            **settings,
        },
        overrides=[f"{key}={value}" for key, value in ROW_DEFAULTS.items() if key not in settings],
    )
    artifact = grpo_stage.run(
        config, OutputSpec(Path(args.workdir) / "runs", f"grpo-{index}", ResumePolicy.RESTART), data=Path(paths["data"])
    )
    metrics = artifact.manifest["metrics"]
    history = json.loads((artifact.path / "log_history.json").read_text())
    lengths = [entry["completions/mean_length"] for entry in history if "completions/mean_length" in entry]
    return {
        "stage": "grpo",
        "change": change,
        "switched_off": list(off),
        "settings": settings,
        **timer.summary(warmup, steps_per_rollout, measured),
        **{key: window.result for key, window in windows.items()},
        "train_samples_per_second": metrics.get("train_samples_per_second"),
        "peak_memory_gb": metrics.get("peak_memory_gb"),
        "generation": artifact.manifest["generation"],
        "completion_length_mean": round(sum(lengths) / len(lengths), 1),
        "steps": metrics["steps"],
    }


def _plans(evaluation: Path) -> dict[str, Any]:
    """What an eval row planned: its planning accuracy and a digest of its texts, so that rows decoding the same
    frames in other ways can be checked to answer alike."""
    texts = [json.loads(line)["text"] for line in (evaluation / "predictions.jsonl").read_text().splitlines()]
    return {
        "planning_accuracy": json.loads((evaluation / "metrics.json").read_text())["planning_accuracy"],
        "texts_sha256": hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:16],
    }


def run_other_row(index: int, paths: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """One sft or eval row in this process, its changes switched off as the row says."""
    stage, change, off, settings = OTHER_ROWS[index]
    for name in off:
        CHANGES[name]()
    from alphadrive_cli.artifacts.store import OutputSpec, ResumePolicy
    from alphadrive_cli.config.resolve import resolve_config

    output = OutputSpec(Path(args.workdir) / "runs", f"{stage}-{index}", ResumePolicy.RESTART)
    if stage == "sft":
        from alphadrive_cli.config.schemas import SftConfig
        from alphadrive_cli.stages import sft
        from bench.grpo_speed import Timer

        config = resolve_config(
            "sft", SftConfig, scale=paths["scale"], options={"model": paths["model"], "max_steps": args.sft_steps}
        )
        timer = Timer(config.per_device_batch_size * config.gradient_accumulation_steps)
        timer.install_step_clock()
        metrics = sft.run(config, output, data=Path(paths["traces"])).manifest["metrics"]
        keys = ("train_samples_per_second", "train_runtime_s", "peak_memory_gb", "steps")
        return {
            "stage": stage,
            "change": change,
            "switched_off": list(off),
            **{k: metrics.get(k) for k in keys},
            **timer.steady(min(SFT_WARMUP_STEPS, args.sft_steps // 2)),
        }
    from alphadrive_cli.config.schemas import EvalConfig
    from alphadrive_cli.stages import eval_open_loop

    config = resolve_config("eval", EvalConfig, scale=paths["scale"], options={"split": "val", **settings})
    started = time.perf_counter()
    artifact = eval_open_loop.run(config, output, model=paths["sft"], data=Path(paths["data"]))
    generation = artifact.manifest["report"]
    return {
        "stage": stage,
        "change": change,
        "switched_off": list(off),
        "settings": settings,
        "frames_per_s": generation.get("frames_per_s"),
        "generation_s": generation.get("generation_s"),
        "decoding": generation.get("decoding"),
        "stage_s": round(time.perf_counter() - started, 1),
        **_plans(artifact.path),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="inputs and runs (inputs reused if there)")
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=14, help="data sim workers")
    parser.add_argument("--sft-steps", type=int, default=40)
    parser.add_argument("--measured-steps", type=int, default=16, help="grpo steps timed after the warm-up")
    parser.add_argument("--grpo-rows", type=int, nargs="*", default=list(range(len(GRPO_ROWS))))
    parser.add_argument("--other-rows", type=int, nargs="*", default=list(range(len(OTHER_ROWS))))
    parser.add_argument("--row-timeout", type=float, default=600, help="seconds a row may take")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="grpo rows: torch.profiler over one more rollout cycle after the timed steps (bench/grpo_profile.py)",
    )
    parser.add_argument(
        "--sync-sites",
        action="store_true",
        help="grpo rows: one more rollout cycle after those, each synchronising operation counted by call site "
        "(bench/sync_sites.py)",
    )
    parser.add_argument(
        "--python-profile",
        action="store_true",
        help="grpo rows: one more rollout cycle after those, under cProfile, by function (bench/python_profile.py)",
    )
    parser.add_argument("--smoke", action="store_true", help="the tiny model on the CPU: a test of this script")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: grpo-N or other-N, run in this process
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    paths = inputs(args.workdir, args.frames, args.sft_steps, args.workers, args.smoke)
    if args.row is not None:
        kind, number = args.row.split("-")
        row = (run_grpo_row if kind == "grpo" else run_other_row)(int(number), paths, args)
        (args.workdir / f"row-{args.row}.json").write_text(json.dumps(row))
        return
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU (or --smoke)")
    rows = []
    for name in [f"grpo-{i}" for i in args.grpo_rows] + [f"other-{i}" for i in args.other_rows]:
        log = args.workdir / "logs" / f"row-{name}.log"
        command = [sys.executable, "-m", "bench.small_preset_speed", *sys.argv[1:], "--row", name]
        with log.open("w") as handle:
            try:
                done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, timeout=args.row_timeout)
            except subprocess.TimeoutExpired:
                rows.append({"row": name, "error": f"stopped after {args.row_timeout} s"})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                continue
        if done.returncode:
            error = (log.read_text().strip().splitlines() or ["(no output)"])[-1]
            rows.append({"row": name, "error": error[:300]})
        else:
            rows.append({"row": name, **json.loads((args.workdir / f"row-{name}.json").read_text())})
        print(json.dumps(rows[-1])[:400], file=sys.stderr, flush=True)
    result = {
        **device_facts(),
        "model": "tiny offline qwen2_vl (smoke)" if args.smoke else f"{MODEL_DIMENSIONS}, random start",
        "frames": args.frames,
        "sft_init_steps": args.sft_steps,
        "measured_steps": args.measured_steps,
        "seed": 0,
        "inputs": paths,
        "rows": rows,
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    run_main(main)
