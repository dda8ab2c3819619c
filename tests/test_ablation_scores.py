"""bench/ablation.py's per-row scores (speed confusion, closed-loop braking share, training metrics) and F1 summary."""

from __future__ import annotations

import json
import math
from argparse import Namespace
from pathlib import Path

import pytest

from alphadrive_cli.config.resolve import resolve_config
from alphadrive_cli.config.schemas import GrpoConfig, SftConfig
from alphadrive_cli.evaluation.metrics import open_loop_metrics, wilson_interval
from alphadrive_cli.evaluation.paired import answers_changed, gain_over, plan_outcomes
from alphadrive_cli.evaluation.plots import f1_comparison_png
from bench import ablation


def _write(path: Path, name: str, content: object) -> None:
    path.mkdir(parents=True, exist_ok=True)
    lines = "\n".join(map(json.dumps, content)) + "\n" if isinstance(content, list) else json.dumps(content)
    (path / name).write_text(lines)


def _evals(root: Path, outcomes: dict[str, list[bool] | str]) -> dict[str, Path]:
    """An evaluation directory per key whose predictions say whether frames a, b, c, ... were planned right (a list
    of booleans, or a string of 1s and 0s)."""
    paths = {key: root / key for key in outcomes}
    for key, correct in outcomes.items():
        right_or_not = [mark == "1" for mark in correct] if isinstance(correct, str) else correct
        rows = [{"id": frame, "plan_correct": right} for frame, right in zip("abcd", right_or_not, strict=True)]
        _write(paths[key], "predictions.jsonl", rows)
    return paths


def test_scores_count_what_the_model_answered_and_how_often_it_braked(tmp_path: Path) -> None:
    truths = [("DECELERATE", "STRAIGHT"), ("DECELERATE", "STRAIGHT"), ("KEEP", "STRAIGHT"), ("STOP", "STRAIGHT")]
    answers = ["KEEP, STRAIGHT", "DECELERATE, STRAIGHT", "KEEP, STRAIGHT", "none"]
    metrics = open_loop_metrics(truths, [f"<think>t</think><answer>{answer}</answer>" for answer in answers])
    overall = {"collision_rate": 0.5, "route_completion_rate": 0.5, "mean_speed_mps": 10.0, "parse_failure_rate": 0.0}
    paths = {
        "sft_rl-s0": tmp_path / "grpo/sft_rl-s0-v1",
        "open-sft_rl-s0": tmp_path / "eval/open-sft_rl-s0-v1",
        "closed-sft_rl-s0": tmp_path / "eval/closed-sft_rl-s0-v1",
    }
    _write(paths["sft_rl-s0"], "manifest.json", {"metrics": {"first_reward": 1.5, "nonfinite_steps_skipped": []}})
    metrics["by_scenario"] = {"highway": {"frames": 2, "planning_accuracy": 0.5}, "blocked": {"planning_accuracy": 0.5}}
    _write(paths["open-sft_rl-s0"], "metrics.json", metrics)
    _write(
        paths["closed-sft_rl-s0"],
        "closed_loop.json",
        {"drivers": {"model": {"overall": overall}, "expert": {"overall": overall}}},
    )
    _write(
        paths["closed-sft_rl-s0"],
        "decisions.jsonl",
        [
            {"plan": plan}
            for plan in (["KEEP", "STRAIGHT"], ["STOP", "STRAIGHT"], ["KEEP", "LEFT_TURN"], ["DECELERATE", "STRAIGHT"])
        ],
    )

    scored = ablation.scores(tmp_path, paths, "sft_rl", 0)

    assert scored is not None
    assert scored["by_scenario"] == {"highway": 0.5, "blocked": 0.5}
    assert scored["speed_confusion"]["DECELERATE"] == {
        "KEEP": 1,
        "ACCELERATE": 0,
        "DECELERATE": 1,
        "STOP": 0,
        "invalid": 0,
    }
    assert scored["speed_confusion"]["STOP"]["invalid"] == 1
    assert scored["closed_loop_braking_share"] == pytest.approx(0.5)
    assert scored["train_metrics"] == {"first_reward": 1.5, "nonfinite_steps_skipped": []}
    assert scored["planning_accuracy"] == pytest.approx(0.5)
    assert scored["format_valid_rate"] == 1.0
    # the same evaluations as an answer-only row: judged by the format it was trained for, <answer> alone
    answer_only = {key.replace("sft_rl", "sft_no_reasoning_rl"): path for key, path in paths.items()}
    assert ablation.scores(tmp_path, answer_only, "sft_no_reasoning_rl", 0)["format_valid_rate"] == 0.0


def _ablation_args(**overrides: object) -> Namespace:
    values = {
        "frames": 100,
        "workers": 2,
        "data_seed": 0,
        "data_set": [],
        "trace_set": [],
        "dimensions": None,
        "scale": "tiny",
        "sft_epochs": 1.0,
        "sft_set": [],
        "grpo_steps": 4,
        "grpo_set": [],
        "seeds": [0, 1],
        "model_set": [],
        "reward_ablation": False,
        "supervised_control": False,
        "control_set": [],
        "deterministic": False,
        "language": None,
        "judge": False,
        "samples": 0,
        "image_control": False,
        "val_split": False,
        "prompt_control": None,
        "episodes": 1,
        "seconds": 5.0,
        "sft_share": 1.0,
        "rows": list(ablation.ROWS),
    }
    return Namespace(**{**values, **overrides})


