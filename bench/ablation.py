"""The paper's ablation on simulator data: SFT without / with reasoning, RL only, SFT + RL, reward ablations.

Usage: python -m bench.ablation --frames 2000 --seeds 0 1 --out docs/bench/ablation_cpu.json
       [--data-set render.image_size=224]
       [--dimensions configs/models/small-qwen2-vl.json --model-set max_pixels=50176] [--scale small]
       [--language smollm2-135m] [--data-seed 0]
       [--sft-epochs 3] [--sft-set language_frozen_epochs=2] [--grpo-steps 40] [--episodes 2 (0: no closed loop)]
       [--reward-ablation] [--supervised-control [--control-set learning_rate=2e-5]]
       [--jobs 8] [--budget-s 540]
       [--judge [--samples 8]] [--image-control] [--val-split] [--plot f1.png]

Runs the real CLI stage by stage, as a user would: one simulator data set and its grounded traces,
then per seed a model built from random weights of the dimensions given (or, with --language, a pretrained
language model behind a random vision tower: `models build`), trained in four rows:
1. `sft --no-reasoning` (answers only), 2. `sft` on the traces, 3. `grpo` from the untrained model
(RL only), 4. `grpo` from row 2 (the AlphaDrive recipe); with --reward-ablation, row 4 again (every
seed) without each of the four rewards in turn, each paired with row 4 on the same test frames (per seed and pooled
over the seeds: what that reward adds); with --supervised-control, beside each SFT + RL row its SFT
continued with SFT's loss on every train frame's label (traces without --sft-share) for as many frames as the RL
row trains on, the row that says whether RL beats using the same labels as targets (--control-set changes its `sft`
settings alone, e.g. its learning rate, which is otherwise the preset's SFT rate). Every row is scored open loop
on the test split
and closed loop (`eval --closed-loop`, all scenarios, the same seeds for every row, the expert beside).
With --judge the data set is judged by the simulator (`data sim --judge`): every row also gets the share of its
answers judged acceptable and a fifth row per seed trains row 4 with the safety reward (`rewards.safety_coef=1`).
--samples K scores each row once more with K sampled answers per frame: the share of test frames whose K answers
would give GRPO a reward signal in the row's own format, on judged data the frames with 2+ acceptable plans,
and each RL row's gain over its SFT on the first sampled answer and as the paper's released scripts compare them
(the SFT model greedy, the RL model's first answer sampled at temperature 1, both by the released rule:
docs/spec.md#metrics). --image-control scores each row once more with every test frame planned from another
frame's images (`eval --set images=shuffled`): how much of its accuracy its images earn; --prompt-control NAME
once more with the student prompt NAME (`eval --set prompt=NAME`; with `--sft-set prompt=student-scene-v1`,
`student-v1` takes the stated scene away): how much of it that prompt's difference earns; --val-split once more
on the validation split (`eval --split val`), each RL row's gain over its SFT there beside the test split's
(whether a validation result predicted the test rows). Every row also reports the released rule on its greedy
answers, and every RL row its paired gain over the SFT row it starts from and the classes whose F1 fell more than
0.05 below that row's (#19's bar).

Commands run as a dependency graph, --jobs at a time (independent rows train concurrently), each with
its share of the cores as its thread count, in priority order: the four rows and their scores seed by
seed, then the supervised controls, then the reward ablations. A GRPO stage that fails runs once more
without graph decoding. Every artifact has a fixed name, so a second invocation with the same --root skips
what is published and lets an interrupted stage resume its own checkpoint: a run cut by --budget-s (its
stages get SIGTERM) or by a machine's time limit continues where it stopped. Row 4's train time includes its SFT. Prints
Markdown tables from everything finished so far; --out writes every number as JSON, --plot the per-class
F1 as a PNG. Artifact paths in the output are relative to --root.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from alphadrive_cli.config.resolve import resolve_config
from alphadrive_cli.config.schemas import DEFAULT_ACTION_WEIGHTS, GrpoConfig, SftConfig
from alphadrive_cli.evaluation.metrics import wilson_interval
from alphadrive_cli.evaluation.paired import eval_gain, f1_change, frame_episodes, head_answers, plan_outcomes
from alphadrive_cli.evaluation.plots import f1_comparison_png
from alphadrive_cli.prompts import STUDENT_PROMPTS
from bench.common import run_facts
from bench.entry import run_main
from bench.pooled_gain import interval_text, pooled_gain
from bench.report import report

ROWS = ("sft_no_reasoning", "sft_no_reasoning_rl", "sft_reasoning", "rl_only", "sft_rl")
ROW_TITLES = {
    "sft_no_reasoning": "SFT, no reasoning",
    "sft_no_reasoning_rl": "SFT + RL, no reasoning",
    "sft_reasoning": "SFT with reasoning",
    "rl_only": "RL only",
    "sft_rl": "SFT + RL (AlphaDrive)",
    "no_accuracy": "SFT + RL without the accuracy reward",
    "no_action_weights": "SFT + RL without action weights",
    "no_diversity": "SFT + RL without the diversity reward",
    "no_format": "SFT + RL without the format reward",
    "sft_rl_safety": "SFT + RL with the safety reward",
    "sft_no_reasoning_more": "SFT continued on every label, no reasoning",
    "sft_reasoning_more": "SFT continued on every trace",
}
ANSWER_ONLY = "sft_no_reasoning"  # the rows trained on answers alone start with this
SAFETY_ROW = "sft_rl_safety"  # with --judge: row 4 with the simulator's verdicts as a fifth reward (#20)
SAFETY_SETS = ("rewards.safety_coef=1.0",)
BRAKING = ("DECELERATE", "STOP")  # the speed plans that slow the car down
ACTION_NAMES = tuple(DEFAULT_ACTION_WEIGHTS)
# A GRPO stage that fails is run once more, from the start, without graph decoding (CUDA graphs of a compiled
# step), so that a decoding fault costs that row its speed, not its result; jobs.jsonl records the arguments
# each attempt ran with.
GRPO_FALLBACK = ("--set", "compile_generation=false", "--restart")
# Each reward of the paper dropped through its config; accuracy scales the weights and diversity, so
# without it only the format reward is left.
REWARD_ABLATIONS: dict[str, tuple[str, ...]] = {
    "no_accuracy": ("rewards.quality_coef=0",),
    "no_action_weights": tuple(f"rewards.action_weights.{action}=1.0" for action in ACTION_NAMES),
    "no_diversity": ("rewards.diversity_floor=1.0",),
    "no_format": ("rewards.format_coef=0",),
}
# With --supervised-control: for each RL row after SFT, that SFT continued with SFT's own loss on the labels of
# every train frame, for as many frames as the RL row trains on (the comparison that says whether RL beats
# using the same labels as targets)
CONTROLS = {"sft_rl": "sft_reasoning_more", "sft_no_reasoning_rl": "sft_no_reasoning_more"}
# The SFT row each GRPO row (and each supervised control) starts from (RL only starts from the untrained model)
RL_START = {
    "sft_rl": "sft_reasoning",
    "sft_no_reasoning_rl": "sft_no_reasoning",
    SAFETY_ROW: "sft_reasoning",
    **dict.fromkeys(REWARD_ABLATIONS, "sft_reasoning"),
}
RL_START |= {control: RL_START[rl_row] for rl_row, control in CONTROLS.items()}
# Each reward ablation against the row with all four rewards (same seed, same SFT start): what that reward adds
ALL_REWARDS = dict.fromkeys(REWARD_ABLATIONS, "sft_rl")


THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "RAYON_NUM_THREADS",
    "TORCHINDUCTOR_COMPILE_THREADS",
)


@dataclass(frozen=True)
class Job:
    """One CLI command whose artifact is published as ``<name>-v1``; ``@key`` arguments become the path
    of job ``key``'s artifact."""

    key: str
    args: tuple[str, ...]
    fallback: tuple[str, ...] = ()  # appended to ``args`` for one retry if the command fails

    def retried(self) -> Job:
        """This command with its fallback arguments, retried no further."""
        return Job(self.key, self.args + self.fallback)

    @property
    def needs(self) -> tuple[str, ...]:
        return tuple(arg[1:] for arg in self.args if arg.startswith("@"))


