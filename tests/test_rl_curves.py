"""bench/rl_curves.py: a GRPO run's rollouts and quarter means from its log history."""

from __future__ import annotations

import json
from pathlib import Path

from bench import rl_curves


def _history(steps: int, steps_per_rollout: int) -> list[dict]:
    """As TRL logs it: every step its loss, the first step of each rollout also the rollout's rewards."""
    entries = [
        {"step": step, "loss": 0.1}
        | (
            {"reward": float(step), "planning/speed_accuracy/mean": step / 100}
            if (step - 1) % steps_per_rollout == 0
            else {}
        )
        for step in range(1, steps + 1)
    ]
    return [*entries, {"step": steps, "train_runtime": 9.0, "train_loss": 0.1}]  # the trainer's summary entry


def test_only_each_rollouts_first_step_is_kept_and_cut_to_the_logged_keys() -> None:
    entries = rl_curves.rollout_entries(_history(16, steps_per_rollout=8))
    assert [entry["step"] for entry in entries] == [1, 9]
    assert "loss" not in entries[0] and entries[1]["reward"] == 9.0


def test_quarter_means_place_each_rollout_by_its_step_and_leave_empty_quarters_empty() -> None:
    entries = rl_curves.rollout_entries(_history(16, steps_per_rollout=8))
    assert rl_curves.quarter_means(entries, "planning/speed_accuracy/mean", steps=16) == [0.01, None, 0.09, None]
    every_step = rl_curves.rollout_entries(_history(8, steps_per_rollout=1))
    assert rl_curves.quarter_means(every_step, "reward", steps=8) == [1.5, 3.5, 5.5, 7.5]


def test_a_run_is_its_manifests_metrics_and_its_rollouts(tmp_path: Path) -> None:
    metrics = {"steps": 16, "first_reward": 1.0, "final_reward": 13.0, "train_samples_per_second": 5.0}
    (tmp_path / "manifest.json").write_text(json.dumps({"metrics": metrics}))
    history = [entry | {"step_time": 1.0, "train_elapsed_s": float(entry["step"])} for entry in _history(16, 4)[:-1]]
    (tmp_path / "log_history.json").write_text(json.dumps(history))
    curves = rl_curves.run_curves(tmp_path)
    assert [entry["step"] for entry in curves["log"]] == [1, 5, 9, 13]
    assert curves["speed_accuracy_by_quarter"] == [0.01, 0.05, 0.09, 0.13]
    assert curves["metrics"] == metrics


def test_the_training_signal_is_the_sampled_accuracy_of_each_head_and_the_flat_groups_per_quarter() -> None:
    history = [
        {"step": 1, "reward": 1.0, "planning/path_accuracy/mean": 0.8, "frac_reward_zero_std": 0.5},
        {"step": 2, "loss": 0.1},
        {"step": 3, "reward": 1.0, "planning/path_accuracy/mean": 0.9, "frac_reward_zero_std": 0.75},
    ]
    assert rl_curves.training_signal(history, steps=4) == {
        "speed_accuracy_by_quarter": [None] * 4,
        "path_accuracy_by_quarter": [0.8, None, 0.9, None],
        "zero_std_by_quarter": [0.5, None, 0.75, None],
    }


def test_step_times_split_the_first_step_rollouts_optimiser_steps_and_the_time_between() -> None:
    history = [
        {"step": 1, "reward": 1.0, "step_time": 30.0, "train_elapsed_s": 30.0},
        {"step": 2, "step_time": 0.5, "train_elapsed_s": 30.5},
        {"step": 3, "reward": 1.0, "step_time": 6.0, "train_elapsed_s": 38.5},  # 2 s outside: a checkpoint
        {"step": 4, "step_time": 0.3, "train_elapsed_s": 38.8},
        {"step": 4, "train_runtime": 39.0},
    ]
    assert rl_curves.step_times(history) == {
        "first_step_s": 30.0,
        "rollout_step_s": 6.0,
        "optimiser_step_s": 0.4,
        "outside_steps_s": 2.0,
    }