def test_judge_adds_the_safety_row_and_sampled_evaluations() -> None:
    plain = {job.key: job for job in ablation.plan(_ablation_args())}
    assert "--judge" not in plain["data"].args and not any("safety" in key or "sampled" in key for key in plain)
    judged = {job.key: job for job in ablation.plan(_ablation_args(judge=True, samples=8))}
    # judged apart, so that the rows train meanwhile; they are scored on the judged copy
    assert judged["judged"].args[:3] == ("data", "judge", "@data") and "--judge" not in judged["data"].args
    for seed in (0, 1):
        # the same GRPO run as SFT + RL, on the judged copy, with the safety reward added
        assert judged[f"sft_rl_safety-s{seed}"].args == (
            *[("@judged" if arg == "@data" else arg) for arg in judged[f"sft_rl-s{seed}"].args],
            "--set",
            "rewards.safety_coef=1.0",
        )
        assert judged[f"sft_rl-s{seed}"].needs == ("data", f"sft_reasoning-s{seed}")
        assert "@judged" in judged[f"open-sft_rl-s{seed}"].args
        for row in ("sft_reasoning", "sft_rl", "sft_rl_safety"):
            assert "samples=8" in judged[f"sampled-{row}-s{seed}"].args
            assert f"open-{row}-s{seed}" in judged and f"closed-{row}-s{seed}" in judged


def test_judged_rows_carry_the_simulators_verdicts(tmp_path: Path) -> None:
    overall = {
        "episodes": 10,
        "collision_rate": 0.1,
        "route_completion_rate": 0.9,
        "mean_speed_mps": 20.0,
        "parse_failure_rate": 0.0,
    }
    metrics = open_loop_metrics([("KEEP", "STRAIGHT")], ["<think>t</think><answer>KEEP, STRAIGHT</answer>"])
    results: dict = {}
    for seed, (greedy, two) in enumerate(((0.8, 0.5), (0.6, 0.3))):
        paths = {
            key: tmp_path / f"s{seed}" / key
            for key in (f"{row}-s{seed}" for row in ("sft_rl", "open-sft_rl", "closed-sft_rl", "sampled-sft_rl"))
        }
        _write(paths[f"sft_rl-s{seed}"], "manifest.json", {"metrics": {}})
        _write(paths[f"open-sft_rl-s{seed}"], "metrics.json", {**metrics, "judged": {"acceptable_rate": greedy}})
        _write(
            paths[f"sampled-sft_rl-s{seed}"],
            "metrics.json",
            {
                "planning_accuracy": two / 2,
                "released_code_accuracy": two,
                "judged": {"two_acceptable_plans_rate": two, "mean_distinct_acceptable_plans": 1.0 + two},
                "reward_signal": {  # a reasoning row: its own format's signal is the one reported
                    "reasoning": {"groups_with_signal_rate": 0.2 + 0.2 * seed},
                    "answer_only": {"groups_with_signal_rate": 0.0},
                },
            },
        )
        closed = {"drivers": {"model": {"overall": overall}, "expert": {"overall": overall}}}
        _write(paths[f"closed-sft_rl-s{seed}"], "closed_loop.json", closed)
        _write(paths[f"closed-sft_rl-s{seed}"], "decisions.jsonl", [{"plan": ["KEEP", "STRAIGHT"]}])
        results.setdefault("sft_rl", {})[seed] = ablation.scores(tmp_path, paths, "sft_rl", seed)
    (row, expert) = ablation.summary_rows(results)
    assert row["acceptable (sim)"] == "0.700 (0.600–0.800)"
    assert row["2+ acceptable of K"] == "0.400 (0.300–0.500)"
    assert row["acceptable plans of K"] == "1.400 (1.300–1.500)"
    assert row["groups with reward signal of K"] == "0.300 (0.200–0.400)"
    assert row["first sampled answer: planning accuracy"] == "0.200 (0.150–0.250)"
    assert row["first sampled answer: released code's rule"] == "0.400 (0.300–0.500)"
    assert row["released code's rule (greedy)"] == "1.000 (1.000–1.000)"  # the greedy answer is the exact plan
    assert "acceptable (sim)" not in expert
    # each seed drove its own 10 episodes, one collision each: 2 of 20, with the Wilson interval of that
    low, high = wilson_interval(2, 20)
    assert row["collisions, seeds pooled [95% CI]"] == f"0.10 [{low:.2f}, {high:.2f}] of 20"
    assert expert["collisions, seeds pooled [95% CI]"] == row["collisions, seeds pooled [95% CI]"]


def test_scores_wait_for_both_evaluations(tmp_path: Path) -> None:
    assert ablation.scores(tmp_path, {"sft_rl-s0": tmp_path, "open-sft_rl-s0": tmp_path}, "sft_rl", 0) is None


