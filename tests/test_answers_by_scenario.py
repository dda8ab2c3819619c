"""bench/answers_by_scenario.py: where a model gives one speed action and where it is right."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import answers_by_scenario, reasoning_facts


def test_each_scenario_counts_the_labelled_frames_the_answers_and_the_frames_both(tmp_path: Path, monkeypatch) -> None:
    frames = [  # (scenario, label, answer)
        ("highway", "DECELERATE", "DECELERATE"),
        ("highway", "DECELERATE", "KEEP"),
        ("highway", "KEEP", "DECELERATE"),
        ("blocked", "STOP", "DECELERATE"),
        ("blocked", "KEEP", "KEEP"),
    ]
    records = {
        f"f{index}": {"id": f"f{index}", "speed_action": label, "source": {"scenario": scenario}}
        for index, (scenario, label, _) in enumerate(frames)
    }
    predictions: list[dict[str, Any]] = [
        {"id": f"f{index}", "parsed": {"speed": [answer], "path": ["STRAIGHT"]}}
        for index, (_, _, answer) in enumerate(frames)
    ]
    records["f6"] = {"id": "f6", "speed_action": "DECELERATE", "source": {"scenario": "highway"}}
    predictions.append({"id": "f6", "parsed": None})  # an unparsed answer counts as no answer
    records["f5"] = {"id": "f5", "speed_action": "DECELERATE", "source": {"origin": "import"}}
    predictions.append({"id": "f5", "parsed": {"speed": ["DECELERATE"], "path": ["STRAIGHT"]}})
    monkeypatch.setattr(answers_by_scenario, "scored_split", lambda path: (tmp_path, "test", records, predictions))
    counts = answers_by_scenario.action_by_scenario(tmp_path, "DECELERATE")
    assert counts["highway"] == {"labelled": 3, "answered": 2, "right": 1}
    assert counts["blocked"] == {"labelled": 0, "answered": 1, "right": 0}
    assert counts["imported"] == {"labelled": 1, "answered": 1, "right": 1}


def test_the_split_an_eval_scored_is_read_through_its_manifest(tmp_path: Path, monkeypatch) -> None:
    data, evaluation = tmp_path / "data" / "d-v1", tmp_path / "eval" / "e-v1"
    data.mkdir(parents=True)
    evaluation.mkdir(parents=True)
    (data / "val.jsonl").write_text(json.dumps({"id": "a", "speed_action": "KEEP"}) + "\n")
    (evaluation / "predictions.jsonl").write_text(json.dumps({"id": "a", "parsed": None}) + "\n")

    class Opened:
        def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
            self.path, self.manifest = path, manifest

    manifests = {evaluation: {"split": "val", "inputs": [{"role": "data", "path": "../../data/d-v1"}]}, data: {}}
    monkeypatch.setattr(reasoning_facts, "open_artifact", lambda path, *_, **__: Opened(path, manifests[Path(path)]))
    found, split, records, predictions = reasoning_facts.scored_split(evaluation)
    assert found == data.resolve() and split == "val" and list(records) == ["a"] and predictions[0]["id"] == "a"
