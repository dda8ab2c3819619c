"""The label audit: each check on hand-made records, `alphadrive data audit`, and `data import` reporting by line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from alphadrive_cli.config.schemas import LabelRules
from alphadrive_cli.data.audit import (
    DECELERATE_FROM_STANDSTILL,
    LANE_MISSING,
    STOP_AT_SPEED,
    STOP_WITHOUT_CAUSE,
    TURN_AGAINST_NAVIGATION,
    TURN_OUT_OF_REACH,
    TURN_WITHOUT_JUNCTION,
    audit_record,
    navigation_direction,
)
from alphadrive_cli.data.records import Record

RULES = LabelRules()
HIGHWAY = {
    "lane": 0,
    "lanes": 3,
    "lead_vehicle": None,
    "left_lane": "none",
    "right_lane": "free",
    "distance_to_junction_m": None,
    "yielding": False,
}
JUNCTION_AHEAD = {**HIGHWAY, "distance_to_junction_m": 12.0}
BEHIND_OBSTACLE = {**HIGHWAY, "lead_vehicle": {"gap_m": 6.0, "relative_speed_mps": -8.0, "kind": "obstacle"}}


def record(speed: str, path: str, ego_speed: float = 10.0, navigation: str = "follow the highway", scene=HIGHWAY):
    return Record(
        id="r",
        images=["images/r.png"],
        navigation=navigation,
        ego_speed_mps=ego_speed,
        speed_action=speed,
        path_action=path,
        scene=scene,
        source={"origin": "simulator"},
    )


@pytest.mark.parametrize(
    ("label", "check"),
    [
        (record("KEEP", "LEFT_CHANGE"), LANE_MISSING),  # lane 0 has no lane to its left
        (record("KEEP", "LEFT_TURN", navigation="head north"), TURN_WITHOUT_JUNCTION),
        (
            record("KEEP", "RIGHT_TURN", navigation="turn left at the intersection", scene=JUNCTION_AHEAD),
            TURN_AGAINST_NAVIGATION,
        ),
        (
            record(
                "KEEP",
                "LEFT_TURN",
                ego_speed=2.0,
                navigation="turn left at the intersection",
                scene={**JUNCTION_AHEAD, "distance_to_junction_m": 200.0},
            ),
            TURN_OUT_OF_REACH,
        ),
        (record("STOP", "STRAIGHT", ego_speed=40.0, scene=BEHIND_OBSTACLE), STOP_AT_SPEED),
        (record("STOP", "STRAIGHT", ego_speed=5.0), STOP_WITHOUT_CAUSE),
        (record("DECELERATE", "STRAIGHT", ego_speed=0.4), DECELERATE_FROM_STANDSTILL),
    ],
)
def test_each_check_finds_its_impossible_label(label: Record, check: str) -> None:
    assert [finding.check for finding in audit_record(label, "train", RULES)] == [check]


@pytest.mark.parametrize(
    "label",
    [
        record("KEEP", "RIGHT_CHANGE"),
        record("KEEP", "LEFT_TURN", navigation="turn left at the intersection", scene=JUNCTION_AHEAD),
        record("KEEP", "STRAIGHT", navigation="at the roundabout, take the exit straight ahead", scene=JUNCTION_AHEAD),
        record("STOP", "STRAIGHT", ego_speed=5.0, scene={**HIGHWAY, "yielding": True}),
        record("STOP", "STRAIGHT", ego_speed=8.0, scene=BEHIND_OBSTACLE),
        record("DECELERATE", "STRAIGHT", ego_speed=3.0),
    ],
)
def test_possible_labels_pass(label: Record) -> None:
    assert audit_record(label, "train", RULES) == []


def test_turns_from_the_motion_rules_are_not_held_to_the_navigation() -> None:
    """Imported poses have no map: their heading rule calls a curve a turn, which a navigation may not name."""
    curve = record("KEEP", "LEFT_TURN", navigation="follow the highway", scene=None)
    assert [finding.check for finding in audit_record(curve, "train", RULES)] == [TURN_AGAINST_NAVIGATION]
    curve.label_source = {"speed": "poses.speed_change", "path": "poses.heading_change"}
    assert audit_record(curve, "train", RULES) == []


def test_records_without_scene_facts_are_checked_as_far_as_their_fields_allow() -> None:
    bare = record("STOP", "LEFT_CHANGE", ego_speed=5.0, scene=None)  # no scene: no lane or cause checks
    assert audit_record(bare, "train", RULES) == []
    turning = record("KEEP", "RIGHT_TURN", navigation="turn left ahead", scene=None)
    assert [finding.check for finding in audit_record(turning, "train", RULES)] == [TURN_AGAINST_NAVIGATION]


@pytest.mark.parametrize(
    ("text", "direction"),
    [
        ("turn left at the intersection", "left"),
        ("at the roundabout, take the exit on the right", "right"),
        ("at the roundabout, take the exit straight ahead", "straight"),
        ("follow the highway; traffic merges from the right ahead", "straight"),
        ("go straight", "straight"),
        ("head to the airport", None),
        ("follow the road, then turn left", None),  # two directions: no evidence either way
    ],
)
def test_navigation_direction(text: str, direction: str | None) -> None:
    assert navigation_direction(text) == direction


def _frames_file(folder: Path, rows: list[dict[str, Any]]) -> Path:
    Image.fromarray(np.full((16, 16, 3), 90, dtype=np.uint8)).save(folder / "f.png")
    source = folder / "frames.jsonl"
    source.write_text("".join(json.dumps({"image": "f.png", **row}) + "\n" for row in rows))
    return source


ROWS = [
    {"navigation": "go straight", "ego_speed_mps": 10, "speed_action": "KEEP", "path_action": "STRAIGHT"},
    {"navigation": "turn left ahead", "ego_speed_mps": 8, "speed_action": "KEEP", "path_action": "RIGHT_TURN"},
    {"navigation": "go straight", "ego_speed_mps": 45, "speed_action": "STOP", "path_action": "STRAIGHT"},
]


def test_import_lists_impossible_labels_by_line_and_keeps_them(cli, runs: Path, tmp_path: Path) -> None:
    source = _frames_file(tmp_path, ROWS)
    result = cli("data", "import", source)
    assert result.exit_code == 0, result.stderr
    assert "impossible labels" in result.stderr and TURN_AGAINST_NAVIGATION in result.stderr
    audit = json.loads((Path(result.stdout.strip()) / "manifest.json").read_text())["audit"]
    assert audit["impossible"] == 2 and audit["records"] == 3
    assert {example["line"] for example in audit["examples"]} == {2, 3}

    audited = cli("data", "audit", result.stdout.strip(), "--json")
    assert audited.exit_code == 0, audited.stderr
    summary = json.loads(audited.stdout)
    assert summary["checks"][TURN_AGAINST_NAVIGATION] == 1 and summary["checks"][STOP_AT_SPEED] == 1
    assert cli("data", "audit", result.stdout.strip(), "--strict").exit_code == 1
    table = cli("data", "audit", result.stdout.strip())
    assert "2 of 3 records impossible" in table.stdout


def test_strict_import_refuses_an_impossible_label_naming_its_line(cli, runs: Path, tmp_path: Path) -> None:
    source = _frames_file(tmp_path, ROWS)
    result = cli("data", "import", source, "--strict")
    assert result.exit_code == 2 and result.stdout == ""
    assert "line 2: impossible label" in result.stderr and not (runs / "data").exists()


def test_audit_of_a_clean_import_passes_strict(cli, runs: Path, tmp_path: Path) -> None:
    result = cli("data", "import", _frames_file(tmp_path, ROWS[:1]))
    assert result.exit_code == 0, result.stderr
    assert cli("data", "audit", result.stdout.strip(), "--strict").exit_code == 0