def published(root: Path, name: str) -> Path | None:
    """The published artifact of ``name`` under ``root``, if any."""
    found = sorted(root.glob(f"*/{name}-v*/manifest.json"))
    return found[0].parent if found else None


RL_ONLY_STOP = ("--set", "stop_without_signal=5")  # logged rollouts without any reward signal before RL only stops


def data_mismatch(root: Path, frames: int, data_seed: int) -> str | None:
    """Why the data set already published under ``root`` is not the one asked for (another simulator seed or frame
    count: every row would be trained on it), or None."""
    data = published(root, "data")
    if data is None:
        return None
    config = json.loads((data / "manifest.json").read_text())["config"]
    asked = {"seed": data_seed, "frames": frames}
    differ = [f"{key} {config.get(key)} (asked {value})" for key, value in asked.items() if config.get(key) != value]
    return f"{root} already holds data of {', '.join(differ)}: give another --root" if differ else None


def with_sets(sets: Sequence[str]) -> list[str]:
    return [part for item in sets for part in ("--set", item)]


def _training_settings(args: argparse.Namespace) -> tuple[str, ...]:
    """The scale preset every `sft` and `grpo` stage trains with, and deterministic kernels where asked for."""
    return ("--scale", args.scale, *(("--set", "deterministic=true") if args.deterministic else ()))


def _grpo_settings(seed: int, args: argparse.Namespace) -> tuple[str, ...]:
    """The training settings, step count, --grpo-set overrides and seed every GRPO row of ``seed`` trains with."""
    return (
        *_training_settings(args),
        "--set",
        f"max_steps={args.grpo_steps}",
        *with_sets(args.grpo_set),
        "--set",
        f"seed={seed}",
    )


def _rl_after_reasoning_sft(
    seed: int, args: argparse.Namespace, sets: Sequence[str] = (), data: str = "@data"
) -> tuple[str, ...]:
    """The `grpo` command of a row that continues the seed's reasoning SFT (AlphaDrive's SFT + RL), with ``sets``
    changing its rewards."""
    return ("grpo", "--data", data, "--init", f"@sft_reasoning-s{seed}", *_grpo_settings(seed, args), *with_sets(sets))


def _scored_data(args: argparse.Namespace) -> str:
    """The data set the rows are scored on (and the safety reward reads): with --judge, the judged copy."""
    return "@judged" if args.judge else "@data"


SHUFFLED_IMAGES = ("--set", "images=shuffled")
VAL = ("--split", "val")  # --val-split: every row scored on the validation split too


def input_controls(args: argparse.Namespace) -> dict[str, tuple[str, ...]]:
    """The asked-for scorings of every row with one input changed (job prefix: its `eval --set`s): other frames'
    images (--image-control), another student prompt (--prompt-control)."""
    return {
        **({"shuffled": SHUFFLED_IMAGES} if args.image_control else {}),
        **({"prompt": ("--set", f"prompt={args.prompt_control}")} if args.prompt_control else {}),
    }


def _evaluations(row: str, seed: int, args: argparse.Namespace) -> list[Job]:
    """Open-loop (test split) and, with --episodes > 0, closed-loop scoring of one trained row, and with
    --samples K > 1 open loop with K sampled answers per frame."""
    model, scale, data = f"@{row}-s{seed}", ("--scale", args.scale), _scored_data(args)
    sampled = ("--set", f"samples={args.samples}")
    return [
        Job(f"open-{row}-s{seed}", ("eval", "--model", model, "--data", data, *scale)),
        *(
            Job(f"{prefix}-{row}-s{seed}", ("eval", "--model", model, "--data", data, *scale, *sets))
            for prefix, sets in input_controls(args).items()
        ),
        *(
            [Job(f"val-{row}-s{seed}", ("eval", "--model", model, "--data", data, *scale, *VAL))]
            if args.val_split
            else []
        ),
        *(
            [Job(f"sampled-{row}-s{seed}", ("eval", "--model", model, "--data", data, *scale, *sampled))]
            if args.samples > 1
            else []
        ),
        *(
            [
                Job(
                    f"closed-{row}-s{seed}",
                    (
                        "eval",
                        "--closed-loop",
                        "--model",
                        model,
                        "--data",
                        data,
                        *scale,
                        "--seeds",  # each model seed drives its own simulator seeds: a row's seeds pool into one sample
                        ",".join(str(seed * args.episodes + episode) for episode in range(args.episodes)),
                        "--set",
                        f"closed_loop.seconds={args.seconds}",
                    ),
                )
            ]
            if args.episodes > 0
            else []
        ),
    ]


def control_length(args: argparse.Namespace) -> tuple[str, ...]:
    """The `--set`s that give a supervised control as many train frames as its RL row: the RL row's epochs over
    every label when RL runs the preset's epochs (--grpo-steps -1), else its steps' frames in SFT batches."""
    grpo = resolve_config("grpo", GrpoConfig, args.scale)
    if args.grpo_steps < 0:
        return ("--set", f"epochs={grpo.epochs}")
    sft = resolve_config("sft", SftConfig, args.scale)
    frames = args.grpo_steps * grpo.per_device_batch_size * grpo.gradient_accumulation_steps // grpo.num_generations
    batch = sft.per_device_batch_size * sft.gradient_accumulation_steps
    return ("--set", f"max_steps={max(1, math.ceil(frames / batch))}")


def data_jobs(
    frames: int,
    workers: int,
    data_sets: Sequence[str],
    trace_sets: Sequence[str] = (),
    judge: bool = False,
    data_seed: int = 0,
) -> list[Job]:
    """One `data sim` data set (simulator seed ``data_seed``, ``data_sets`` as its ``--set``s, every plan judged with
    ``judge``) and its grounded traces (``trace_sets``)."""
    sim = ("data", "sim", "--frames", str(frames), "--seed", str(data_seed), "--workers", str(workers))
    sim = (*sim, *with_sets(data_sets))
    return [
        Job("data", (*sim, *(["--judge"] if judge else []))),
        Job("traces", ("distill", "--data", "@data", "--teacher", "grounded", *with_sets(trace_sets))),
    ]


