"""The benchmarks' stage scheduler (bench/ablation.py's execute) and the recipe study's comparison columns."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest

from bench import ablation, recipe_study
from bench.ablation import Job, Runner, execute


class ScriptedRunner(Runner):
    """Runs no command: each stage sleeps, or fails as the GPU running out of memory does, as scripted."""

    def __init__(self, root: Path, seconds: dict[str, float], out_of_memory_runs: dict[str, int]) -> None:
        super().__init__(root, threads=1)
        self.seconds = seconds
        self.out_of_memory_runs = out_of_memory_runs  # stage -> how many of its first runs fail so
        self.events: list[tuple[str, str]] = []

    def __call__(self, job: Job, paths: dict[str, Path]) -> Path:
        self.events.append(("start", job.key))
        time.sleep(self.seconds.get(job.key, 0.0))
        if self.out_of_memory_runs.get(job.key, 0) > 0:
            self.out_of_memory_runs[job.key] -= 1
            with (self.root / "logs" / f"{job.key}.log").open("a") as log:
                log.write("error: OutOfMemoryError: CUDA out of memory. Tried to allocate 652.00 MiB.\n")
            self.events.append(("failed", job.key))
            raise RuntimeError(f"{job.key} exited with 1")
        self.events.append(("end", job.key))
        return self.root / job.key


def most_at_once_after_failures(events: list[tuple[str, str]], failures: int) -> int:
    """The most stages that ran at once after the given number of failures (0 if there were fewer)."""
    running, most, failed = 0, 0, 0
    for kind, _ in events:
        running += {"start": 1, "end": -1, "failed": -1}[kind]
        failed += kind == "failed"
        most = max(most, running) if failed >= failures else 0
    return most


def test_a_stage_out_of_gpu_memory_beside_others_starts_again_once_one_ends(tmp_path: Path) -> None:
    jobs = [Job("slow", ("x",)), Job("greedy", ("x",)), Job("after", ("x", "@greedy"))]
    runner = ScriptedRunner(tmp_path, {"slow": 0.5}, {"greedy": 1})
    paths = execute(jobs, tmp_path, workers=2, budget_s=float("inf"), runner=runner)
    assert set(paths) == {"slow", "greedy", "after"}
    events = runner.events
    assert events.count(("start", "greedy")) == 2
    second_start = len(events) - 1 - events[::-1].index(("start", "greedy"))
    assert events.index(("end", "slow")) < second_start  # it waited for the other stage to free its memory


def test_stages_out_of_gpu_memory_one_after_another_both_start_again(tmp_path: Path) -> None:
    """Two stages run out of memory in turn (2026-12-06, beside another benchmark's stages): the first waits for the
    second, which then finds nothing running; both start again, one at a time, rather than the second failing."""
    jobs = [Job("first", ("x",)), Job("second", ("x",))]
    runner = ScriptedRunner(tmp_path, {"first": 0.05, "second": 0.2}, {"first": 1, "second": 1})
    paths = execute(jobs, tmp_path, workers=2, budget_s=float("inf"), runner=runner)
    assert set(paths) == {"first", "second"}
    assert runner.events.count(("start", "first")) == runner.events.count(("start", "second")) == 2
    assert most_at_once_after_failures(runner.events, 2) == 1


def test_a_stage_out_of_gpu_memory_after_its_neighbours_ended_well_fails(tmp_path: Path) -> None:
    """It ran beside another stage once, but that one ended without running out of memory long before: it ran
    out alone, so starting it again alone would only repeat that."""
    jobs = [Job("long", ("x",)), Job("short", ("x",))]
    runner = ScriptedRunner(tmp_path, {"long": 0.3, "short": 0.05}, {"long": 1})
    paths = execute(jobs, tmp_path, workers=2, budget_s=float("inf"), runner=runner)
    assert set(paths) == {"short"}
    assert runner.events.count(("start", "long")) == 1


def test_after_a_stage_runs_out_of_gpu_memory_one_stage_fewer_runs_at_once(tmp_path: Path) -> None:
    """Three at once until one runs out of memory, then at most two: the GPU held only two of this size."""
    slow = {f"slow{index}": 0.3 for index in range(5)}
    jobs = [Job("greedy", ("x",)), *(Job(key, ("x",)) for key in slow)]
    runner = ScriptedRunner(tmp_path, {"greedy": 0.1, **slow}, {"greedy": 1})
    paths = execute(jobs, tmp_path, workers=3, budget_s=float("inf"), runner=runner)
    assert set(paths) == {"greedy", *slow}
    assert most_at_once_after_failures(runner.events, 1) == 2


def test_a_stage_out_of_gpu_memory_alone_fails_with_what_needs_it(tmp_path: Path) -> None:
    jobs = [Job("greedy", ("x",)), Job("after", ("x", "@greedy"))]
    runner = ScriptedRunner(tmp_path, {}, {"greedy": 1})
    assert execute(jobs, tmp_path, workers=2, budget_s=float("inf"), runner=runner) == {}
    assert runner.events == [("start", "greedy"), ("failed", "greedy")]


def test_retries_for_memory_are_bounded(tmp_path: Path) -> None:
    slow = {f"slow{index}": 0.15 * (index + 1) for index in range(6)}  # six ends, each a chance to start again
    jobs = [Job(key, ("x",)) for key in slow] + [Job("greedy", ("x",))]
    runner = ScriptedRunner(tmp_path, slow, {"greedy": 10})
    paths = execute(jobs, tmp_path, workers=7, budget_s=float("inf"), runner=runner)
    assert set(paths) == set(slow)
    assert runner.events.count(("start", "greedy")) == 1 + ablation.MEMORY_RETRIES


def _eval(path: Path, right: list[bool], keep_f1: float = 0.5) -> Path:
    path.mkdir(parents=True)
    speed = {"macro_f1": 0.5, "per_class": {"KEEP": {"f1": keep_f1}}}
    route = {"macro_f1": 0.5, "per_class": {"STRAIGHT": {"f1": 1.0}}}
    metrics = {"planning_accuracy": sum(right) / len(right), "format_valid_rate": 1.0, "speed": speed, "path": route}
    metrics["answer_only_format_rate"] = 0.25
    (path / "metrics.json").write_text(json.dumps(metrics))
    rows = [  # every frame KEEP, STRAIGHT; a wrong plan answered STOP
        {
            "id": f"f{index}",
            "plan_correct": value,
            "truth": ["KEEP", "STRAIGHT"],
            "parsed": {"speed": ["KEEP" if value else "STOP"], "path": ["STRAIGHT"]},
        }
        for index, value in enumerate(right)
    ]
    (path / "predictions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _run(path: Path) -> Path:
    path.mkdir(parents=True)
    history = [{"step": 1, "reward": 1.0, "frac_reward_zero_std": 0.25}, {"step": 50, "val/planning_accuracy": 0.5}]
    (path / "log_history.json").write_text(json.dumps(history))
    (path / "manifest.json").write_text(json.dumps({"metrics": {"steps": 50}}))
    return path


def test_each_study_run_is_compared_with_the_reference_configuration_on_the_same_frames(tmp_path: Path) -> None:
    other = "lr2e-5_scale_none"
    paths = {
        "val-sft": _eval(tmp_path / "val-sft", [False] * 40),
        f"rl-{recipe_study.REFERENCE}": _run(tmp_path / "rl-ref"),
        f"val-{recipe_study.REFERENCE}": _eval(tmp_path / "val-ref", [True] * 10 + [False] * 30),
        f"rl-{other}": _run(tmp_path / "rl-other"),
        f"val-{other}": _eval(tmp_path / "val-other", [True] * 30 + [False] * 10),
    }
    rows, _ = recipe_study.summary(tmp_path, paths, [recipe_study.REFERENCE, other])
    by_config = {row["config"]: row for row in rows}
    assert "val_gain_over_reference" not in by_config[recipe_study.REFERENCE]
    assert by_config[other]["val_gain_over_reference"] == 0.5
    low, high = by_config[other]["val_reference_ci95"]
    assert 0 < low <= 0.5 <= high
    assert by_config[other]["val_gain_over_sft"] == 0.75
    # 30 frames' speed answers moved from STOP to KEEP and became right; no path answer moved
    changed = {"frames": 40, "speed": 30, "path": 0, "became_right": 30, "became_wrong": 0}
    assert by_config[other]["val_answers_changed"] == changed
    assert by_config[other]["zero_std_by_quarter"] == [0.25, None, None, None]  # the rollout at step 1 of 50


def test_stages_of_one_crowd_out_of_memory_together_lower_the_limit_once(tmp_path: Path) -> None:
    """Three of four stages started together run out of memory (the last device run): four at once did not fit,
    so three at once is the next try, not one."""
    greedy = {f"greedy{index}": 0.05 * (index + 1) for index in range(3)}
    slow = {f"slow{index}": 0.4 for index in range(4)}
    jobs = [Job("long", ("x",)), *(Job(key, ("x",)) for key in greedy), *(Job(key, ("x",)) for key in slow)]
    runner = ScriptedRunner(tmp_path, {"long": 0.6, **greedy, **slow}, dict.fromkeys(greedy, 1))
    paths = execute(jobs, tmp_path, workers=4, budget_s=float("inf"), runner=runner)
    assert set(paths) == {"long", *greedy, *slow}
    assert most_at_once_after_failures(runner.events, 3) == 3


def test_the_limit_falls_below_the_crowd_a_stage_ran_out_of_memory_in_not_below_the_limit(tmp_path: Path) -> None:
    """Up to four allowed, but only three ready: one of them running out of memory says three do not fit."""
    later = {f"later{index}": 0.2 for index in range(4)}
    jobs = [
        Job("greedy", ("x",)),
        Job("slow0", ("x",)),
        Job("slow1", ("x",)),
        *(Job(key, ("x", "@slow0")) for key in later),
    ]
    runner = ScriptedRunner(tmp_path, {"greedy": 0.1, "slow0": 0.3, "slow1": 0.3, **later}, {"greedy": 1})
    paths = execute(jobs, tmp_path, workers=4, budget_s=float("inf"), runner=runner)
    assert set(paths) == {"greedy", "slow0", "slow1", *later}
    assert most_at_once_after_failures(runner.events, 1) == 2


def test_the_study_can_start_from_the_pretrained_language_model_answer_only_on_other_data() -> None:
    args = argparse.Namespace(
        frames=40,
        workers=2,
        image_size=64,
        data_set=["labels.horizon_s=2.0"],
        trace_set=["grounded_facts=one_frame"],
        data_seed=2,
        seed=1,
        sft_share=0.5,
        judge=False,
        language="smollm2-135m",
        dimensions="configs/models/small-qwen2-vl.json",
        no_reasoning=True,
        scale="tiny",
        sft_epochs=1,
        sft_set=["prompt=student-scene-v1"],
        rl_epochs=0.1,
        rollout=64,
        every=5,
        val_frames=8,
        configs=["lr2e-5", "lr2e-5_scale_none_weights_off"],
    )
    jobs = {job.key: job.args for job in recipe_study.plan(args)}
    assert jobs["data"][:6] == ("data", "sim", "--frames", "40", "--seed", "2")
    assert jobs["sft"][-2:] == ("--set", "prompt=student-scene-v1")
    weights_off = jobs["rl-lr2e-5_scale_none_weights_off"]
    assert "rewards.action_weights.DECELERATE=1.0" in weights_off and "scale_rewards=none" in weights_off
    assert jobs["data"][-4:] == ("--set", "render.image_size=64", "--set", "labels.horizon_s=2.0")
    assert jobs["traces"][-4:] == ("--set", "share=0.5", "--set", "grounded_facts=one_frame")
    assert jobs["model"][:6] == ("models", "build", "--language", "smollm2-135m", "--seed", "1")
    assert ("--set", "seed=1") == jobs["sft"][-4:-2] and "seed=1" in jobs["rl-lr2e-5"]
    assert jobs["model"][-2:] == ("--set", "max_pixels=4096")
    assert "--no-reasoning" in jobs["sft"] and "--no-reasoning" in jobs["rl-lr2e-5"]
    args.language, args.no_reasoning, args.dimensions, args.seed = None, False, "", 0
    jobs = {job.key: job.args for job in recipe_study.plan(args)}
    assert jobs["model"] == ("models", "tiny", "--seed", "0", "--set", "max_pixels=4096")
    assert "--no-reasoning" not in jobs["sft"] + jobs["rl-lr2e-5"]


def test_an_answer_only_study_reports_the_answer_only_format(tmp_path: Path) -> None:
    evaluation = recipe_study.eval_metrics(_eval(tmp_path / "val-sft", [True, False]))
    assert recipe_study.val_scores(evaluation)["val_format_valid_rate"] == 1.0
    assert recipe_study.val_scores(evaluation, answer_only=True)["val_format_valid_rate"] == 0.25
    assert "val_by_scenario" not in recipe_study.val_scores(evaluation)  # frames of no simulator scenario
    evaluation["by_scenario"] = {"highway": {"frames": 2, "planning_accuracy": 0.5}}
    assert recipe_study.val_scores(evaluation)["val_by_scenario"] == {"highway": 0.5}


def test_every_study_configuration_is_a_valid_grpo_config_that_keeps_its_settings() -> None:
    """Each configuration, over the small preset and STUDY_BASE, validates and ends with its own values: a setting
    that the schema refuses in that company, or that another layer overrides, fails here, not on the GPU."""
    from alphadrive_cli.config.resolve import resolve_config
    from alphadrive_cli.config.schemas import GrpoConfig

    def value(config: GrpoConfig, setting: str) -> object:
        found: object = config
        for part in setting.partition("=")[0].split("."):
            found = found[part] if isinstance(found, dict) else getattr(found, part)  # action_weights is a dict
        return found

    for name, sets in recipe_study.CONFIGS.items():
        config = resolve_config("grpo", GrpoConfig, scale="small", overrides=[*recipe_study.STUDY_BASE, *sets])
        alone = resolve_config("grpo", GrpoConfig, overrides=sets)  # the values as the schema reads the settings
        assert all(value(config, setting) == value(alone, setting) for setting in sets), name


def test_the_study_compares_with_the_reference_it_is_given_and_names_classes_below_the_sft_start(
    tmp_path: Path,
) -> None:
    """--reference picks what every other run is compared with (planned run 1 compares with the adopted preset, not
    REFERENCE); a run whose class F1 fell more than 0.05 below the SFT start's says which class, as #19's bar asks."""
    preset, weighted = "lr2e-5_scale_none", "lr2e-5_scale_none_inverse_freq"
    paths = {
        "val-sft": _eval(tmp_path / "val-sft", [False] * 40),
        f"rl-{preset}": _run(tmp_path / "rl-preset"),
        f"val-{preset}": _eval(tmp_path / "val-preset", [True] * 20 + [False] * 20, keep_f1=0.3),
        f"rl-{weighted}": _run(tmp_path / "rl-weighted"),
        f"val-{weighted}": _eval(tmp_path / "val-weighted", [True] * 30 + [False] * 10, keep_f1=0.46),
    }
    rows, _ = recipe_study.summary(tmp_path, paths, [preset, weighted], reference=preset)
    by_config = {row["config"]: row for row in rows}
    assert "val_gain_over_reference" not in by_config[preset]
    assert by_config[weighted]["val_gain_over_reference"] == 0.25
    # the drop comes from the metrics, its interval from the frames' answers (KEEP on none of 40, then on 20)
    assert by_config[preset]["val_classes_below_sft"].startswith("KEEP 0.50→0.30 [+")
    assert by_config[preset]["val_f1_drops"]["KEEP"][:2] == [0.5, 0.3]
    low, high = by_config[preset]["val_f1_drops"]["KEEP"][2:]
    assert 0 < low < 0.6667 < high
    assert by_config[weighted]["val_classes_below_sft"] == "none"  # 0.04 below: within the bar


def test_the_study_checks_its_sft_settings_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "study"
    argv = ["recipe_study", "--root", str(root), "--scale", "tiny", "--sft-set", "no_such_key=1", "--budget-s", "0"]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as stopped:
        recipe_study.main()
    assert stopped.value.code == 2
    assert "--sft-set:" in capsys.readouterr().err and not root.exists()
