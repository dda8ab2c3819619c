"""bench/rl_curves.py: a GRPO run's rollouts and quarter means from its log history."""

from __future__ import annotations

import json
from pathlib import Path

from bench import rl_curves


def _history(steps: int) -> list[dict]:
    entries = [
        {"step": step, "reward": float(step), "planning/speed_accuracy/mean": step / 100, "loss": 0.1}
        for step in range(1, steps + 1)
    ]
    return [*entries, {"step": steps, "train_runtime": 9.0, "train_loss": 0.1}]  # the trainer's summary entry


def test_only_each_rollouts_first_step_is_kept_and_cut_to_the_logged_keys() -> None:
    entries = rl_curves.rollout_entries(_history(16), steps_per_rollout=8)
    assert [entry["step"] for entry in entries] == [1, 9]
    assert "loss" not in entries[0] and entries[1]["reward"] == 9.0


def test_quarter_means_place_each_rollout_by_its_step_and_leave_empty_quarters_empty() -> None:
    entries = rl_curves.rollout_entries(_history(16), steps_per_rollout=8)
    assert rl_curves.quarter_means(entries, "planning/speed_accuracy/mean", steps=16) == [0.01, None, 0.09, None]
    every_step = rl_curves.rollout_entries(_history(8), steps_per_rollout=1)
    assert rl_curves.quarter_means(every_step, "reward", steps=8) == [1.5, 3.5, 5.5, 7.5]


def test_a_run_reads_its_rollout_length_from_the_manifest(tmp_path: Path) -> None:
    config = {"generation_batch_size": 32, "per_device_batch_size": 8}
    metrics = {"steps": 16, "first_reward": 1.0, "final_reward": 13.0, "train_samples_per_second": 5.0}
    (tmp_path / "manifest.json").write_text(json.dumps({"config": config, "metrics": metrics}))
    (tmp_path / "log_history.json").write_text(json.dumps(_history(16)))
    curves = rl_curves.run_curves(tmp_path)
    assert [entry["step"] for entry in curves["log"]] == [1, 5, 9, 13]
    assert curves["speed_accuracy_by_quarter"] == [0.01, 0.05, 0.09, 0.13]
    assert curves["metrics"] == metrics