def model_command(seed: int, args: argparse.Namespace) -> tuple[str, ...]:
    """The command that builds a seed's model: ``models tiny`` of --dimensions (random weights), or with
    --language ``models build`` (that pretrained language model, a random vision tower of --dimensions' size)."""
    sets = with_sets(args.model_set)
    if args.language:
        vision = ("--vision-dims", str(args.dimensions)) if args.dimensions else ()
        return ("models", "build", "--language", args.language, "--seed", str(seed), *vision, *sets)
    dims = ("--dimensions", str(args.dimensions)) if args.dimensions else ()
    return ("models", "tiny", "--seed", str(seed), *dims, *sets)


def is_control(key: str) -> bool:
    """Whether a job trains or scores a supervised control (its key names one of CONTROLS' rows)."""
    return any(f"{control}-s" in key for control in CONTROLS.values())


def plan(args: argparse.Namespace) -> list[Job]:
    """Every command of the ablation, in priority order: the rows of --rows with reasoning (and the safety row)
    and their scores seed by seed, then the answer-only rows, then the supervised controls, then the reward
    ablations and theirs, so that a run cut short has finished the headline first. The SFT rows are trained
    wherever a GRPO row starts from them."""
    trace_sets = [*([f"share={args.sft_share}"] if args.sft_share < 1 else []), *args.trace_set]
    # judged apart from `data sim` (`data judge`), so that training, which needs no verdicts, starts meanwhile
    jobs = data_jobs(args.frames, args.workers, args.data_set, trace_sets, data_seed=args.data_seed)
    if args.judge:
        jobs.append(Job("judged", ("data", "judge", "@data", "--workers", str(args.workers))))
    rows = [row for row in ROWS if row in args.rows]
    if args.supervised_control:
        rows += [CONTROLS[row] for row in rows if row in CONTROLS]
        if args.sft_share < 1:  # else the traces already cover every label; these state what the traces state
            traces_all = ("distill", "--data", "@data", "--teacher", "grounded", *with_sets(args.trace_set))
            jobs.append(Job("traces_all", traces_all))
    every_label = "@traces_all" if args.sft_share < 1 else "@traces"
    control_sets = control_length(args) if args.supervised_control else ()
    seeded: list[Job] = []
    for seed in args.seeds:
        sft = (
            *_training_settings(args),
            "--set",
            f"epochs={args.sft_epochs}",
            *with_sets(args.sft_set),
            "--set",
            f"seed={seed}",
        )
        grpo = _grpo_settings(seed, args)
        commands = {
            # the frames reasoning SFT trains on (--sft-share), their answers only
            "sft_no_reasoning": ("sft", "--data", "@traces", "--model", f"@model-s{seed}", "--no-reasoning", *sft),
            "sft_no_reasoning_rl": (
                "grpo",
                "--data",
                "@data",
                "--init",
                f"@sft_no_reasoning-s{seed}",
                "--no-reasoning",
                *grpo,
            ),
            "sft_reasoning": ("sft", "--data", "@traces", "--model", f"@model-s{seed}", *sft),
            # a start that never answers in format has no reward signal: its run stops instead of idling an epoch
            "rl_only": ("grpo", "--data", "@data", "--init", f"@model-s{seed}", *grpo, *RL_ONLY_STOP),
            "sft_rl": _rl_after_reasoning_sft(seed, args),
        }
        for rl_row, control in CONTROLS.items() if args.supervised_control else ():  # from the RL row's SFT start
            start = RL_START[rl_row]
            reasoning = () if start == "sft_reasoning" else ("--no-reasoning",)
            more = (*_training_settings(args), *control_sets, *with_sets(args.control_set), "--set", f"seed={seed}")
            commands[control] = ("sft", "--data", every_label, "--model", f"@{start}-s{seed}", *reasoning, *more)

        trained = {*rows, *(RL_START[row] for row in rows if row in RL_START)}
        if args.judge or args.reward_ablation:
            trained.add("sft_reasoning")
        seeded.append(Job(f"model-s{seed}", model_command(seed, args)))
        seeded += [
            Job(f"{row}-s{seed}", commands[row], GRPO_FALLBACK if commands[row][0] == "grpo" else ())
            for row in (*ROWS, *CONTROLS.values())
            if row in trained
        ]
        seeded += [job for row in rows for job in _evaluations(row, seed, args)]
        if args.judge:
            seeded += [
                Job(
                    f"{SAFETY_ROW}-s{seed}",
                    _rl_after_reasoning_sft(seed, args, SAFETY_SETS, data="@judged"),
                    GRPO_FALLBACK,
                ),
                *_evaluations(SAFETY_ROW, seed, args),
            ]
    # stable: the answer-only rows after the rows with reasoning, the supervised controls (and their scores) last,
    # so that every seed's GRPO rows start before a control takes a slot
    jobs += sorted(seeded, key=lambda job: (is_control(job.key), ANSWER_ONLY in job.key))
    for seed in args.seeds if args.reward_ablation else ():
        jobs += [
            Job(f"{row}-s{seed}", _rl_after_reasoning_sft(seed, args, sets), GRPO_FALLBACK)
            for row, sets in REWARD_ABLATIONS.items()
        ]
        jobs += [job for row in REWARD_ABLATIONS for job in _evaluations(row, seed, args)]
    return jobs


def last_error(log: Path) -> str | None:
    """The last one-line error (``error: ...``) a stage's log holds, if any."""
    errors = [line for line in log.read_text().splitlines() if line.startswith("error:")]
    return errors[-1] if errors else None


class Runner:
    """Runs jobs as subprocesses of the CLI, logging each to ``<root>/logs/<key>.log`` and its wall time to
    ``<root>/jobs.jsonl``; ``stop()`` sends SIGTERM to every running stage (which then keeps its checkpoint)."""

    def __init__(self, root: Path, threads: int) -> None:
        self.root = root
        # every stage gets its share of the cores: left at their default, N concurrent stages each start a
        # thread per core (torch, OpenMP) and oversubscribe the machine N times
        self.env = {**os.environ, **{name: str(threads) for name in THREAD_VARIABLES}}
        self.running: dict[str, subprocess.Popen[str]] = {}
        self.stopped: set[str] = set()
        (root / "logs").mkdir(parents=True, exist_ok=True)

    def __call__(self, job: Job, paths: dict[str, Path]) -> Path:
        args = [str(paths[arg[1:]]) if arg.startswith("@") else arg for arg in job.args]
        # one write, so that stages started together print whole lines
        print(f"$ alphadrive {' '.join(args)} --name {job.key}\n", end="", file=sys.stderr, flush=True)
        started = time.perf_counter()
        with (self.root / "logs" / f"{job.key}.log").open("a") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "alphadrive_cli.cli", *args, "--name", job.key, "--out-root", str(self.root)],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=self.env,
            )
            self.running[job.key] = process
            stdout, _ = process.communicate()
            del self.running[job.key]
        seconds = time.perf_counter() - started
        with (self.root / "jobs.jsonl").open("a") as handle:
            handle.write(
                json.dumps(
                    {"key": job.key, "seconds": round(seconds, 1), "exit_code": process.returncode, "args": args}
                )
                + "\n"
            )
        if process.returncode != 0:
            raise RuntimeError(f"{job.key} exited with {process.returncode} after {seconds:.0f} s (logs/{job.key}.log)")
        return Path(stdout.strip())

    def out_of_memory(self, key: str) -> bool:
        """Whether the stage's last run ended with the GPU out of memory (its log's last error line)."""
        return "OutOfMemoryError" in (last_error(self.root / "logs" / f"{key}.log") or "")

    def stop(self) -> None:
        for key, process in list(self.running.items()):
            if key not in self.stopped:
                self.stopped.add(key)
                process.send_signal(signal.SIGTERM)


