"""bench/label_ceiling.py: how much of the speed labels the recorded scene state of one or two frames predicts."""

from __future__ import annotations

import random
from typing import Any

import torch

from bench import label_ceiling


def _episodes(count: int, seed: int) -> dict[str, dict[str, Any]]:
    """Episodes whose speed label is DECELERATE exactly when the ego slowed down since the frame before: the speed
    walks by random steps from a random start, so its level says nothing of the last step's sign, and every frame
    looks alike otherwise; only the previous frame tells."""
    rng = random.Random(seed)
    records = {}
    for episode in range(count):
        speed = rng.uniform(20, 30)
        for frame in range(6):
            step = rng.uniform(-2, 2) if frame else 0.0
            speed += step
            records[f"e{episode}-f{frame}"] = {
                "id": f"e{episode}-f{frame}",
                "ego_speed_mps": speed,
                "navigation": "keep going",
                "speed_action": "DECELERATE" if step < 0 else "KEEP",
                "scene": {"speed_limit_mps": 30.0, "lead_vehicle": None, "left_lane": "none", "right_lane": "none"},
                "source": {"scenario": "highway", "episode": episode, "frame": frame},
            }
    return records


def _instructed_splits(train: int, test: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Train, val (20) and test splits of ``_episodes`` whose path is LEFT_TURN exactly where every third frame's
    instruction says to turn left, STRAIGHT elsewhere."""
    splits = {
        name: _episodes(count, seed) for name, count, seed in (("train", train, 0), ("val", 20, 1), ("test", test, 2))
    }
    for records in splits.values():
        for index, record in enumerate(records.values()):
            turn = index % 3 == 0
            record["navigation"] = "turn left at the junction" if turn else "keep going"
            record["path_action"] = "LEFT_TURN" if turn else "STRAIGHT"
    return splits


def test_a_label_set_by_the_previous_frame_is_predictable_from_the_earlier_speed_and_not_from_one_frame() -> None:
    splits = {name: _episodes(count, seed) for name, count, seed in (("train", 80, 0), ("val", 20, 1), ("test", 30, 2))}
    vocab = label_ceiling.categories(list(splits["train"].values()))
    scores = {}
    for name in ("one frame", "one frame + earlier speed"):
        closing_speed, changes = label_ceiling.INPUTS[name]
        train, val, test = (label_ceiling.features(splits[split], vocab, closing_speed, changes) for split in splits)
        scores[name] = label_ceiling.fit_and_score(train, val, test, seed=0, epochs=200)
    assert scores["one frame + earlier speed"]["test_accuracy"] >= 0.95
    assert scores["one frame + earlier speed"]["recall"]["DECELERATE"] >= 0.9
    assert scores["one frame + earlier speed"]["val_recall"]["DECELERATE"] >= 0.9  # the validation split too
    assert set(scores["one frame"]["val_recall"]) == set(label_ceiling.ACTIONS["speed"])
    assert scores["one frame + earlier speed"]["test_accuracy"] >= scores["one frame"]["test_accuracy"] + 0.15


def test_the_previous_frame_is_the_same_episodes_one_step_earlier_and_imported_frames_have_none() -> None:
    records = _episodes(2, 0)
    records["imported"] = {**records["e0-f0"], "id": "imported", "source": {"origin": "import", "line": 3}}
    vocab = label_ceiling.categories(list(records.values()))
    matrix, _ = label_ceiling.features(records, vocab, closing_speed=False, changes=("speed", "gap"))
    rows = dict(zip(records, matrix.tolist(), strict=True))
    assert rows["e0-f0"][-3:] == [0.0, 0.0, 0.0] and rows["imported"][-3:] == [0.0, 0.0, 0.0]
    change = records["e1-f3"]["ego_speed_mps"] - records["e1-f2"]["ego_speed_mps"]
    assert rows["e1-f3"][-3] == 1.0 and abs(rows["e1-f3"][-2] - change) < 1e-5
    # every input says whether a previous frame exists, the one-frame input too
    one_frame, _ = label_ceiling.features(records, vocab, closing_speed=False, changes=())
    assert one_frame[list(records).index("e1-f3"), -1] == 1.0


def test_the_path_label_is_predicted_the_same_way_and_the_majority_baseline_is_the_train_splits() -> None:
    """A path label set by the navigation instruction: every input learns it, and always STRAIGHT (the train split's
    most frequent path) is the baseline."""
    splits = _instructed_splits(60, 20)
    vocab = label_ceiling.categories(list(splits["train"].values()))
    closing_speed, changes = label_ceiling.INPUTS["one frame"]
    train, val, test = (
        label_ceiling.features(splits[split], vocab, closing_speed, changes, label="path") for split in splits
    )
    assert int(train[1].max()) < len(label_ceiling.ACTIONS["path"])
    scored = label_ceiling.fit_and_score(train, val, test, seed=0, epochs=200, label="path")
    assert scored["test_accuracy"] >= 0.95 and scored["recall"]["LEFT_TURN"] >= 0.9
    assert set(scored["recall"]) == set(label_ceiling.ACTIONS["path"])
    assert label_ceiling.majority_action(splits["train"], "path") == "STRAIGHT"
    assert label_ceiling.majority_action(splits["train"], "speed") in ("KEEP", "DECELERATE")
    turns = {key: {**record, "path_action": "LEFT_TURN"} for key, record in list(splits["train"].items())[:100]}
    assert label_ceiling.majority_action({**splits["train"], **turns}, "path") == "LEFT_TURN"
    majority = label_ceiling.scored(torch.zeros_like(test[1]), test[1], label="path")  # STRAIGHT is index 0
    assert majority["recall"]["STRAIGHT"] == 1.0 and majority["test_accuracy"] < 0.7


def test_the_plan_label_is_both_actions_as_one_class_and_needs_both_predictable() -> None:
    """Path set by the instruction, speed by the previous frame: the plan is predictable only from the earlier
    speed, and a plan's class is its "SPEED, PATH" pair."""
    splits = _instructed_splits(80, 30)
    vocab = label_ceiling.categories(list(splits["train"].values()))
    scores = {}
    for name in ("one frame", "one frame + earlier speed"):
        closing_speed, changes = label_ceiling.INPUTS[name]
        train, val, test = (
            label_ceiling.features(splits[split], vocab, closing_speed, changes, label="plan") for split in splits
        )
        scores[name] = label_ceiling.fit_and_score(train, val, test, seed=0, epochs=200, label="plan")
    first = next(iter(splits["test"].values()))
    assert label_ceiling.ACTIONS["plan"][int(test[1][0])] == f"{first['speed_action']}, {first['path_action']}"
    assert scores["one frame + earlier speed"]["test_accuracy"] >= 0.9
    assert scores["one frame + earlier speed"]["test_accuracy"] >= scores["one frame"]["test_accuracy"] + 0.15
    assert label_ceiling.majority_action(splits["train"], "plan") == "KEEP, STRAIGHT"


def test_the_scene_prompt_input_changes_exactly_where_the_perception_line_does() -> None:
    """The scene prompt's numbers follow the facts `student-scene-v1` states (the lead and its gap, the lanes beside,
    the junction) and ignore those its line leaves out (the speed limit, the lead's closing speed, the traffic)."""
    from alphadrive_cli.prompts import perceived_scene_text

    base = {
        "id": "f",
        "ego_speed_mps": 12.0,
        "navigation": "keep going",
        "scene": {
            "speed_limit_mps": 20.0,
            "lead_vehicle": {"kind": "vehicle", "gap_m": 30.0, "relative_speed_mps": -2.0},
            "left_lane": "free",
            "right_lane": "none",
            "distance_to_junction_m": 80.0,
            "vehicles_within_50m": 3,
        },
    }
    numbers = label_ceiling.PROMPT_INPUTS[label_ceiling.SCENE_PROMPT_INPUT]
    unstated = [
        ("speed_limit_mps", 30.0),
        ("vehicles_within_50m", 0),
        ("lead_vehicle", {"kind": "vehicle", "gap_m": 30.0, "relative_speed_mps": 3.0}),
    ]
    stated = [
        ("lead_vehicle", {"kind": "obstacle", "gap_m": 12.0}),
        ("left_lane", "occupied"),
        ("distance_to_junction_m", 40.0),
    ]
    for change in (*unstated, *stated):
        key, value = change
        changed = {**base, "scene": {**base["scene"], key: value}}
        line_changed = perceived_scene_text(changed["scene"]) != perceived_scene_text(base["scene"])
        assert line_changed == (change in stated), change
        assert (numbers(changed, ["keep going"]) != numbers(base, ["keep going"])) == line_changed, change
    assert numbers(base, ["keep going"])[:2] == label_ceiling.prompt_numbers(base, ["keep going"])
