"""Benchmark `alphadrive grpo` at real scale: TRL GRPOTrainer's defaults, then one speed change at a time.

Usage (one CUDA GPU): python -m bench.grpo_speed --out docs/bench/grpo_h100.json
CPU smoke test (tiny model): python -m bench.grpo_speed --tiny

Every row is the real `grpo` stage (`stages.grpo.run`) on the same model (the Qwen2-VL-2B architecture with
random bf16 weights, fresh LoRA r 16 on every projection of the language model, vision tower frozen), the
same synthetic data (448x448 frames), 8 completions per frame, 8 completions per optimiser step and the
same completion length; each row adds one change to an earlier row (ROWS names which). Random weights never emit EOS, so
every completion runs to max_completion_length: the worst case for generation. Each row runs in its own
process (clean peak memory, no compiled code shared; its log is grpo-row-N.log in the workdir). The first
rollout (two with compiled decoding, see warmup_rollouts) and its optimiser steps are warm-up; throughput
is measured over the steps after it: generation (TRL's generate call), scoring (rewards, reference and old
log-probabilities) and optimisation (the rest).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from alphadrive_cli.config.resolve import resolve_config
from bench.common import bench_inputs, device_facts
from bench.entry import run_main

ROWS: list[tuple[str, int | None, dict[str, Any]]] = [  # (change, row it is added to, settings it changes)
    (
        "baseline: TRL defaults (gradient checkpointing, one step's rollout, dynamic cache, eager decoding)",
        None,
        {"gradient_checkpointing": True, "compile_generation": False},
    ),
    ("+ no gradient checkpointing", 0, {"gradient_checkpointing": False}),
    ("+ generation_batch_size {rollout} (one rollout for several steps)", 1, {"generation_batch_size": "rollout"}),
    (
        "+ compile_generation: static KV cache, folded-GQA attention, every decoding step one CUDA graph",
        2,
        {"compile_generation": True},
    ),
]
PER_STEP = 8  # completions per optimiser step: one frame's group of 8


class Timer:
    """Wall-clock intervals of TRL's generate calls, whole rollouts (generation and scoring) and steps."""

    def __init__(self, per_step: int = PER_STEP) -> None:
        self.per_step = per_step  # completions per optimiser step
        self.generation: list[tuple[float, float, int, float]] = []  # start, end, completion tokens, mean prompt
        self.rollouts: list[tuple[float, float]] = []
        self.steps: list[float] = []
        self.allocated_gb: list[float] = []  # GPU memory in use as each rollout starts

    @staticmethod
    def now() -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def install_step_clock(self) -> None:
        """Record the time as training starts and as every optimiser step ends (any trainer of this repository)."""
        from transformers import TrainerCallback

        from alphadrive_cli.training import callbacks as training_callbacks

        timer = self

        class StepTimes(TrainerCallback):
            def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
                timer.steps.append(timer.now())

            def on_step_end(self, *args: Any, **kwargs: Any) -> None:
                timer.steps.append(timer.now())

        training_callbacks.EXTRA_CALLBACKS.append(StepTimes())

    def steady(self, warmup_steps: int) -> dict[str, Any]:
        """Samples/s over the steps after ``warmup_steps``, and every step's seconds."""
        steps = len(self.steps) - 1 - warmup_steps
        if steps < 1:
            raise ValueError(f"{len(self.steps) - 1} steps timed, none after the {warmup_steps} warm-up steps")
        window = self.steps[-1] - self.steps[warmup_steps]
        return {
            "steady_steps": steps,
            "steady_samples_per_s": round(steps * self.per_step / window, 1),
            "step_seconds": self.step_seconds(len(self.steps) - 1),
        }

    def step_seconds(self, last: int) -> list[float]:
        """Each optimiser step's seconds, up to step ``last``."""
        return [round(b - a, 3) for a, b in zip(self.steps, self.steps[1 : last + 1], strict=False)]

    def install(self) -> None:
        """Wrap GRPOTrainer's generation and rollout methods, and time every optimiser step."""
        from trl import GRPOTrainer

        generate, rollout = GRPOTrainer._generate_single_turn, GRPOTrainer._generate_and_score_completions
        timer = self

        def timed_generate(trainer: Any, prompt_ids: list[list[int]], *args: Any, **kwargs: Any) -> Any:
            start = timer.now()
            completion_ids, logprobs = generate(trainer, prompt_ids, *args, **kwargs)
            tokens = sum(len(ids) for ids in completion_ids)
            timer.generation.append((start, timer.now(), tokens, sum(map(len, prompt_ids)) / len(prompt_ids)))
            return completion_ids, logprobs

        def timed_rollout(trainer: Any, *args: Any, **kwargs: Any) -> Any:
            if torch.cuda.is_available():
                timer.allocated_gb.append(round(torch.cuda.memory_allocated() / 2**30, 3))
            start = timer.now()
            out = rollout(trainer, *args, **kwargs)
            timer.rollouts.append((start, timer.now()))
            return out

        GRPOTrainer._generate_single_turn = timed_generate
        GRPOTrainer._generate_and_score_completions = timed_rollout
        self.install_step_clock()

    def summary(self, warmup_steps: int, steps_per_rollout: int, measured_steps: int | None = None) -> dict[str, Any]:
        """Throughput and time split over the ``measured_steps`` steps after ``warmup_steps`` (default: all), and
        each whole rollout cycle of ``steps_per_rollout`` steps on its own."""
        last = len(self.steps) - 1  # a run that stopped early ends the window where it stopped
        if measured_steps is not None:
            last = min(last, warmup_steps + measured_steps)
        start, end = self.steps[warmup_steps], self.steps[last]
        window = end - start
        generation = [g for g in self.generation if start <= g[0] < end]
        gen_s = sum(g[1] - g[0] for g in generation)
        rollout_s = sum(r[1] - r[0] for r in self.rollouts if start <= r[0] < end)
        steps = last - warmup_steps
        cycles = self.cycle_samples_per_s(warmup_steps, last, steps_per_rollout)
        return {
            "steps_measured": steps,
            "samples_per_s": round(steps * self.per_step / window, 3),
            "cycle_samples_per_s": cycles,
            "median_cycle_samples_per_s": statistics.median(cycles) if cycles else None,
            "gen_tokens_per_s": round(sum(g[2] for g in generation) / gen_s, 1),
            "generation_share": round(gen_s / window, 3),
            "scoring_share": round((rollout_s - gen_s) / window, 3),
            "optimisation_share": round((window - rollout_s) / window, 3),
            "first_rollout_s": round(self.generation[0][1] - self.generation[0][0], 1),
            "prompt_tokens_mean": round(self.generation[0][3], 1),
            "rollouts_measured": len(generation),
            "allocated_gb_at_rollouts": self.allocated_gb,
            "step_seconds": self.step_seconds(last),
        }

    def cycle_samples_per_s(self, first: int, last: int, steps_per_rollout: int) -> list[float]:
        """Samples/s of each whole rollout cycle between steps ``first`` and ``last``: from a step that runs a
        rollout to the next such step, or to ``last`` if that is ``steps_per_rollout`` steps on (a cycle the
        window cuts is left out). One slow rollout moves a window's mean; the cycles' median shows it."""
        starts = [
            step
            for step in range(first, last)
            if any(self.steps[step] <= begin < self.steps[step + 1] for begin, _ in self.rollouts)
        ]
        bounds = list(zip(starts, starts[1:], strict=False))
        if starts and last - starts[-1] == steps_per_rollout:
            bounds.append((starts[-1], last))
        return [
            round((end - begin) * self.per_step / (self.steps[end] - self.steps[begin]), 1) for begin, end in bounds
        ]


