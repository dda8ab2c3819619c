"""Structured scene facts from the simulator's true state, for the grounded teacher and for analysis."""

from __future__ import annotations

import math
from typing import Any

from highway_env.envs.common.abstract import AbstractEnv
from highway_env.vehicle.kinematics import Vehicle

from alphadrive_cli.data.sim.scenarios import JunctionProgress, Scenario

FREE_AHEAD_M = 15.0  # an adjacent lane is "free" with this much room ahead of the ego ...
FREE_BEHIND_M = 10.0  # ... and this much behind it
NEARBY_M = 50.0
LEAD_RANGE_M = 100.0  # a vehicle further ahead than this is not "the lead vehicle"
ROUNDABOUT_RADIUS_M = 20.0  # highway-env's roundabout ring


def bumper_gap(ego: Vehicle, other: Vehicle | None, lane_index: tuple) -> float | None:
    """Metres between the two vehicles' bumpers along ``lane_index`` (None without another vehicle)."""
    if other is None:
        return None
    lane = ego.road.network.get_lane(lane_index)
    distance = lane.local_coordinates(other.position)[0] - lane.local_coordinates(ego.position)[0]
    return float(abs(distance) - (ego.LENGTH + other.LENGTH) / 2)


def _adjacent_lane(env: AbstractEnv, ego: Vehicle, offset: int) -> str:
    start, end, index = ego.lane_index
    lanes = env.road.network.graph[start][end]
    neighbour = index + offset
    if not 0 <= neighbour < len(lanes):
        return "none"
    front, rear = env.road.neighbour_vehicles(ego, (start, end, neighbour))
    ahead, behind = bumper_gap(ego, front, (start, end, neighbour)), bumper_gap(ego, rear, (start, end, neighbour))
    free = (ahead is None or ahead >= FREE_AHEAD_M) and (behind is None or behind >= FREE_BEHIND_M)
    return "free" if free else "occupied"


def _distance_to_junction(scenario: Scenario, ego: Vehicle, progress: JunctionProgress) -> float | None:
    """Metres to the junction ahead: 0 inside it, None where there is none or it is passed."""
    if scenario.junction is None or progress.passed:
        return None
    if scenario.in_junction(ego.lane_index):
        return 0.0
    if scenario.name == "roundabout":
        return max(0.0, float(math.hypot(*ego.position)) - ROUNDABOUT_RADIUS_M - 4.0)
    lane = ego.lane  # an intersection's approach lane ends where the junction begins
    return max(0.0, lane.length - lane.local_coordinates(ego.position)[0])


def scene_facts(env: AbstractEnv, ego: Vehicle, scenario: Scenario, progress: JunctionProgress) -> dict[str, Any]:
    """Lead vehicle, adjacent lanes, junction distance, speed limit and traffic around the ego."""
    front, _ = env.road.neighbour_vehicles(ego, ego.lane_index)
    gap = bumper_gap(ego, front, ego.lane_index)
    if gap is not None and gap > LEAD_RANGE_M:
        front = None
    lanes = env.road.network.graph[ego.lane_index[0]][ego.lane_index[1]]
    nearby = sum(
        1
        for vehicle in env.road.vehicles
        if vehicle is not ego and math.dist(vehicle.position, ego.position) < NEARBY_M
    )
    junction = _distance_to_junction(scenario, ego, progress)
    return {
        "lane": int(ego.lane_index[2]),
        "lanes": len(lanes),
        "lead_vehicle": None
        if front is None
        else {
            "gap_m": round(gap, 1),
            "relative_speed_mps": round(float(front.speed - ego.speed), 2),
            "kind": "vehicle" if isinstance(front, Vehicle) else "obstacle",
        },
        "left_lane": _adjacent_lane(env, ego, -1),
        "right_lane": _adjacent_lane(env, ego, +1),
        "speed_limit_mps": round(float(ego.lane.speed_limit), 1),
        "distance_to_junction_m": None if junction is None else round(junction, 1),
        "vehicles_within_50m": nearby,
        "yielding": bool(getattr(ego, "is_yielding", False)),  # junction priority rules made the ego give way
    }
