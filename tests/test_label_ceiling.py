"""bench/label_ceiling.py: how much of the speed labels the recorded scene state of one or two frames predicts."""

from __future__ import annotations

import random
from typing import Any

from bench import label_ceiling


def _episodes(count: int, seed: int) -> dict[str, dict[str, Any]]:
    """Episodes whose speed label is DECELERATE exactly when the ego slowed down since the frame before: one frame
    holds no trace of it (every frame looks alike but for its speed, drawn at random), two frames show it."""
    rng = random.Random(seed)
    records = {}
    for episode in range(count):
        speed = rng.uniform(5, 15)
        for frame in range(6):
            before, speed = speed, rng.uniform(5, 15)
            action = "DECELERATE" if frame > 0 and speed < before else "KEEP"
            records[f"e{episode}-f{frame}"] = {
                "id": f"e{episode}-f{frame}",
                "ego_speed_mps": speed,
                "navigation": "keep going",
                "speed_action": action,
                "scene": {"speed_limit_mps": 20.0, "lead_vehicle": None, "left_lane": "none", "right_lane": "none"},
                "source": {"scenario": "highway", "episode": episode, "frame": frame},
            }
    return records


def test_a_label_set_by_the_previous_frame_is_predictable_from_two_frames_and_not_from_one() -> None:
    splits = {name: _episodes(count, seed) for name, count, seed in (("train", 60, 0), ("val", 20, 1), ("test", 20, 2))}
    vocab = label_ceiling.categories(list(splits["train"].values()))
    scores = {}
    for name, two_frames in (("frame", False), ("two frames", True)):
        train, val, test = (label_ceiling.features(splits[split], vocab, False, two_frames) for split in splits)
        scores[name] = label_ceiling.fit_and_score(train, val, test, seed=0)
    assert scores["two frames"]["test_accuracy"] >= 0.95
    assert scores["two frames"]["recall"]["DECELERATE"] >= 0.9
    assert scores["frame"]["test_accuracy"] <= 0.7  # about the majority's share: one frame cannot tell


def test_the_previous_frame_is_the_same_episodes_one_step_earlier() -> None:
    records = _episodes(2, 0)
    vocab = label_ceiling.categories(list(records.values()))
    matrix, _ = label_ceiling.features(records, vocab, closing_speed=False, two_frames=True)
    rows = dict(zip(records, matrix.tolist(), strict=True))
    assert rows["e0-f0"][-3:] == [0.0, 0.0, 0.0]  # the first frame has none
    change = records["e1-f3"]["ego_speed_mps"] - records["e1-f2"]["ego_speed_mps"]
    assert rows["e1-f3"][-3] == 1.0 and abs(rows["e1-f3"][-2] - change) < 1e-5
