"""bench/perception_probe.py: a model's answers to the perception question scored fact by fact against its targets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from alphadrive_cli.artifacts.store import OutputSpec
from alphadrive_cli.config.schemas import TinyModelConfig
from alphadrive_cli.stages import models_tiny
from bench import perception_probe
from bench.perception_probe import fact_scores

TRUTHS = [
    {"lead": ("close", {"gap": "12"}), "left lane": ("free", {})},
    {"lead": ("far", {"gap": "60"}), "left lane": ("none", {})},
    {"lead": ("absent", {}), "left lane": ("none", {})},
]
TRAIN = [*TRUTHS, {"lead": ("far", {"gap": "50"}), "left lane": ("none", {})}]


def test_each_fact_is_right_only_in_the_target_s_state_and_numbers_are_compared_where_stated() -> None:
    texts = [
        "The car in front is close, 15 m ahead. The lane to my left is clear.",
        "Nothing is in front of me in my lane.",  # the wrong lead state; the left lane not stated
        "My lane ahead is clear of vehicles. There are no other lanes beside mine.",
    ]
    scores = fact_scores(TRUTHS, texts, TRAIN)
    assert scores["lead"]["right_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert scores["left lane"]["right_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert scores["left lane"]["majority_rate"] == pytest.approx(2 / 3, abs=1e-3)  # "none", 3 of the 4 train ones
    assert scores["lead"]["majority_rate"] == pytest.approx(1 / 3, abs=1e-3)  # "far", 2 of the 4 train ones
    # one gap stated (15 m against 12); always saying the train median (50 m) is 38 and 10 m off the two leads
    assert (scores["lead"]["number_frames"], scores["lead"]["median_abs_error"]) == (1, 3.0)
    assert scores["lead"]["train_median_abs_error"] == 24.0
    assert "median_abs_error" not in scores["left lane"]


def test_the_probe_answers_from_own_and_other_frames_images_and_writes_its_table(tmp_path: Path, monkeypatch) -> None:
    from tests.support.labelled_data import make_labelled_data

    labels = [("KEEP", "STRAIGHT")] * 6
    data = make_labelled_data(tmp_path / "runs", labels, {"train": range(3), "test": range(3, 6)})
    model = models_tiny.run(TinyModelConfig(), OutputSpec(tmp_path / "runs"))
    out = tmp_path / "probe.json"
    argv = ["perception_probe", str(model.path), str(data), "--max-new-tokens", "8", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    perception_probe.main()
    result = json.loads(out.read_text())
    assert result["frames"] == 3
    assert set(result["results"]) == {"own", "shuffled"}
    # the test frames' scene: no lead, a free left lane, no right lane; a random model states none of it
    assert {row["fact"] for row in result["runs"]} == {"lead", "left lane", "right lane"}
    assert all(row["right, train's most frequent state"] == 1.0 for row in result["runs"])