MEMORY_RETRIES = 3  # times a stage that ran out of GPU memory beside other stages is started again


def execute(
    jobs: list[Job], root: Path, workers: int, budget_s: float, runner: Runner | None = None
) -> dict[str, Path]:
    """Run ``jobs`` in dependency order, ``workers`` at a time; after ``budget_s`` seconds start nothing new and
    stop what runs. A stage that runs out of GPU memory beside other stages starts again (resuming its checkpoint)
    once another stage has ended (at once where none still runs), up to MEMORY_RETRIES times, and from then on at
    most one stage fewer than the most it ran beside (at least one), so that stages larger than ``workers`` allows
    for stop crowding each other out of the GPU, and stages of one crowd that run out of memory together lower the
    limit once. The artifact path of every job that is done."""
    paths = {job.key: path for job in jobs if (path := published(root, job.key)) is not None}
    failed: set[str] = set()
    runner = runner or Runner(root, max(1, (os.cpu_count() or 1) // workers))
    deadline = time.monotonic() + budget_s
    futures: dict[Future[Path], Job] = {}
    ended = 0  # stages that have ended so far
    held: dict[str, int] = {}  # stage out of memory -> stages ended when it was; it waits for one more to end
    memory_retries: dict[str, int] = {}
    limit = workers  # stages at once: below the crowd a stage ran out of GPU memory in, once it has
    crowds: dict[Future[Path], int] = {}  # the most stages each running stage has run beside (itself included)
    beside: dict[Future[Path], set[str]] = {}  # the stages each running stage has run beside
    out_of_memory: set[str] = set()  # stages that ran out of GPU memory beside others
    with ThreadPoolExecutor(workers) as pool:
        while True:
            open_jobs = [
                job for job in jobs if job.key not in paths and job.key not in failed and job not in futures.values()
            ]
            for job in open_jobs:
                if any(need in failed for need in job.needs):
                    failed.add(job.key)
                elif (
                    time.monotonic() < deadline
                    and len(futures) < limit
                    and all(need in paths for need in job.needs)
                    and held.get(job.key, -1) < ended
                ):
                    futures[pool.submit(runner, job, paths)] = job
                    crowds.update({running: max(crowds.get(running, 0), len(futures)) for running in futures})
                    for running in futures:
                        beside.setdefault(running, set()).update(
                            futures[other].key for other in futures if other is not running
                        )
            if not futures:
                return paths
            remaining = deadline - time.monotonic()
            finished, _ = wait(
                futures, timeout=max(1.0, remaining) if remaining < 1e6 else None, return_when=FIRST_COMPLETED
            )
            if time.monotonic() >= deadline:
                runner.stop()
            for future in finished:
                job, crowd, neighbours = futures.pop(future), crowds.pop(future), beside.pop(future, set())
                ended += 1
                try:
                    paths[job.key] = future.result()
                except RuntimeError as error:
                    print(f"failed: {error}", file=sys.stderr, flush=True)
                    if time.monotonic() >= deadline:
                        continue  # stopped by the budget: the next invocation resumes it
                    retries = memory_retries.get(job.key, 0)
                    # others still ran, or one it ran beside ran out too (their memory is free now): it may fit
                    crowded = bool(futures) or len(finished) > 1 or bool(neighbours & out_of_memory)
                    if crowded and retries < MEMORY_RETRIES and runner.out_of_memory(job.key):
                        memory_retries[job.key] = retries + 1
                        out_of_memory.add(job.key)
                        if futures and len(finished) == 1:  # others still hold their memory: wait for one to end
                            held[job.key] = ended
                        limit = max(1, min(limit, crowd - 1))  # the crowd it ran in did not fit
                        print(
                            f"{job.key} ran out of GPU memory beside other stages: it starts again once one ends; "
                            f"at most {limit} stages at once from now on",
                            file=sys.stderr,
                            flush=True,
                        )
                        continue
                    if job.fallback:
                        print(f"retrying {job.key} with {' '.join(job.fallback)}", file=sys.stderr, flush=True)
                        jobs[jobs.index(job)] = job.retried()
                    else:
                        failed.add(job.key)


def train_seconds(root: Path, keys: list[str]) -> float:
    """Wall seconds of the given jobs over every invocation (a resumed stage counts each part)."""
    log = root / "jobs.jsonl"
    entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return sum(entry["seconds"] for entry in entries if entry["key"] in keys)


def speed_confusion(speed: dict[str, Any]) -> dict[str, dict[str, int]]:
    """An eval's speed confusion matrix as {true action: {answer: frames}} (answers include "invalid")."""
    return {
        truth: dict(zip(speed["confusion_columns"], counts, strict=False))
        for truth, counts in zip(speed["classes"], speed["confusion_matrix"], strict=False)
    }


def braking_share(closed: Path) -> float:
    """The share of a closed-loop eval's decisions whose plan slows down (DECELERATE or STOP)."""
    decisions = [json.loads(line) for line in (closed / "decisions.jsonl").read_text().splitlines() if line]
    return sum(decision["plan"][0] in BRAKING for decision in decisions) / max(1, len(decisions))


def scores(root: Path, paths: dict[str, Path], row: str, seed: int, closed_loop: bool = True) -> dict[str, Any] | None:
    """One trained row's training metrics, open-loop metrics (test split) and, with ``closed_loop``, closed-loop
    metrics (model and expert), or None while its evaluations are not all done."""
    opened, closed = paths.get(f"open-{row}-s{seed}"), paths.get(f"closed-{row}-s{seed}")
    if opened is None or (closed_loop and closed is None):
        return None
    metrics = json.loads((opened / "metrics.json").read_text())
    trained = paths[f"{row}-s{seed}"]
    start = f"{RL_START[row]}-s{seed}" if row in RL_START else None  # GRPO after an SFT row: that SFT counts
    chain = [f"{row}-s{seed}", *([start] if start else [])]
    start_eval = paths.get(f"open-{start}") if start else None
    all_rewards_eval = paths.get(f"open-{ALL_REWARDS[row]}-s{seed}") if row in ALL_REWARDS else None
    sampled, start_sampled = paths.get(f"sampled-{row}-s{seed}"), paths.get(f"sampled-{start}") if start else None
    val, start_val = paths.get(f"val-{row}-s{seed}"), paths.get(f"val-{start}") if start else None
    return {
        "train_wall_s": round(train_seconds(root, chain), 1),
        "artifact": str(trained.relative_to(root)),
        "planning_accuracy": metrics["planning_accuracy"],
        # each row in the format it was trained for: the answer-only rows answer without <think>
        "format_valid_rate": metrics["answer_only_format_rate" if row.startswith(ANSWER_ONLY) else "format_valid_rate"],
        "speed_macro_f1": metrics["speed"]["macro_f1"],
        "path_macro_f1": metrics["path"]["macro_f1"],
        "speed_f1": {a: v["f1"] for a, v in metrics["speed"]["per_class"].items()},
        "path_f1": {a: v["f1"] for a, v in metrics["path"]["per_class"].items()},
        "speed_confusion": speed_confusion(metrics["speed"]),
        # on simulator frames: where the plans are right, scenario by scenario
        **(
            {"by_scenario": {name: group["planning_accuracy"] for name, group in metrics["by_scenario"].items()}}
            if "by_scenario" in metrics
            else {}
        ),
        **(_closed_loop_scores(closed) if closed_loop and closed is not None else {}),
        "train_metrics": json.loads((trained / "manifest.json").read_text())["metrics"],
        "eval_artifacts": [str(path.relative_to(root)) for path in (opened, closed) if path is not None],
        **(
            {
                "gain_over_sft": eval_gain(start_eval, opened),
                "f1_drops": f1_drops(
                    json.loads((start_eval / "metrics.json").read_text()), metrics, (start_eval, opened)
                ),
            }
            if start_eval
            else {}
        ),
        **({"gain_over_all_rewards": eval_gain(all_rewards_eval, opened)} if all_rewards_eval else {}),
        # the same model planning every frame with one input changed: what that input earns
        **{
            key: value
            for prefix, control in INPUT_CONTROLS.items()
            if (scored := paths.get(f"{prefix}-{row}-s{seed}")) is not None
            for key, value in (
                (control.accuracy_key, json.loads((scored / "metrics.json").read_text())["planning_accuracy"]),
                (control.gain_key, eval_gain(scored, opened)),
            )
        },
        # the validation split (--val-split): its accuracy, and a GRPO row's gain over its SFT there
        **(
            {"val_planning_accuracy": json.loads((val / "metrics.json").read_text())["planning_accuracy"]}
            if val
            else {}
        ),
        **({"val_gain_over_sft": eval_gain(start_val, val)} if val and start_val else {}),
        # the same on each frame's first sampled answer, the decoding of the paper's released RL evaluation
        **({"sampled_gain_over_sft": eval_gain(start_sampled, sampled)} if sampled and start_sampled else {}),
        # as the released scripts compare the two: the SFT model greedy (its saved generation settings), the RL
        # model's first sampled answer, both by the released rule
        **(
            {"released_protocol_gain": eval_gain(start_eval, sampled, True)}
            if sampled and start_eval and row not in CONTROLS.values()
            else {}
        ),
        **_sampled_scores(metrics, sampled, answer_only=row.startswith(ANSWER_ONLY)),
    }


F1_DROP = 0.05  # #19's bar: no class's F1 more than this below the SFT row the RL row starts from


def f1_drops(
    before: dict[str, Any], after: dict[str, Any], evals: tuple[Path, Path] | None = None
) -> dict[str, list[float]]:
    """``{action: [F1 before, F1 after]}`` for the speed and path classes whose F1 fell by more than F1_DROP from
    the starting SFT row's open-loop metrics (``before``) to this row's (empty where none did). With ``evals`` (the
    two `eval` artifacts), each entry also holds the paired bootstrap 95 % interval of the change: a class with few
    frames can cross the bar on one or two of them."""
    drops = {
        (head, action): [round(start["f1"], 4), round(after[head]["per_class"][action]["f1"], 4)]
        for head in ("speed", "path")
        for action, start in before[head]["per_class"].items()
        if start["f1"] - after[head]["per_class"][action]["f1"] > F1_DROP
    }
    if evals is not None:  # each head's answers read once per evaluation
        answers = {head: [head_answers(path, head) for path in evals] for head in {head for head, _ in drops}}
        episodes = frame_episodes(evals[0]) or None  # simulator frames: resample whole episodes
        for (head, action), values in drops.items():
            change = f1_change(*answers[head], action, episodes)
            values += [change["low"], change["high"]]
    return {action: values for (_, action), values in drops.items()}


def f1_drop_text(drops: dict[str, list[float]]) -> str:
    """The classes of :func:`f1_drops` as one cell: 'KEEP 0.86→0.75 [low, high], ...' (the interval where known),
    or 'none'."""
    cells = []
    for action, values in drops.items():
        interval = f" [{values[2]:+.2f}, {values[3]:+.2f}]" if values[2:] else ""
        cells.append(f"{action} {values[0]:.2f}→{values[1]:.2f}{interval}")
    return ", ".join(cells) or "none"


def _closed_loop_scores(closed: Path) -> dict[str, Any]:
    """A closed-loop eval's overall metrics for the model and the expert beside it, and the model's braking share."""
    drivers = json.loads((closed / "closed_loop.json").read_text())["drivers"]
    return {
        "closed_loop": drivers["model"]["overall"],
        "closed_loop_braking_share": round(braking_share(closed), 4),
        "expert_closed_loop": drivers["expert"]["overall"],
    }


def _sampled_scores(metrics: dict[str, Any], sampled: Path | None, answer_only: bool) -> dict[str, Any]:
    """The simulator's verdicts on a row's answers (a judged data set), and once its K-sample evaluation is done,
    their verdicts, the reward signal GRPO would start from there, in the format the row was trained for, and the
    first sampled answer scored both ways (``protocols``: the paper's released evaluation of its RL model samples
    at temperature 1 and scores the first answer by the released code's rule)."""
    scored = {"judged": metrics["judged"]} if "judged" in metrics else {}
    protocols = {}
    if "released_code_accuracy" in metrics:  # evaluations from before eval reported it have none
        protocols["released_code_greedy"] = metrics["released_code_accuracy"]
    if sampled is not None:
        sampled_metrics = json.loads((sampled / "metrics.json").read_text())
        if "judged" in metrics:
            scored["judged_sampled"] = sampled_metrics["judged"]
        if "reward_signal" in sampled_metrics:  # evaluations from before eval reported it have none
            scored["reward_signal"] = sampled_metrics["reward_signal"]["answer_only" if answer_only else "reasoning"]
        protocols["sampled_exact"] = sampled_metrics["planning_accuracy"]
        if "released_code_accuracy" in sampled_metrics:
            protocols["released_code_sampled"] = sampled_metrics["released_code_accuracy"]
    return scored | ({"protocols": protocols} if protocols else {})


def cell(values: list[float], fmt: str = "{:.3f}") -> str:
    """The mean, with the spread (min-max) where there are several values."""
    text = fmt.format(statistics.fmean(values))
    return text + (f" ({fmt.format(min(values))}–{fmt.format(max(values))})" if len(values) > 1 else "")


def seeds_pooled_gains(
    paths: dict[str, Path],
    results: dict[str, dict[int, dict[str, Any]]],
    against: dict[str, str] = RL_START,
    split: str = "open",
) -> dict[str, dict[str, float | int]]:
    """Each row's gain over the row ``against`` names for it (by default: a GRPO row's over the SFT row it starts
    from), pooled over its seeds (`bench/pooled_gain.py`: the seeds share the test frames, which the bootstrap
    resamples once for all of them), where it has two seeds or more and each has both open-loop evals (``split``
    "val": both validation-split evals)."""
    pooled = {}
    for row, by_seed in results.items():
        if row not in against:
            continue
        evals = [
            (paths.get(f"{split}-{against[row]}-s{seed}"), paths.get(f"{split}-{row}-s{seed}")) for seed in by_seed
        ]
        if len(evals) > 1 and all(start and run for start, run in evals):
            episodes = frame_episodes(evals[0][0]) or None  # simulator frames: resample whole episodes
            pooled[row] = pooled_gain(
                [(plan_outcomes(start), plan_outcomes(run)) for start, run in evals], episodes=episodes
            )
    return pooled


POOLED_GAIN_COLUMN = "gain over its SFT, seeds pooled [95% CI]"
VAL_ACCURACY_COLUMN = "planning accuracy, validation split"
VAL_GAIN_COLUMN = "gain over its SFT on the validation split [95% CI], per seed"
VAL_POOLED_COLUMN = "gain over its SFT on the validation split, seeds pooled [95% CI]"
ALL_REWARDS_COLUMN = "against SFT + RL with all four rewards [95% CI], per seed"
ALL_REWARDS_POOLED_COLUMN = "against SFT + RL with all four rewards, seeds pooled [95% CI]"


def summary_rows(
    results: dict[str, dict[int, dict[str, Any]]],
    pooled: dict[str, dict[str, float | int]] | None = None,
    pooled_against_all_rewards: dict[str, dict[str, float | int]] | None = None,
    pooled_on_val: dict[str, dict[str, float | int]] | None = None,
) -> list[dict[str, Any]]:
    """One table row per configuration: the mean over its seeds, with the spread where there are several (and a
    GRPO row's gain pooled over its seeds, on the test split and with --val-split on the validation split, a reward
    ablation's difference from the row with all four rewards per seed and pooled, from :func:`seeds_pooled_gains`)."""
    pooled, against_all, on_val = pooled or {}, pooled_against_all_rewards or {}, pooled_on_val or {}
    rows = []
    for row, by_seed in results.items():
        runs = [by_seed[seed] for seed in sorted(by_seed)]
        rows.append(
            {
                "configuration": ROW_TITLES[row],
                "seeds": ", ".join(str(seed) for seed in sorted(by_seed)),
                "planning accuracy": cell([r["planning_accuracy"] for r in runs]),
                "speed macro F1": cell([r["speed_macro_f1"] for r in runs]),
                "path macro F1": cell([r["path_macro_f1"] for r in runs]),
                "format valid": cell([r["format_valid_rate"] for r in runs]),
                **_closed_loop_cells([r.get("closed_loop") for r in runs]),
                "train s": cell([r["train_wall_s"] for r in runs], "{:.0f}"),
                **{
                    title: " / ".join(_gain_text(r[key]) for r in runs) if all(key in r for r in runs) else "–"
                    for title, key in GAIN_COLUMNS.items()
                },
                POOLED_GAIN_COLUMN: _pooled_text(pooled[row]) if row in pooled else "–",
                ALL_REWARDS_POOLED_COLUMN: _pooled_text(against_all[row]) if row in against_all else "–",
                VAL_ACCURACY_COLUMN: (
                    cell([r["val_planning_accuracy"] for r in runs])
                    if all("val_planning_accuracy" in r for r in runs)
                    else "–"
                ),
                VAL_POOLED_COLUMN: _pooled_text(on_val[row]) if row in on_val else "–",
                F1_DROP_COLUMN: (
                    " / ".join(f1_drop_text(r["f1_drops"]) for r in runs) if all("f1_drops" in r for r in runs) else "–"
                ),
                **{
                    control.accuracy_column: (
                        cell([r[control.accuracy_key] for r in runs])
                        if all(control.accuracy_key in r for r in runs)
                        else "–"
                    )
                    for control in INPUT_CONTROLS.values()
                },
                **_optional_cells(runs),
            }
        )
    # the expert drives each seed's simulator seeds: one per seed, from any row that has that seed
    experts = list(
        {
            seed: run["expert_closed_loop"]
            for by_seed in results.values()
            for seed, run in by_seed.items()
            if "expert_closed_loop" in run
        }.values()
    )
    if experts:
        rows.append(
            {
                "configuration": "expert driver (labels)",
                "seeds": "–",
                "planning accuracy": "–",
                "speed macro F1": "–",
                "path macro F1": "–",
                "format valid": "–",
                **_closed_loop_cells(experts),
                "unparsed plans": "–",
                "train s": "–",
                **dict.fromkeys(GAIN_COLUMNS, "–"),
                POOLED_GAIN_COLUMN: "–",
                ALL_REWARDS_POOLED_COLUMN: "–",
                F1_DROP_COLUMN: "–",
            }
        )
    return rows


CLOSED_LOOP_COLUMNS = (
    "collisions",
    "collisions, seeds pooled [95% CI]",
    "route completion",
    "speed m/s",
    "unparsed plans",
)


def _closed_loop_cells(overalls: list[dict[str, Any] | None]) -> dict[str, str]:
    """The closed-loop columns of one table row from each seed's overall metrics; "–" where a seed has none (a run
    with --episodes 0)."""
    known = [overall for overall in overalls if overall is not None]
    if not known or len(known) < len(overalls):
        return dict.fromkeys(CLOSED_LOOP_COLUMNS, "–")
    return {
        "collisions": cell([o["collision_rate"] for o in known], "{:.2f}"),
        "collisions, seeds pooled [95% CI]": pooled_collisions(known),
        "route completion": cell([o["route_completion_rate"] for o in known], "{:.2f}"),
        "speed m/s": cell([o["mean_speed_mps"] for o in known], "{:.1f}"),
        "unparsed plans": cell([o["parse_failure_rate"] for o in known], "{:.2f}"),
    }


def pooled_collisions(overalls: list[dict[str, Any]]) -> str:
    """The collision rate over every episode of a row's seeds (each seed drives its own simulator seeds), with
    its 95 % Wilson interval, e.g. ``0.42 [0.29, 0.56] of 50``."""
    episodes = sum(overall["episodes"] for overall in overalls)
    collisions = sum(round(overall["collision_rate"] * overall["episodes"]) for overall in overalls)
    low, high = wilson_interval(collisions, episodes)
    return f"{collisions / max(1, episodes):.2f} [{low:.2f}, {high:.2f}] of {episodes}"


SAMPLED_GAIN_COLUMNS = {  # column: the run's key of a paired gain over the SFT row it starts from, sampled
    "gain on the first sampled answer [95% CI], per seed": "sampled_gain_over_sft",
    "gain as the released scripts compare [95% CI], per seed": "released_protocol_gain",
}
IMAGE_GAIN_COLUMN = "own images over other frames' [95% CI], per seed"
SHUFFLED_ACCURACY_COLUMN = "planning accuracy, other frames' images"
PROMPT_GAIN_COLUMN = "own prompt over the control prompt [95% CI], per seed"
PROMPT_ACCURACY_COLUMN = "planning accuracy, the control prompt"


class InputControl(NamedTuple):
    """Where a control scoring (one input changed) lands: the run's accuracy and paired-gain keys, their columns."""

    accuracy_key: str
    gain_key: str
    accuracy_column: str
    gain_column: str


INPUT_CONTROLS = {  # job prefix: its InputControl
    "shuffled": InputControl(
        "shuffled_images_accuracy", "gain_over_shuffled_images", SHUFFLED_ACCURACY_COLUMN, IMAGE_GAIN_COLUMN
    ),
    "prompt": InputControl(
        "control_prompt_accuracy", "gain_over_control_prompt", PROMPT_ACCURACY_COLUMN, PROMPT_GAIN_COLUMN
    ),
}
GAIN_COLUMNS = {  # column: the run's key of a paired gain (over the SFT row it starts from, or another row)
    "gain over its SFT [95% CI], per seed": "gain_over_sft",
    **SAMPLED_GAIN_COLUMNS,
    ALL_REWARDS_COLUMN: "gain_over_all_rewards",
    VAL_GAIN_COLUMN: "val_gain_over_sft",
    **{control.gain_column: control.gain_key for control in INPUT_CONTROLS.values()},
}


F1_DROP_COLUMN = f"classes whose F1 fell > {F1_DROP} below its SFT [95% CI of the change], per seed"


def _gain_text(gain: dict[str, float]) -> str:
    return interval_text(gain["difference"], gain["low"], gain["high"])


def _pooled_text(gain: dict[str, float | int]) -> str:
    return interval_text(gain["gain"], gain["low"], gain["high"])


JUDGED_COLUMNS = {  # column: (metrics key, key inside it)
    "acceptable (sim)": ("judged", "acceptable_rate"),
    "2+ acceptable of K": ("judged_sampled", "two_acceptable_plans_rate"),
    "acceptable plans of K": ("judged_sampled", "mean_distinct_acceptable_plans"),
}
SAMPLED_COLUMNS = {
    "groups with reward signal of K": ("reward_signal", "groups_with_signal_rate"),
    "first sampled answer: planning accuracy": ("protocols", "sampled_exact"),
    "first sampled answer: released code's rule": ("protocols", "released_code_sampled"),
}
PROTOCOL_COLUMNS = {"released code's rule (greedy)": ("protocols", "released_code_greedy")}


def _optional_cells(runs: list[dict[str, Any]]) -> dict[str, str]:
    """The judged, sampled and released-rule columns a row has on every seed, as table cells."""
    return {
        column: cell([run[group][key] for run in runs])
        for column, (group, key) in {**PROTOCOL_COLUMNS, **JUDGED_COLUMNS, **SAMPLED_COLUMNS}.items()
        if all(key in run.get(group, {}) for run in runs)
    }


def mean_f1(results: dict[str, dict[int, dict[str, Any]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per-class F1 of every configuration, mean over its seeds: ``{title: {head: {action: F1}}}``."""
    return {
        ROW_TITLES[row]: {
            head: {
                action: statistics.fmean(run[f"{head}_f1"][action] for run in by_seed.values())
                for action in next(iter(by_seed.values()))[f"{head}_f1"]
            }
            for head in ("speed", "path")
        }
        for row, by_seed in results.items()
    }


def per_class_rows(results: dict[str, dict[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per-class F1 of every configuration (mean over its seeds), as table rows."""
    return [
        {"configuration": title, **{action: f"{value:.2f}" for head in f1.values() for action, value in head.items()}}
        for title, f1 in mean_f1(results).items()
    ]


def model_description(args: argparse.Namespace) -> str:
    """What each seed's model starts from, for the report's header."""
    vision = f"{args.dimensions or 'tiny'} {' '.join(args.model_set)}".strip()
    if args.language:
        return f"{args.language} pretrained language model behind a random vision tower ({vision})"
    return f"{vision} from random weights"


def non_negative(text: str) -> int:
    """An argparse type: a whole number, 0 or more."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def training_settings_problem(args: argparse.Namespace) -> str | None:
    """Why the SFT rows' settings (--scale, --sft-epochs, --sft-set) are no valid `sft` config, the GRPO rows'
    (--grpo-set) no valid `grpo` config or the supervised controls' (--control-set) no valid `sft` config, before
    anything runs; None when they are."""
    from alphadrive_cli.config.resolve import resolve_config
    from alphadrive_cli.config.schemas import GrpoConfig, SftConfig
    from alphadrive_cli.errors import BadInput

    checks = (
        ("--sft-set", "sft", SftConfig, [f"epochs={args.sft_epochs}", *args.sft_set]),
        ("--grpo-set", "grpo", GrpoConfig, list(args.grpo_set)),
        ("--control-set", "sft", SftConfig, list(args.control_set)),
    )
    for option, stage, schema, overrides in checks:
        try:
            resolve_config(stage, schema, args.scale, overrides=overrides)
        except BadInput as exc:
            return f"{option}: {exc}"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("runs/ablation"), help="artifact root")
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2, help="simulator worker processes of `data sim`")
    parser.add_argument(
        "--data-seed", type=int, default=0, help="`data sim --seed`: another simulator seed draws other episodes"
    )
    parser.add_argument(
        "--data-set", action="append", default=[], help="`data sim --set` (repeatable), e.g. render.image_size=224"
    )
    parser.add_argument(
        "--trace-set",
        action="append",
        default=[],
        help="`distill --set` of the grounded traces (repeatable), e.g. grounded_facts=one_frame",
    )
    parser.add_argument("--dimensions", type=Path, default=None, help="model dimensions JSON [default: the tiny model]")
    parser.add_argument(
        "--language",
        default=None,
        help="start from `models build --language L` (e.g. smollm2-135m: pretrained language weights, a random "
        "vision tower of --dimensions' vision_config) instead of `models tiny`",
    )
    parser.add_argument(
        "--model-set", action="append", default=[], help="`models tiny --set` (repeatable), e.g. max_pixels=50176"
    )
    parser.add_argument("--scale", default="tiny", help="scale preset of the training and eval stages")
    parser.add_argument("--sft-epochs", type=float, default=3)
    parser.add_argument(
        "--sft-set",
        action="append",
        default=[],
        help="`sft --set` (repeatable) for the SFT rows trained from the built model, the answer-only row too (not "
        "the supervised controls, which continue them), e.g. perception_examples=true; checked before anything runs",
    )
    parser.add_argument(
        "--sft-share", type=float, default=1.0, help="traces for this share of each split (distill --set share=)"
    )
    parser.add_argument("--grpo-steps", type=int, default=40, help="-1: the preset's epochs")
    parser.add_argument(
        "--grpo-set",
        action="append",
        default=[],
        help="`grpo --set` (repeatable) for every GRPO row, e.g. rewards.action_weights.DECELERATE=1.0; checked "
        "before anything runs. Published stages are not run again, so a changed setting needs its own --root",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--rows", nargs="+", choices=ROWS, default=list(ROWS), help="the main rows to train and score [all]"
    )
    parser.add_argument("--reward-ablation", action="store_true", help="also SFT + RL without each reward (every seed)")
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="every sft and grpo stage on deterministic kernels (`--set deterministic=true`), so repeats train alike",
    )
    parser.add_argument(
        "--supervised-control",
        action="store_true",
        help="also, beside each SFT + RL row, its SFT continued on every train label for as many frames as RL sees",
    )
    parser.add_argument(
        "--control-set",
        action="append",
        default=[],
        help="`sft --set` (repeatable) for the supervised controls alone, e.g. learning_rate=2e-5 (RL's step size, "
        "where the control otherwise restarts at the preset's SFT rate); checked before anything runs",
    )
    parser.add_argument(
        "--judge", action="store_true", help="judge every plan of the data (data sim --judge), add the safety row"
    )
    parser.add_argument("--samples", type=int, default=0, help="with K > 1, also score K sampled answers per frame")
    parser.add_argument(
        "--image-control",
        action="store_true",
        help="also score every row with each test frame planned from another frame's images (eval images=shuffled)",
    )
    parser.add_argument(
        "--val-split",
        action="store_true",
        help="also score every row on the validation split (eval --split val), each RL row's gain over its SFT there",
    )
    parser.add_argument(
        "--prompt-control",
        metavar="NAME",
        default=None,
        help="also score every row with the student prompt NAME (eval prompt=NAME), e.g. student-v1 beside "
        "--sft-set prompt=student-scene-v1: what the stated scene earns",
    )
    parser.add_argument(
        "--episodes", type=non_negative, default=2, help="closed-loop episodes per scenario (0: open loop only)"
    )
    parser.add_argument("--seconds", type=float, default=15, help="closed-loop seconds per episode")
    parser.add_argument("--jobs", type=int, default=1, help="commands run at the same time")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=float("inf"),
        help="stop (resumably) after this many seconds; 0 runs nothing and reports what is published",
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None, help="write the per-class F1 of every row as a PNG")
    args = parser.parse_args()
    if problem := data_mismatch(args.root, args.frames, args.data_seed) or training_settings_problem(args):
        parser.error(problem)
    if args.control_set and not args.supervised_control:
        parser.error("--control-set sets the supervised controls' training: add --supervised-control")
    if args.prompt_control and args.prompt_control not in STUDENT_PROMPTS:
        parser.error(f"--prompt-control {args.prompt_control}: no such student prompt ({', '.join(STUDENT_PROMPTS)})")
    args.root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    paths = execute(plan(args), args.root, args.jobs, args.budget_s)
    results: dict[str, dict[int, dict[str, Any]]] = {}
    for row in (*ROWS, *CONTROLS.values(), SAFETY_ROW, *REWARD_ABLATIONS):
        for seed in args.seeds:
            if (scored := scores(args.root, paths, row, seed, closed_loop=args.episodes > 0)) is not None:
                results.setdefault(row, {})[seed] = scored
    columns = (
        "configuration",
        "seeds",
        "planning accuracy",
        "speed macro F1",
        "path macro F1",
        "format valid",
        *CLOSED_LOOP_COLUMNS,
        "train s",
        "gain over its SFT [95% CI], per seed",
        POOLED_GAIN_COLUMN,
        *((ALL_REWARDS_COLUMN, ALL_REWARDS_POOLED_COLUMN) if args.reward_ablation else ()),
        F1_DROP_COLUMN,
        *PROTOCOL_COLUMNS,
        *(JUDGED_COLUMNS if args.judge else ()),
        *((*SAMPLED_COLUMNS, *SAMPLED_GAIN_COLUMNS) if args.samples > 1 else ()),
        *(
            column
            for prefix in input_controls(args)
            for column in (INPUT_CONTROLS[prefix].accuracy_column, INPUT_CONTROLS[prefix].gain_column)
        ),
        *((VAL_ACCURACY_COLUMN, VAL_GAIN_COLUMN, VAL_POOLED_COLUMN) if args.val_split else ()),
    )
    print(
        f"data: {args.frames} simulator frames (seed {args.data_seed}), grounded traces on {args.sft_share:.0%}; "
        f"model: {model_description(args)}; "
        f"scale preset {args.scale}; SFT {args.sft_epochs} epochs{''.join(f', {item}' for item in args.sft_set)}, "
        f"GRPO {args.grpo_steps} steps{''.join(f', {item}' for item in args.grpo_set)}"
        f"{'; plans judged by the simulator' if args.judge else ''}; "
        f"closed loop: {f'5 scenarios x {args.episodes} seeds x {args.seconds} s' if args.episodes else 'none'}; "
        f"seeds {args.seeds}; this invocation {time.perf_counter() - started:.0f} s"
    )
    pooled = seeds_pooled_gains(paths, results)
    against_all = seeds_pooled_gains(paths, results, ALL_REWARDS)
    on_val = seeds_pooled_gains(paths, results, split="val")
    report(
        columns,
        summary_rows(results, pooled, against_all, on_val),
        args.out,
        **run_facts("bench.ablation", started),
        seeds_pooled_gains=pooled,
        seeds_pooled_against_all_rewards=against_all,
        seeds_pooled_gains_on_val=on_val,
        frames=args.frames,
        data_seed=args.data_seed,
        dimensions=str(args.dimensions or "tiny"),
        model_set=args.model_set,
        scale=args.scale,
        sft_epochs=args.sft_epochs,
        sft_set=args.sft_set,
        sft_share=args.sft_share,
        grpo_steps=args.grpo_steps,
        grpo_set=args.grpo_set,
        main_rows=args.rows,
        seeds=args.seeds,
        judge=args.judge,
        samples=args.samples,
        episodes=args.episodes,
        seconds=args.seconds,
        results={row: {str(seed): run for seed, run in by_seed.items()} for row, by_seed in results.items()},
    )
    if results:
        per_class = per_class_rows(results)
        report(list(per_class[0]), per_class, None)
    if results and args.plot is not None:
        f1_comparison_png(mean_f1(results), "per-class F1 on the test split (mean over each row's seeds)", args.plot)


if __name__ == "__main__":
    run_main(main)