def test_mean_f1_averages_each_rows_seeds_and_draws_them(tmp_path: Path) -> None:
    results = {
        "sft_rl": {
            0: {"speed_f1": {"KEEP": 0.2}, "path_f1": {"STRAIGHT": 1.0}},
            1: {"speed_f1": {"KEEP": 0.4}, "path_f1": {"STRAIGHT": 0.0}},
        },
        "no_format": {0: {"speed_f1": {"KEEP": 0.9}, "path_f1": {"STRAIGHT": 0.7}}},
    }
    f1 = ablation.mean_f1(results)
    assert f1 == {
        "SFT + RL (AlphaDrive)": {"speed": {"KEEP": pytest.approx(0.3)}, "path": {"STRAIGHT": pytest.approx(0.5)}},
        "SFT + RL without the format reward": {"speed": {"KEEP": 0.9}, "path": {"STRAIGHT": 0.7}},
    }
    assert ablation.per_class_rows(results)[0] == {
        "configuration": "SFT + RL (AlphaDrive)",
        "KEEP": "0.30",
        "STRAIGHT": "0.50",
    }
    f1_comparison_png(f1, "per-class F1", tmp_path / "f1.png")
    assert (tmp_path / "f1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_deterministic_puts_every_training_stage_and_nothing_else_on_deterministic_kernels() -> None:
    setting = ("--set", "deterministic=true")

    def asks(job) -> bool:
        return any(job.args[index : index + 2] == setting for index in range(len(job.args)))

    plain = ablation.plan(_ablation_args(reward_ablation=True, supervised_control=True))
    assert not any(asks(job) for job in plain)
    jobs = ablation.plan(_ablation_args(reward_ablation=True, supervised_control=True, deterministic=True))
    training = [job for job in jobs if job.args[0] in ("sft", "grpo")]
    assert len(training) == len([job for job in plain if job.args[0] in ("sft", "grpo")]) > 10
    assert all(asks(job) for job in training)
    assert not any(asks(job) for job in jobs if job.args[0] not in ("sft", "grpo"))


def test_sft_set_reaches_the_sft_rows_trained_from_the_built_model_and_nothing_else() -> None:
    setting = ("--set", "language_frozen_epochs=2")
    jobs = ablation.plan(_ablation_args(supervised_control=True, sft_set=["language_frozen_epochs=2"]))
    asked = {job.key for job in jobs if any(job.args[i : i + 2] == setting for i in range(len(job.args)))}
    assert asked == {f"{row}-s{seed}" for row in ("sft_no_reasoning", "sft_reasoning") for seed in (0, 1)}


def test_training_settings_are_checked_before_anything_runs() -> None:
    check = ablation.training_settings_problem
    assert check(_ablation_args(scale="small", sft_set=["language_frozen_epochs=0.5"])) is None
    problem = check(_ablation_args(sft_set=["language_frozen_epochs=0.5"]))
    assert problem and "freeze_vision" in problem  # the tiny preset keeps its vision tower frozen
    assert "unknown" in check(_ablation_args(sft_set=["no_such_key=1"])).lower()
    assert check(_ablation_args(grpo_set=["rewards.action_weights.DECELERATE=1.0"])) is None
    problem = check(_ablation_args(grpo_set=["no_such_key=1"]))
    assert problem and problem.startswith("--grpo-set:") and "unknown" in problem.lower()


def test_grpo_set_reaches_every_grpo_row_and_nothing_else() -> None:
    setting = ("--set", "rewards.action_weights.DECELERATE=1.0")
    args = _ablation_args(reward_ablation=True, grpo_set=["rewards.action_weights.DECELERATE=1.0"])
    jobs = ablation.plan(args)
    asked = {job.key for job in jobs if any(job.args[i : i + 2] == setting for i in range(len(job.args)))}
    assert asked == {job.key for job in jobs if job.args[0] == "grpo"} and len(asked) > 4


def test_answer_only_rl_row_chosen_rows_and_reward_ablations_on_every_seed() -> None:
    jobs = {job.key: job for job in ablation.plan(_ablation_args(reward_ablation=True))}
    for seed in (0, 1):
        answer_only = jobs[f"sft_no_reasoning_rl-s{seed}"].args
        assert answer_only[:5] == ("grpo", "--data", "@data", "--init", f"@sft_no_reasoning-s{seed}")
        assert "--no-reasoning" in answer_only
        # both SFT rows train on the same frames (the traces' share), one of them on the answers only
        assert (
            jobs[f"sft_no_reasoning-s{seed}"].needs
            == jobs[f"sft_reasoning-s{seed}"].needs
            == ("traces", f"model-s{seed}")
        )
        for row in ablation.REWARD_ABLATIONS:
            assert jobs[f"{row}-s{seed}"].needs == ("data", f"sft_reasoning-s{seed}")
            assert f"open-{row}-s{seed}" in jobs
    assert jobs["traces"].args == ("distill", "--data", "@data", "--teacher", "grounded")
    # a run cut short has the rows with reasoning of every seed before any answer-only row
    order = [job.key for job in ablation.plan(_ablation_args())]
    assert max(order.index(f"closed-sft_rl-s{seed}") for seed in (0, 1)) < order.index("sft_no_reasoning-s0")
    chosen = {job.key for job in ablation.plan(_ablation_args(rows=["sft_rl"], sft_share=0.5))}
    # the SFT a chosen GRPO row starts from is trained, not scored; rows not chosen are neither
    assert {"sft_reasoning-s0", "sft_rl-s0", "open-sft_rl-s0"} <= chosen
    assert not {"open-sft_reasoning-s0", "rl_only-s0", "sft_no_reasoning-s0"} & chosen
    rl_only = next(job for job in ablation.plan(_ablation_args()) if job.key == "rl_only-s0").args
    assert rl_only[-2:] == ("--set", "stop_without_signal=5")  # RL only stops where it has nothing to learn
    assert next(j for j in ablation.plan(_ablation_args(sft_share=0.5)) if j.key == "traces").args[-2:] == (
        "--set",
        "share=0.5",
    )
    one_frame = _ablation_args(sft_share=0.5, trace_set=["grounded_facts=one_frame"])
    assert next(j for j in ablation.plan(one_frame) if j.key == "traces").args[-4:] == (
        *("--set", "share=0.5"),
        *("--set", "grounded_facts=one_frame"),
    )
    data = {job.key: job for job in ablation.plan(_ablation_args(data_seed=3, data_set=["labels.horizon_s=2.0"]))}
    assert data["data"].key == "data"  # one data set per --root: a root of another seed is refused (below)
    assert data["data"].args == (
        *("data", "sim", "--frames", "100", "--seed", "3", "--workers", "2"),
        *("--set", "labels.horizon_s=2.0"),
    )


def test_a_grpo_rows_gain_over_its_sft_start_is_paired_on_the_same_frames(tmp_path: Path) -> None:
    start = tmp_path / "open-sft"
    run = tmp_path / "open-rl"
    _write(start, "predictions.jsonl", [{"id": f"f{i}", "plan_correct": i < 2} for i in range(4)])
    _write(run, "predictions.jsonl", [{"id": f"f{i}", "plan_correct": i < 3} for i in reversed(range(4))])
    gain = gain_over(plan_outcomes(start), plan_outcomes(run))
    assert gain["difference"] == pytest.approx(0.25) and gain["frames"] == 4
    _write(run, "predictions.jsonl", [{"id": "other", "plan_correct": True}])
    with pytest.raises(ValueError, match="different frames"):
        gain_over(plan_outcomes(start), plan_outcomes(run))


def test_answers_changed_counts_each_heads_moved_answers_and_the_plans_they_fixed_or_broke(tmp_path: Path) -> None:
    """Frame 0's speed answer moves and its plan becomes right, frame 1's path answer moves and its plan becomes wrong,
    frame 2's hedged speed answer (KEEP and STOP) stays hedged, frame 3 is the same in both."""
    truth = ["KEEP", "STRAIGHT"]
    before = [(["STOP"], ["STRAIGHT"], False), (["KEEP"], ["STRAIGHT"], True), (["KEEP", "STOP"], ["STRAIGHT"], False)]
    after = [(["KEEP"], ["STRAIGHT"], True), (["KEEP"], ["LEFT_TURN"], False), (["STOP", "KEEP"], ["STRAIGHT"], False)]
    for name, answers in (("sft", before), ("rl", after)):
        rows = [
            {"id": f"f{index}", "truth": truth, "parsed": {"speed": speed, "path": path}, "plan_correct": right}
            for index, (speed, path, right) in enumerate([*answers, (["KEEP"], ["STRAIGHT"], True)])
        ]
        _write(tmp_path / name, "predictions.jsonl", rows)
    changed = answers_changed(tmp_path / "sft", tmp_path / "rl")
    assert changed == {"frames": 4, "speed": 1, "path": 1, "became_right": 1, "became_wrong": 1}


def test_the_models_come_from_models_tiny_or_with_a_language_from_models_build() -> None:
    import argparse

    args = argparse.Namespace(dimensions=Path("dims.json"), model_set=["max_pixels=50176"], language=None)
    assert ablation.model_command(1, args) == (
        "models", "tiny", "--seed", "1", "--dimensions", "dims.json", "--set", "max_pixels=50176")  # fmt: skip
    args.language = "smollm2-135m"
    assert ablation.model_command(1, args) == ("models", "build", "--language", "smollm2-135m", "--seed", "1",
                                               "--vision-dims", "dims.json", "--set", "max_pixels=50176")  # fmt: skip


def test_the_report_header_says_what_each_model_starts_from() -> None:
    scratch = Namespace(dimensions=None, model_set=[], language=None)
    assert ablation.model_description(scratch) == "tiny from random weights"
    pretrained = Namespace(dimensions="small.json", model_set=["max_pixels=50176"], language="smollm2-135m")
    assert ablation.model_description(pretrained) == (
        "smollm2-135m pretrained language model behind a random vision tower (small.json max_pixels=50176)"
    )


def test_an_answer_only_row_reports_the_reward_signal_of_its_own_format_on_unjudged_data(tmp_path: Path) -> None:
    signal = {"reasoning": {"groups_with_signal_rate": 0.0}, "answer_only": {"groups_with_signal_rate": 0.6}}
    _write(tmp_path / "sampled", "metrics.json", {"reward_signal": signal, "planning_accuracy": 0.25})
    plain = {"planning_accuracy": 0.5}  # no judged verdicts, and from before eval reported the released rule
    assert ablation._sampled_scores(plain, tmp_path / "sampled", answer_only=True) == {
        "reward_signal": {"groups_with_signal_rate": 0.6},
        "protocols": {"sampled_exact": 0.25},
    }
    assert ablation._sampled_scores(plain, None, answer_only=True) == {}


def test_a_row_is_scored_by_the_released_rule_greedy_and_on_its_first_sampled_answer(tmp_path: Path) -> None:
    _write(tmp_path / "sampled", "metrics.json", {"planning_accuracy": 0.25, "released_code_accuracy": 0.5})
    greedy = {"planning_accuracy": 0.5, "released_code_accuracy": 0.625}
    protocols = ablation._sampled_scores(greedy, tmp_path / "sampled", answer_only=False)["protocols"]
    assert protocols == {"released_code_greedy": 0.625, "sampled_exact": 0.25, "released_code_sampled": 0.5}
    # a column shows only where every seed has its number: the older seed lacks the sampled released rule
    older = {"protocols": {"released_code_greedy": 0.5, "sampled_exact": 0.125}}
    cells = ablation._optional_cells([{"protocols": protocols}, older])
    assert cells == {
        "released code's rule (greedy)": "0.562 (0.500–0.625)",
        "first sampled answer: planning accuracy": "0.188 (0.125–0.250)",
    }


def test_an_rl_row_gains_over_its_sft_greedy_and_on_the_first_sampled_answer(tmp_path: Path) -> None:
    """Both gains are paired over the same frames, each from its own pair of evaluations' predictions."""
    outcomes = {  # evaluation: whether each of frames a, b, c, d was planned right
        "open-sft_reasoning-s0": [True, True, False, False],
        "sampled-sft_reasoning-s0": [False, False, False, True],
        "open-sft_rl-s0": [True, True, False, False],
        "sampled-sft_rl-s0": [True, True, True, True],
    }
    paths = {key: tmp_path / key for key in (*outcomes, "sft_rl-s0", "closed-sft_rl-s0")}
    for key, correct in outcomes.items():  # the released rule reads the text: a wrong answer names no truth here
        rows = [
            {"id": frame, "plan_correct": right, "truth": ["KEEP", "STRAIGHT"], "text": "KEEP, STRAIGHT" * right}
            for frame, right in zip("abcd", correct, strict=True)
        ]
        _write(paths[key], "predictions.jsonl", rows)
    metrics = open_loop_metrics([("KEEP", "STRAIGHT")], ["<think>t</think><answer>KEEP, STRAIGHT</answer>"])
    _write(paths["open-sft_rl-s0"], "metrics.json", metrics)
    _write(paths["sampled-sft_rl-s0"], "metrics.json", metrics)
    _write(paths["open-sft_reasoning-s0"], "metrics.json", metrics)
    _write(paths["sft_rl-s0"], "manifest.json", {"metrics": {}})
    overall = {"episodes": 1, "collision_rate": 0.0, "route_completion_rate": 1.0, "mean_speed_mps": 1.0}
    overall["parse_failure_rate"] = 0.0
    closed = {"drivers": {"model": {"overall": overall}, "expert": {"overall": overall}}}
    _write(paths["closed-sft_rl-s0"], "closed_loop.json", closed)
    _write(paths["closed-sft_rl-s0"], "decisions.jsonl", [{"plan": ["KEEP", "STRAIGHT"]}])
    scored = ablation.scores(tmp_path, paths, "sft_rl", 0)
    assert scored is not None
    assert scored["gain_over_sft"]["difference"] == 0.0
    assert scored["sampled_gain_over_sft"]["difference"] == 0.75
    assert scored["sampled_gain_over_sft"]["low"] > 0.0
    assert scored["released_protocol_gain"]["difference"] == 0.5  # greedy SFT (2 of 4) against sampled RL (4 of 4)
    row = ablation.summary_rows({"sft_rl": {0: scored}})[0]
    assert row["gain over its SFT [95% CI], per seed"].startswith("+0.000")
    assert row["gain on the first sampled answer [95% CI], per seed"].startswith("+0.750")
    assert row["gain as the released scripts compare [95% CI], per seed"].startswith("+0.500")
    assert scored["f1_drops"] == {} and row[ablation.F1_DROP_COLUMN] == "none"


def test_an_rl_row_gain_is_pooled_over_its_seeds_where_each_has_both_evals(tmp_path: Path) -> None:
    """Seed 0 gains 2 of 4 frames, seed 1 nothing: pooled +0.25 (the seeds share the frames); the SFT row and a
    GRPO row with one seed, or a seed without its SFT's eval, get no pooled gain."""
    outcomes = {
        "open-sft_reasoning-s0": [True, False, False, False],
        "open-sft_rl-s0": [True, True, True, False],
        "open-sft_reasoning-s1": [True, True, False, False],
        "open-sft_rl-s1": [True, True, False, False],
        "open-sft_no_reasoning_rl-s0": [True, True, True, True],
        "open-sft_no_reasoning_rl-s1": [True, True, True, True],
        "open-sft_rl_safety-s0": [True, True, True, True],
    }
    paths = _evals(tmp_path, outcomes)
    results = {
        "sft_reasoning": {0: {}, 1: {}},
        "sft_rl": {0: {}, 1: {}},
        "sft_no_reasoning_rl": {0: {}, 1: {}},  # its SFT row was not evaluated
        "sft_rl_safety": {0: {}},  # one seed
    }
    pooled = ablation.seeds_pooled_gains(paths, results)
    assert set(pooled) == {"sft_rl"}
    assert pooled["sft_rl"]["gain"] == 0.25 and pooled["sft_rl"]["pairs"] == 2 and pooled["sft_rl"]["frame_sets"] == 1
    assert pooled["sft_rl"]["low"] <= 0.25 <= pooled["sft_rl"]["high"]


def test_val_split_scores_every_row_on_validation_and_pairs_each_rl_row_with_its_sft_there(tmp_path: Path) -> None:
    """Seed 0's RL gains 2 of 4 validation frames over its SFT, seed 1's none: +0.5 and 0.0 per seed, +0.25 pooled,
    beside the test split's numbers; without --val-split no row is scored on validation."""
    jobs = {job.key: job for job in ablation.plan(_ablation_args(rows=["sft_reasoning", "sft_rl"], val_split=True))}
    assert {key for key in jobs if key.startswith("val-")} == {
        f"val-{row}-s{seed}" for row in ("sft_reasoning", "sft_rl") for seed in (0, 1)
    }
    assert jobs["val-sft_rl-s1"].args[-2:] == ("--split", "val") and "--split" not in jobs["open-sft_rl-s1"].args
    assert not any(key.startswith("val-") for key in (job.key for job in ablation.plan(_ablation_args())))
    outcomes = {
        "val-sft_reasoning-s0": "1000",
        "val-sft_rl-s0": "1110",
        "val-sft_reasoning-s1": "1100",
        "val-sft_rl-s1": "1100",
        "open-sft_reasoning-s0": "1111",
        "open-sft_rl-s0": "1111",
    }
    paths = _evals(tmp_path, outcomes)
    metrics = open_loop_metrics([("KEEP", "STRAIGHT")] * 4, ["<answer>KEEP, STRAIGHT</answer>"] * 3 + ["none"])
    for key in ("val-sft_rl-s0", "open-sft_rl-s0", "open-sft_reasoning-s0"):
        _write(paths[key], "metrics.json", metrics)
    paths["sft_rl-s0"] = tmp_path / "grpo"
    _write(paths["sft_rl-s0"], "manifest.json", {"metrics": {}})
    scored = ablation.scores(tmp_path, paths, "sft_rl", 0, closed_loop=False)
    assert scored["val_planning_accuracy"] == 0.75 and scored["val_gain_over_sft"]["difference"] == 0.5
    assert "by_scenario" not in scored  # these frames name no simulator scenario
    assert scored["gain_over_sft"]["difference"] == 0.0  # the test split's, unchanged
    results = {"sft_reasoning": {0: {}, 1: {}}, "sft_rl": {0: {}, 1: {}}}
    on_val = ablation.seeds_pooled_gains(paths, results, split="val")
    assert set(on_val) == {"sft_rl"} and on_val["sft_rl"]["gain"] == 0.25
    assert ablation.seeds_pooled_gains(paths, results) == {}  # seed 1 has no test-split evals here
    (row,) = ablation.summary_rows({"sft_rl": {0: scored}}, pooled_on_val=on_val)
    assert row[ablation.VAL_ACCURACY_COLUMN] == "0.750" and row[ablation.VAL_POOLED_COLUMN].startswith("+0.25")
    assert row[ablation.VAL_GAIN_COLUMN].startswith("+0.50")


def test_a_reward_ablation_is_paired_with_all_four_rewards_per_seed_and_pooled(tmp_path: Path) -> None:
    """Without diversity, seed 0 loses 2 of 4 frames that SFT + RL got right and seed 1 ties it: -0.5 and 0.0 per
    seed, -0.25 pooled; the row with every reward has nothing to be paired with."""
    outcomes = {"sft_reasoning": ("0000", "0000"), "sft_rl": ("1110", "1100"), "no_diversity": ("1000", "1100")}
    paths = _evals(
        tmp_path, {f"open-{row}-s{seed}": by_seed[seed] for row, by_seed in outcomes.items() for seed in (0, 1)}
    )
    metrics = open_loop_metrics([("KEEP", "STRAIGHT")], ["<think>t</think><answer>KEEP, STRAIGHT</answer>"])
    for path in paths.values():
        _write(path, "metrics.json", metrics)
    results: dict = {}
    for row in ("sft_rl", "no_diversity"):
        for seed in (0, 1):
            paths[f"{row}-s{seed}"] = tmp_path / f"{row}-s{seed}"
            _write(paths[f"{row}-s{seed}"], "manifest.json", {"metrics": {}})
            results.setdefault(row, {})[seed] = ablation.scores(tmp_path, paths, row, seed, closed_loop=False)
    assert "gain_over_all_rewards" not in results["sft_rl"][0]
    assert [results["no_diversity"][seed]["gain_over_all_rewards"]["difference"] for seed in (0, 1)] == [-0.5, 0.0]
    against_all = ablation.seeds_pooled_gains(paths, results, ablation.ALL_REWARDS)
    assert set(against_all) == {"no_diversity"} and against_all["no_diversity"]["gain"] == -0.25
    full, ablated = ablation.summary_rows(results, ablation.seeds_pooled_gains(paths, results), against_all)
    assert full[ablation.ALL_REWARDS_COLUMN] == full[ablation.ALL_REWARDS_POOLED_COLUMN] == "–"
    assert (
        ablated[ablation.ALL_REWARDS_COLUMN].startswith("-0.500")
        and " / +0.000" in ablated[ablation.ALL_REWARDS_COLUMN]
    )
    assert ablated[ablation.ALL_REWARDS_POOLED_COLUMN].startswith("-0.250")
    assert ablated["gain over its SFT, seeds pooled [95% CI]"].startswith("+0.375")  # (1 + 2) / 8 over SFT


def test_an_rl_row_names_each_class_whose_f1_fell_more_than_the_bar_below_its_sft() -> None:
    truths = [("KEEP", "STRAIGHT"), ("ACCELERATE", "STRAIGHT"), ("DECELERATE", "LEFT_TURN"), ("STOP", "STRAIGHT")]
    answer = "<think>t</think><answer>{}</answer>"
    sft = open_loop_metrics(truths, [answer.format(", ".join(truth)) for truth in truths])
    # RL answers KEEP at the ACCELERATE frame: ACCELERATE's F1 1 -> 0 and KEEP's 1 -> 0.67; the rest unchanged
    rl_answers = ["KEEP, STRAIGHT", "KEEP, STRAIGHT", "DECELERATE, LEFT_TURN", "STOP, STRAIGHT"]
    rl = open_loop_metrics(truths, [answer.format(text) for text in rl_answers])
    drops = ablation.f1_drops(sft, rl)
    assert drops == {"KEEP": [1.0, 0.6667], "ACCELERATE": [1.0, 0.0]}
    assert ablation.f1_drop_text(drops) == "KEEP 1.00→0.67, ACCELERATE 1.00→0.00"


def test_each_f1_drop_comes_with_its_paired_interval_over_the_frames(tmp_path: Path) -> None:
    """With the two evaluations' answers, a drop carries the bootstrap interval of the change: ACCELERATE, right on
    its one frame of four and then never, moves by -1 where a resample holds that frame and by 0 where not."""
    truths = [("KEEP", "STRAIGHT"), ("ACCELERATE", "STRAIGHT"), ("DECELERATE", "LEFT_TURN"), ("STOP", "STRAIGHT")]
    rl_answers = ["KEEP, STRAIGHT", "KEEP, STRAIGHT", "DECELERATE, LEFT_TURN", "STOP, STRAIGHT"]
    answer = "<think>t</think><answer>{}</answer>"
    evals = []
    for name, texts in (("sft", [", ".join(truth) for truth in truths]), ("rl", rl_answers)):
        folder = tmp_path / name
        folder.mkdir()
        rows = [
            {"id": f"f{index}", "truth": list(truth), "parsed": {"speed": [speed], "path": [path]}}
            for index, (truth, (speed, path)) in enumerate(zip(truths, (t.split(", ") for t in texts), strict=True))
        ]
        (folder / "predictions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        evals.append(folder)
    sft = open_loop_metrics(truths, [answer.format(", ".join(truth)) for truth in truths])
    rl = open_loop_metrics(truths, [answer.format(text) for text in rl_answers])
    drops = ablation.f1_drops(sft, rl, (evals[0], evals[1]))
    assert drops["ACCELERATE"] == [1.0, 0.0, -1.0, 0.0]
    assert ablation.f1_drop_text({"ACCELERATE": drops["ACCELERATE"]}) == "ACCELERATE 1.00→0.00 [-1.00, +0.00]"


def test_the_supervised_control_continues_each_rl_rows_sft_on_every_label_for_as_many_frames() -> None:
    """RL trains on grpo_steps x (completions per step / completions per frame) frames: the control trains SFT
    on every train frame's label (traces without --sft-share) for as many, in SFT's batches."""
    args = _ablation_args(rows=["sft_no_reasoning", "sft_no_reasoning_rl"], supervised_control=True, sft_share=0.5)
    jobs = {job.key: job for job in ablation.plan(args)}
    assert jobs["traces_all"].args == ("distill", "--data", "@data", "--teacher", "grounded")
    control = jobs["sft_no_reasoning_more-s1"].args
    assert control[:6] == ("sft", "--data", "@traces_all", "--model", "@sft_no_reasoning-s1", "--no-reasoning")
    grpo, sft = (resolve_config(stage, schema, "tiny") for stage, schema in (("grpo", GrpoConfig), ("sft", SftConfig)))
    frames = 4 * grpo.per_device_batch_size * grpo.gradient_accumulation_steps // grpo.num_generations
    steps = max(1, math.ceil(frames / (sft.per_device_batch_size * sft.gradient_accumulation_steps)))
    assert f"max_steps={steps}" in control and "open-sft_no_reasoning_more-s1" in jobs
    assert "sft_reasoning_more-s0" not in jobs  # no reasoning RL row asked for, so no control of it
    assert ablation.control_length(_ablation_args(grpo_steps=-1)) == ("--set", f"epochs={grpo.epochs}")
    assert not any("more" in key for key in (job.key for job in ablation.plan(_ablation_args())))
    # every seed's GRPO rows come before any control, so that the controls do not hold back a seed's RL
    order = [job.key for job in ablation.plan(_ablation_args(rows=["sft_rl"], supervised_control=True))]
    controls = [key for key in order if ablation.is_control(key)]
    assert order[-len(controls) :] == controls and {"sft_reasoning_more-s0", "sft_reasoning_more-s1"} <= set(controls)
    # the control's traces state what the SFT row's traces state (--trace-set), on every frame
    banded = _ablation_args(rows=["sft_rl"], supervised_control=True, sft_share=0.5, trace_set=["grounded_facts=x"])
    assert {job.key: job for job in ablation.plan(banded)}["traces_all"].args[-2:] == ("--set", "grounded_facts=x")
    # with traces on every frame already (--sft-share 1), the control reads those
    shared = {job.key: job for job in ablation.plan(_ablation_args(rows=["sft_rl"], supervised_control=True))}
    assert "traces_all" not in shared and shared["sft_reasoning_more-s0"].args[:5] == (
        "sft", "--data", "@traces", "--model", "@sft_reasoning-s0")  # fmt: skip


def test_control_set_reaches_the_supervised_controls_alone_after_their_length() -> None:
    setting = ("--set", "learning_rate=2e-5")
    args = _ablation_args(
        rows=["sft_rl", "sft_no_reasoning_rl"], supervised_control=True, control_set=["learning_rate=2e-5"]
    )
    jobs = ablation.plan(args)
    asked = {job.key for job in jobs if any(job.args[i : i + 2] == setting for i in range(len(job.args)))}
    assert asked == {f"{control}-s{seed}" for control in ablation.CONTROLS.values() for seed in (0, 1)}
    control = {job.key: job for job in jobs}["sft_reasoning_more-s0"].args
    assert control.index("learning_rate=2e-5") > next(
        i for i, part in enumerate(control) if part.startswith("max_steps=")
    )
    check = ablation.training_settings_problem
    problem = check(_ablation_args(control_set=["no_such_key=1"]))
    assert problem and problem.startswith("--control-set:") and "unknown" in problem.lower()


def test_with_no_episodes_rows_are_scored_open_loop_only(tmp_path: Path) -> None:
    keys = {job.key for job in ablation.plan(_ablation_args(episodes=0))}
    assert "open-sft_rl-s0" in keys and not any(key.startswith("closed-") for key in keys)
    metrics = open_loop_metrics([("KEEP", "STRAIGHT")], ["<think>t</think><answer>KEEP, STRAIGHT</answer>"])
    paths = {"sft_rl-s0": tmp_path / "grpo", "open-sft_rl-s0": tmp_path / "open"}
    _write(paths["sft_rl-s0"], "manifest.json", {"metrics": {}})
    _write(paths["open-sft_rl-s0"], "metrics.json", metrics)
    assert ablation.scores(tmp_path, paths, "sft_rl", 0) is None  # a closed-loop run waits for its closed loop
    scored = ablation.scores(tmp_path, paths, "sft_rl", 0, closed_loop=False)
    assert scored is not None and "closed_loop" not in scored and scored["eval_artifacts"] == ["open"]
    (row,) = ablation.summary_rows({"sft_rl": {0: scored}})  # no expert row: nobody drove
    assert row["planning accuracy"] == "1.000"
    assert all(row[column] == "–" for column in ablation.CLOSED_LOOP_COLUMNS)


def test_a_root_whose_data_has_another_seed_or_size_is_refused(tmp_path: Path) -> None:
    assert ablation.data_mismatch(tmp_path, frames=100, data_seed=0) is None  # nothing published yet
    _write(tmp_path / "data" / "data-v1", "manifest.json", {"config": {"seed": 0, "frames": 100}})
    assert ablation.data_mismatch(tmp_path, frames=100, data_seed=0) is None
    problem = ablation.data_mismatch(tmp_path, frames=100, data_seed=2)
    assert problem is not None and "seed 0 (asked 2)" in problem and "frames" not in problem
    assert "frames 100 (asked 50)" in (ablation.data_mismatch(tmp_path, frames=50, data_seed=0) or "")


@pytest.mark.parametrize(
    ("asked", "prefix", "sets"),
    [
        ({"image_control": True}, "shuffled", ("--set", "images=shuffled")),
        ({"prompt_control": "student-v1"}, "prompt", ("--set", "prompt=student-v1")),
    ],
)
def test_an_input_control_scores_every_row_once_more_with_one_input_changed_and_pairs_it_with_the_row(
    tmp_path: Path, asked: dict[str, object], prefix: str, sets: tuple[str, ...]
) -> None:
    plain = {job.key for job in ablation.plan(_ablation_args())}
    assert not any(key.startswith(f"{prefix}-") for key in plain)
    jobs = {job.key: job for job in ablation.plan(_ablation_args(**asked, episodes=0))}
    assert not any(key.startswith(other + "-") for other in ablation.INPUT_CONTROLS if other != prefix for key in jobs)
    for row in ("sft_reasoning", "sft_rl"):
        assert jobs[f"{prefix}-{row}-s1"].args == (*jobs[f"open-{row}-s1"].args, *sets)
    truths = [("KEEP", "STRAIGHT")] * 4
    paths = {
        "sft_rl-s0": tmp_path / "grpo",
        **_evals(tmp_path, {"open-sft_rl-s0": "1110", f"{prefix}-sft_rl-s0": "1000"}),
    }
    _write(paths["sft_rl-s0"], "manifest.json", {"metrics": {}})
    for key, right in (("open-sft_rl-s0", 3), (f"{prefix}-sft_rl-s0", 1)):
        answers = ["KEEP, STRAIGHT"] * right + ["STOP, STRAIGHT"] * (4 - right)
        _write(paths[key], "metrics.json", open_loop_metrics(truths, [f"<answer>{a}</answer>" for a in answers]))
    scored = ablation.scores(tmp_path, paths, "sft_rl", 0, closed_loop=False)
    accuracy_key, gain_key, accuracy_column, gain_column = ablation.INPUT_CONTROLS[prefix]
    assert scored[accuracy_key] == pytest.approx(0.25)
    assert scored[gain_key]["difference"] == pytest.approx(0.5)
    (row,) = ablation.summary_rows({"sft_rl": {0: scored}})
    assert row[accuracy_column] == "0.250" and row[gain_column].startswith("+0.500")