def row_settings(index: int) -> dict[str, Any]:
    """The grpo settings of row ``index``: those of the row it builds on, with its change."""
    _, base, change = ROWS[index]
    return {**(row_settings(base) if base is not None else {}), **change}


def warmup_rollouts(settings: dict[str, Any]) -> int:
    """Rollouts before the measured ones: one; two with compiled decoding, whose decoder is compiled at the
    first rollout and once more at the second (TRL's first switch of the LoRA adapter off and on, for the
    reference log-probabilities, replaces PEFT's active-adapter objects, which the compiled code checks)."""
    return 2 if settings.get("compile_generation") else 1


def run_row(index: int, args: argparse.Namespace) -> dict[str, Any]:
    """One row in this process: the real grpo stage with that row's settings, timed."""
    from alphadrive_cli.artifacts.store import OutputSpec, ResumePolicy
    from alphadrive_cli.config.schemas import GrpoConfig
    from alphadrive_cli.stages import grpo as grpo_stage

    settings = row_settings(index)
    if settings.get("generation_batch_size") == "rollout":
        settings["generation_batch_size"] = args.rollout
    steps_per_rollout = (settings.get("generation_batch_size") or PER_STEP) // PER_STEP
    warmup = warmup_rollouts(settings)
    timer = Timer()
    timer.install()
    config = resolve_config(
        "grpo",
        GrpoConfig,
        options={
            "model": str(args.model),
            "per_device_batch_size": PER_STEP,
            "num_generations": 8,
            "max_completion_length": args.completion,
            "max_steps": steps_per_rollout * (warmup + args.measured),
            "save_steps": 100_000,
            "sample_every": 100_000,
            "seed": 0,
            **settings,
        },
    )
    artifact = grpo_stage.run(config, OutputSpec(args.root, f"bench-{index}", ResumePolicy.RESTART), data=args.data)
    manifest = artifact.manifest
    history = json.loads((artifact.path / "log_history.json").read_text())
    lengths = [entry["completions/mean_length"] for entry in history if "completions/mean_length" in entry]
    from torch._dynamo.utils import counters

    return {
        "change": ROWS[index][0].format(rollout=args.rollout),
        "settings": settings,
        **timer.summary(steps_per_rollout * warmup, steps_per_rollout),
        "peak_memory_gb": manifest["metrics"].get("peak_memory_gb"),
        "generation": manifest["generation"],
        "compiled_graphs": counters["stats"]["unique_graphs"],
        "completion_length_mean": round(sum(lengths) / len(lengths), 1),
        "train_runtime_s": manifest["metrics"]["train_runtime_s"],
        "steps": manifest["metrics"]["steps"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--completion", type=int, default=128, help="max_completion_length (every completion reaches it)"
    )
    parser.add_argument("--rollout", type=int, default=64, help="generation_batch_size of the batched rows")
    parser.add_argument("--measured", type=int, default=1, help="rollouts measured per row, after the warm-up ones")
    parser.add_argument("--resume", action="store_true", help="reuse rows already measured in --workdir")
    parser.add_argument("--rows", type=int, nargs="+", default=list(range(len(ROWS))), help="which rows to run")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the model and data are built (reused if there)"
    )
    parser.add_argument("--tiny", action="store_true", help="the tiny model on the CPU: a smoke test of this script")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--row", type=int, default=None, help=argparse.SUPPRESS)  # internal: run one row here
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--row-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row is not None:
        args.row_out.write_text(json.dumps(run_row(args.row, args)))
        return
    if not args.tiny and not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU (or --tiny)")
    from decode_floor import copy_bandwidth, floor_tokens_per_s  # bench/decode_floor.py
    from transformers import AutoConfig

    from bench.report import report

    workdir = args.workdir or Path(tempfile.mkdtemp())
    model, data = bench_inputs(workdir, args.tiny, frames=64)
    model_config = AutoConfig.from_pretrained(model)
    bandwidth = copy_bandwidth(0.25 if args.tiny else 2.0)
    rows = []
    for index in args.rows:
        row_out = workdir / f"grpo-row-{index}.json"
        command = [
            sys.executable,
            "-m",
            "bench.grpo_speed",
            "--row",
            str(index),
            "--model",
            str(model),
            "--data",
            str(data),
            "--root",
            str(workdir / "runs"),
            "--row-out",
            str(row_out),
            "--completion",
            str(args.completion),
            "--rollout",
            str(args.rollout),
            "--measured",
            str(args.measured),
        ]
        log = workdir / f"grpo-row-{index}.log"
        if args.resume and row_out.is_file():
            done = subprocess.CompletedProcess(command, 0)
        else:
            with log.open("w") as handle:
                done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT)
        if done.returncode:
            error = (log.read_text().strip().splitlines() or ["(no output)"])[-1]
            print(f"row {index} failed: {error}", file=sys.stderr)
            rows.append({"change": ROWS[index][0].format(rollout=args.rollout), "error": error})
            continue
        row = json.loads(row_out.read_text())
        batch = row["generation"]["batch_size"]
        floor = floor_tokens_per_s(model_config, batch, row["prompt_tokens_mean"], args.completion, bandwidth)
        row["gen_vs_decode_floor"] = round(row["gen_tokens_per_s"] / floor, 4)
        rows.append(row)
        print(f"row {index}: {row['samples_per_s']} samples/s, {row['gen_tokens_per_s']} gen tokens/s", file=sys.stderr)
    base = rows[0].get("samples_per_s") if rows else None
    for row in rows:
        if base and "samples_per_s" in row:
            row["speedup"] = round(row["samples_per_s"] / base, 2)
    facts = {
        **device_facts(),
        "model": "tiny offline qwen2_vl" if args.tiny else "Qwen2-VL-2B architecture, random bf16 weights",
        "completions_per_step": PER_STEP,
        "num_generations": 8,
        "max_completion_length": args.completion,
        "rollout_batch": args.rollout,
        "measured_rollouts": args.measured,
        "seed": 0,
        "copy_bandwidth_gb_s": round(bandwidth / 1e9, 1),
    }
    print(" ".join(f"{key}={value}" for key, value in facts.items()))
    report(
        (
            "change",
            "samples_per_s",
            "speedup",
            "gen_tokens_per_s",
            "gen_vs_decode_floor",
            "generation_share",
            "scoring_share",
            "optimisation_share",
            "first_rollout_s",
            "peak_memory_gb",
            "error",
        ),
        rows,
        args.out,
        **facts,
    )


if __name__ == "__main__":
    run_main(main)
