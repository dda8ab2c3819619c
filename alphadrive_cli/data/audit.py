"""Labels that cannot be true: every record checked against its own scene facts, speed and navigation.

A check only runs where the record carries what it needs (simulator records have ``scene`` facts;
imported frames may have only a speed and a navigation), so an imported data set is audited as far
as its fields allow. The checks, with the physical bounds they use, are listed in docs/data.md#audit.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from alphadrive_cli.config.schemas import LabelRules
from alphadrive_cli.data.records import Record

GRAVITY_MPS2 = 9.81  # no car brakes or accelerates harder than 1 g: the bound of the reach checks
EXAMPLES_KEPT = 20
TURNS = {"LEFT_TURN": "left", "RIGHT_TURN": "right"}

LANE_MISSING = "lane change into a lane that does not exist"
TURN_WITHOUT_JUNCTION = "turn with no junction ahead"
TURN_OUT_OF_REACH = "turn at a junction out of reach within the horizon"
TURN_AGAINST_NAVIGATION = "turn against the navigation"
STOP_AT_SPEED = "STOP from a speed no brake stops within the horizon"
STOP_WITHOUT_CAUSE = "STOP with no lead vehicle, junction or yielding"
DECELERATE_FROM_STANDSTILL = "DECELERATE slower than the rule's speed drop"
CHECKS = (
    LANE_MISSING,
    TURN_WITHOUT_JUNCTION,
    TURN_OUT_OF_REACH,
    TURN_AGAINST_NAVIGATION,
    STOP_AT_SPEED,
    STOP_WITHOUT_CAUSE,
    DECELERATE_FROM_STANDSTILL,
)

_NAVIGATION_DIRECTIONS = (
    (re.compile(r"\bfollow the\b|\bgo straight\b|\bstraight (ahead|on|through)\b"), "straight"),
    (re.compile(r"\b(turn|exit on the|bear|keep) left\b"), "left"),
    (re.compile(r"\b(turn|exit on the|bear|keep) right\b"), "right"),
)


@dataclass(frozen=True)
class Finding:
    """One impossible label: which record, which check, and the facts that contradict it."""

    record_id: str
    split: str
    check: str
    detail: str
    line: int | None = None  # the source file's line, for imported records


def navigation_direction(navigation: str) -> str | None:
    """'left', 'right' or 'straight' when the instruction says so plainly; None when it does not."""
    text = navigation.lower()
    found = {direction for pattern, direction in _NAVIGATION_DIRECTIONS if pattern.search(text)}
    return found.pop() if len(found) == 1 else None  # "follow the road, then turn left" says two things


def _reach_m(speed_mps: float, horizon_s: float) -> float:
    return speed_mps * horizon_s + GRAVITY_MPS2 * horizon_s**2 / 2


def _path_problems(record: Record, scene: Mapping[str, Any], rules: LabelRules) -> Iterable[tuple[str, str]]:
    path = record.path_action
    side = {"LEFT_CHANGE": "left_lane", "RIGHT_CHANGE": "right_lane"}.get(path)
    if side is not None and scene.get(side) == "none":
        yield LANE_MISSING, f"{path} with {side} none (lane {scene.get('lane')} of {scene.get('lanes')})"
    if path not in TURNS:
        return
    direction = navigation_direction(record.navigation)
    from_motion = str((record.label_source or {}).get("path", "")).startswith("poses.")  # curves count as turns there
    if direction is not None and direction != TURNS[path] and not from_motion:
        yield TURN_AGAINST_NAVIGATION, f"{path} while the navigation says {record.navigation!r}"
    if "distance_to_junction_m" not in scene:
        return
    distance = scene["distance_to_junction_m"]
    if distance is None:
        yield TURN_WITHOUT_JUNCTION, f"{path} with no junction ahead"
    elif distance > _reach_m(record.ego_speed_mps, rules.horizon_s):
        yield TURN_OUT_OF_REACH, f"{path} {distance:.0f} m before the junction at {record.ego_speed_mps:.1f} m/s"


def _speed_problems(record: Record, scene: Mapping[str, Any] | None, rules: LabelRules) -> Iterable[tuple[str, str]]:
    speed, action = record.ego_speed_mps, record.speed_action
    if action == "STOP" and speed > rules.stop_speed_mps + GRAVITY_MPS2 * rules.horizon_s:
        yield STOP_AT_SPEED, f"STOP at {speed:.1f} m/s with a {rules.horizon_s:g} s horizon"
    if action == "DECELERATE" and speed <= rules.decelerate_mps:
        yield (
            DECELERATE_FROM_STANDSTILL,
            f"DECELERATE at {speed:.2f} m/s (the rule needs a drop > {rules.decelerate_mps})",
        )
    if action == "STOP" and scene is not None and {"lead_vehicle", "yielding", "distance_to_junction_m"} <= set(scene):
        lead = scene["lead_vehicle"]
        junction = scene["distance_to_junction_m"]
        near_lead = lead is not None and lead["gap_m"] <= _reach_m(speed, rules.horizon_s)
        near_junction = junction is not None and junction <= _reach_m(speed, rules.horizon_s)
        if not (near_lead or near_junction or scene["yielding"]):
            yield STOP_WITHOUT_CAUSE, f"STOP at {speed:.1f} m/s, no lead vehicle or junction within reach"


def audit_record(record: Record, split: str, rules: LabelRules) -> list[Finding]:
    """The impossible labels of one record (empty when its labels agree with everything it states)."""
    scene = record.scene if record.scene and "derived_from" not in record.scene else None
    problems = [*_speed_problems(record, scene, rules), *_path_problems(record, scene or {}, rules)]
    line = record.source.get("line") if record.source.get("origin") == "import" else None
    return [Finding(record.id, split, check, detail, line) for check, detail in problems]


def audit_records(records_by_split: Mapping[str, Sequence[Record]], rules: LabelRules) -> list[Finding]:
    """Every finding of every split, in split and record order."""
    return [
        finding
        for split, records in records_by_split.items()
        for record in records
        for finding in audit_record(record, split, rules)
    ]


def audit_summary(records_by_split: Mapping[str, Sequence[Record]], findings: Sequence[Finding]) -> dict[str, Any]:
    """``{"records", "impossible", "checks": {check: count}, "examples": [the first 20]}`` for the manifest."""
    per_check = Counter(finding.check for finding in findings)
    return {
        "records": sum(len(records) for records in records_by_split.values()),
        "impossible": len({(finding.split, finding.record_id) for finding in findings}),
        "checks": {check: per_check.get(check, 0) for check in CHECKS},
        "examples": [finding_row(finding) for finding in findings[:EXAMPLES_KEPT]],
    }


def finding_row(finding: Finding) -> dict[str, Any]:
    """A finding as a JSON object (no ``line`` for simulator records)."""
    return {key: value for key, value in vars(finding).items() if value is not None}


def audit_table(summary: Mapping[str, Any], title: str) -> Table:
    """Counts per check, then the first examples."""
    table = Table(title=title, caption=f"{summary['impossible']} of {summary['records']} records impossible")
    table.add_column("check")
    table.add_column("records", justify="right")
    for check, count in summary["checks"].items():
        table.add_row(check, str(count), style="red" if count else None)
    return table
