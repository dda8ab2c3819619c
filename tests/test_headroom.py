"""bench/headroom.py: a model's wrong plans split by whether a classifier of one frame plans them right."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from alphadrive_cli.config.schemas import DEFAULT_ACTION_WEIGHTS
from bench import headroom as headroom_module
from bench.headroom import (
    classifier_plans,
    eval_plans,
    headroom,
    lead_situation,
    modal_plans,
    reward_plans,
    same_plan_share,
    told_frames,
)
from bench.label_ceiling import PLANS


def test_wrong_frames_split_by_what_one_frame_tells() -> None:
    told = {"a": True, "b": True, "c": False, "d": False, "e": True}
    outcomes = {"a": False, "b": True, "c": False, "d": True, "e": False}
    truths = {"a": "DECELERATE, STRAIGHT", "b": "KEEP, STRAIGHT", "c": "KEEP, LEFT_CHANGE", "d": "STOP, STRAIGHT"}
    truths["e"] = "DECELERATE, STRAIGHT"
    situations = {
        frame: "vehicle 40+ m ahead" if frame in ("a", "e") else "no lead, no junction near" for frame in told
    }
    result = headroom(told, outcomes, truths, situations)
    assert (result["wrong"], result["told"], result["not_told"]) == (3, 2, 1)
    assert result["right_where_not_told"] == 1  # d
    assert result["told_by_true_plan"] == {"DECELERATE, STRAIGHT": 2}
    assert result["told_by_what_is_ahead"] == {"vehicle 40+ m ahead": 2}
    assert result["accuracy"] == pytest.approx(0.4)


def test_frames_of_another_split_are_refused() -> None:
    with pytest.raises(ValueError, match="different frames"):
        headroom({"a": True}, {"b": True}, {"a": "KEEP, STRAIGHT"}, {"a": "no lead, no junction near"})


def split(count: int, seed: int) -> dict[str, dict[str, Any]]:
    """Frames whose path the instruction sets and whose speed is DECELERATE exactly where a lead is within 20 m."""
    rng = random.Random(seed)
    records = {}
    for index in range(count):
        gap, turn = rng.uniform(5, 60), rng.random() < 0.3
        records[f"s{seed}-{index}"] = {
            "ego_speed_mps": 10.0,
            "navigation": "turn left" if turn else "keep going",
            "scene": {"speed_limit_mps": 15.0, "lead_vehicle": {"kind": "vehicle", "gap_m": gap}},
            "source": {"scenario": "highway"},
            "speed_action": "DECELERATE" if gap < 20 else "KEEP",
            "path_action": "LEFT_TURN" if turn else "STRAIGHT",
        }
    return records


def test_the_one_frame_classifier_tells_plans_its_numbers_decide_and_not_the_ones_they_contradict() -> None:
    splits = {"train": split(300, 0), "val": split(60, 1), "test": split(60, 2)}
    contradicted = [frame for frame, record in splits["test"].items() if record["speed_action"] == "KEEP"][:3]
    for frame in contradicted:  # a far lead, labelled as if it were near: no classifier of the numbers says so
        splits["test"][frame]["speed_action"] = "DECELERATE"
    plans = classifier_plans(splits, seeds=[0, 1, 2])
    told = told_frames(
        plans, {frame: f"{r['speed_action']}, {r['path_action']}" for frame, r in splits["test"].items()}
    )
    assert list(told) == list(splits["test"])
    assert not any(told[frame] for frame in contradicted)
    assert sum(told.values()) >= 0.9 * (len(told) - len(contradicted))


def test_the_reward_weighted_plan_answers_a_heavier_action_below_an_even_chance() -> None:
    """Each head pays its accuracy times the true action's weight: DECELERATE (1.5) beats KEEP (1.0) once its
    probability passes 0.4, where the likeliest plan stays KEEP; the path head is decided on its own marginal."""

    def row(**probabilities: float) -> list[float]:
        return [probabilities.get(plan.replace(", ", "_"), 0.0) for plan in PLANS]

    rows = torch.tensor(
        [
            row(KEEP_STRAIGHT=0.55, DECELERATE_STRAIGHT=0.45),  # open: the weights decide
            row(KEEP_STRAIGHT=0.65, DECELERATE_STRAIGHT=0.35),  # below 0.4: KEEP either way
            # straight is the likeliest plan's path, but a left turn (1.5) at 0.45 of the path's mass pays more
            row(KEEP_STRAIGHT=0.55, KEEP_LEFT_TURN=0.25, DECELERATE_LEFT_TURN=0.2),
        ]
    )
    assert [PLANS[index] for index in rows.argmax(-1).tolist()] == ["KEEP, STRAIGHT"] * 3
    assert reward_plans(rows, DEFAULT_ACTION_WEIGHTS) == ["DECELERATE, STRAIGHT", "KEEP, STRAIGHT", "KEEP, LEFT_TURN"]
    assert reward_plans(rows, dict.fromkeys(DEFAULT_ACTION_WEIGHTS, 1.0)) == ["KEEP, STRAIGHT"] * 3


def test_what_is_ahead_names_the_lead_and_its_gap_or_the_junction() -> None:
    def record(lead: dict[str, Any] | None, junction: float | None = None) -> dict[str, Any]:
        return {"scene": {"lead_vehicle": lead, "distance_to_junction_m": junction}}

    assert lead_situation(record({"kind": "obstacle", "gap_m": 45.0})) == "obstacle 40+ m ahead"
    assert lead_situation(record({"kind": "vehicle", "gap_m": 12.0})) == "vehicle <20 m ahead"
    assert lead_situation(record({"kind": "vehicle", "gap_m": 20.0})) == "vehicle 20-40 m ahead"
    assert lead_situation(record(None, 21.1)) == "no lead, junction within 40 m"
    assert lead_situation(record(None)) == "no lead, no junction near"
    assert lead_situation(record({"kind": "vehicle"})) == "vehicle 40+ m ahead"  # no gap known: as far as the cap


def test_the_share_of_same_plans_counts_a_hedged_answer_as_different(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "truth": ["KEEP", "STRAIGHT"], "parsed": {"speed": ["KEEP"], "path": ["STRAIGHT"]}},
        {"id": "b", "truth": ["KEEP", "STRAIGHT"], "parsed": {"speed": ["KEEP", "STOP"], "path": ["STRAIGHT"]}},
        {"id": "c", "truth": ["STOP", "STRAIGHT"], "parsed": {"speed": ["STOP"], "path": ["LEFT_TURN"]}},
    ]
    (tmp_path / "predictions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    model = eval_plans(tmp_path)
    assert model == {"a": "KEEP, STRAIGHT", "b": None, "c": "STOP, LEFT_TURN"}
    seeds_plans = {
        "a": ["STOP, STRAIGHT", "KEEP, STRAIGHT", "KEEP, STRAIGHT"],
        "b": ["KEEP, STRAIGHT"],
        "c": ["STOP, STRAIGHT"],
    }
    classifier = modal_plans(seeds_plans)
    assert classifier["a"] == "KEEP, STRAIGHT"
    assert same_plan_share(classifier, model) == round(1 / 3, 4)


def test_beside_counts_right_plans_on_the_frames_only_the_other_input_tells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    truth = {"a": "KEEP, STRAIGHT", "b": "DECELERATE, STRAIGHT", "c": "DECELERATE, STRAIGHT", "d": "STOP, STRAIGHT"}
    test = {frame: {"speed_action": plan.split(", ")[0], "path_action": "STRAIGHT"} for frame, plan in truth.items()}
    wrong = "KEEP, STRAIGHT"
    classifiers = {  # the prompt alone tells a and d; one frame tells a, b and c
        "the prompt alone": {"a": [truth["a"]], "b": [wrong], "c": [wrong], "d": [truth["d"]]},
        "one frame": {"a": [truth["a"]], "b": [truth["b"]], "c": [truth["c"]], "d": [wrong]},
    }
    monkeypatch.setattr(headroom_module, "split_records", lambda data, split: test if split == "test" else {})
    monkeypatch.setattr(
        headroom_module, "classifier_plans", lambda splits, seeds, name, weights=None: classifiers[name]
    )
    answers = {"a": truth["a"], "b": truth["b"], "c": wrong, "d": wrong}  # right on a and b
    rows = [
        {
            "id": frame,
            "truth": truth[frame].split(", "),
            "parsed": {"speed": [answer.split(", ")[0]], "path": ["STRAIGHT"]},
            "plan_correct": answer == truth[frame],
        }
        for frame, answer in answers.items()
    ]
    (tmp_path / "predictions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "headroom.json"
    arguments = ["--eval", "m", str(tmp_path), "--input", "the prompt alone", "--beside", "one frame", "--seeds", "0"]
    monkeypatch.setattr(sys, "argv", ["headroom", "data", *arguments, "--out", str(out)])
    headroom_module.main()
    written = json.loads(out.read_text())
    assert written["only_beside_frames"] == 2  # b and c
    result = written["results"]["m"]
    assert result["right_where_only_beside_tells"] == 1  # b
    assert result["told"] == 1 and result["right_where_not_told"] == 1  # d wrong though told; b right untold
    assert result["same_plan_as_classifier"] == 0.5  # a and c: the prompt classifier's KEEP, STRAIGHT
