"""The simulator scenarios, the expert driver that labels them, and navigation from the route.

The ego vehicle is replaced by highway-env's ``IDMVehicle``: IDM for speed, MOBIL for lane changes,
following its planned route through junctions; the same model drives the traffic around it.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())  # SDL complains without it; nothing is shown
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from highway_env.envs import HighwayEnv, IntersectionEnv, MergeEnv, RoundaboutEnv  # noqa: E402
from highway_env.envs.common.abstract import AbstractEnv  # noqa: E402
from highway_env.vehicle.behavior import IDMVehicle  # noqa: E402
from highway_env.vehicle.objects import Obstacle  # noqa: E402

from alphadrive_cli.config.schemas import SIM_RECORD_HZ, BevConfig  # noqa: E402

POLICY_HZ = SIM_RECORD_HZ  # ego states are recorded 5 times per simulated second
SIMULATION_HZ = 10


@dataclass(frozen=True)
class Scenario:
    """A highway-env environment class, its settings, and where the ego may be sent."""

    name: str
    env_class: type[AbstractEnv]
    config: dict[str, Any] = field(default_factory=dict)
    destinations: tuple[str, ...] = ()  # route targets for the expert; empty: follow the road
    setup: Callable[[AbstractEnv, IDMVehicle], None] | None = None  # changes the scene after reset
    expert_speed_mps: tuple[float, float] | None = None  # the expert's desired speed is drawn from this range
    junction: Callable[[tuple], bool] | None = None  # is this lane index inside the scenario's junction?

    def in_junction(self, lane_index: tuple) -> bool:
        """Whether ``lane_index`` lies inside the junction (a roundabout's ring, an intersection's connectors)."""
        return self.junction is not None and self.junction(lane_index)


BLOCKED_AHEAD_M = (60.0, 140.0)
EAGER_LANE_CHANGE_GAIN = 0.05  # MOBIL's threshold (highway-env default 0.2): the expert overtakes more readily


def block_road_ahead(env: AbstractEnv, ego: IDMVehicle) -> None:
    """Put obstacles across every lane somewhere ahead: traffic queues and the expert must stop."""
    distance = float(env.np_random.uniform(*BLOCKED_AHEAD_M))
    start, end, _ = ego.lane_index
    for lane in env.road.network.graph[start][end]:
        longitudinal = lane.local_coordinates(ego.position)[0] + distance
        env.road.objects.append(Obstacle(env.road, lane.position(longitudinal, 0.0)))


ROUNDABOUT_RING = frozenset({"se", "ex", "ee", "nx", "ne", "wx", "we", "sx"})  # highway-env's ring nodes


def on_roundabout_ring(lane_index: tuple) -> bool:
    """A lane of the roundabout's ring: both its nodes are ring nodes (entries and exits have one)."""
    return lane_index[0] in ROUNDABOUT_RING and lane_index[1] in ROUNDABOUT_RING


def in_intersection(lane_index: tuple) -> bool:
    """A connector lane inside the intersection: highway-env names them ``ir<corner> -> il<corner>``."""
    return str(lane_index[0]).startswith("ir")


SCENARIOS: dict[str, Scenario] = {
    "highway": Scenario(
        "highway",
        HighwayEnv,
        {"lanes_count": 4, "vehicles_count": 30, "vehicles_density": 1.2},
        expert_speed_mps=(22.0, 32.0),
    ),
    "blocked": Scenario(
        "blocked", HighwayEnv, {"lanes_count": 3, "vehicles_count": 12, "vehicles_density": 1.0}, setup=block_road_ahead
    ),
    "merge": Scenario("merge", MergeEnv),
    "roundabout": Scenario(
        "roundabout", RoundaboutEnv, destinations=("exr", "nxr", "wxr"), junction=on_roundabout_ring
    ),
    "intersection": Scenario(
        "intersection",
        IntersectionEnv,
        {"destination": None, "initial_vehicle_count": 10, "spawn_probability": 0.6},
        destinations=("o1", "o2", "o3"),
        junction=in_intersection,
    ),
}


@dataclass
class JunctionProgress:
    """Where the ego is against its scenario's junction: not reached yet, inside, or passed."""

    scenario: Scenario
    entered: bool = False
    passed: bool = False

    def update(self, lane_index: tuple) -> None:
        """Follow the ego's lane after a simulation step."""
        inside = self.scenario.in_junction(lane_index)
        self.entered = self.entered or inside
        self.passed = self.passed or (self.entered and not inside)


def bev_canvas_size(image_px: int, ego_row: float) -> int:
    """Side of the square top-down render that still covers the output crop after any rotation."""
    half_width, ahead = image_px / 2, ego_row * image_px
    return int(math.ceil(2 * math.hypot(half_width, ahead))) + 4


@contextmanager
def isolated_vehicle_defaults() -> Iterator[None]:
    """Undo changes an environment makes to ``IDMVehicle``'s class constants when the episode ends.

    highway-env's intersection sets ``IDMVehicle.DISTANCE_WANTED`` and its comfort accelerations for the
    whole process; without this, an episode's content would depend on which episodes ran before it.
    """
    saved = {key: value for key, value in vars(IDMVehicle).items() if key.isupper()}
    try:
        yield
    finally:
        for key in [key for key in vars(IDMVehicle) if key.isupper() and key not in saved]:
            delattr(IDMVehicle, key)
        for key, value in saved.items():
            setattr(IDMVehicle, key, value)


def make_env(
    scenario: Scenario, bev: BevConfig, image_px: int, duration_s: float, action: dict[str, Any] | None = None
) -> AbstractEnv:
    """An off-screen environment whose top-down renders cover the ``bev`` view at ``image_px``, centred on
    the ego (``action``: the environment's action config, for an ego that takes meta-actions)."""
    canvas_px = bev_canvas_size(image_px, bev.ego_row)
    config = {
        **scenario.config,
        "screen_width": canvas_px,
        "screen_height": canvas_px,
        "scaling": image_px / bev.view_m,
        "centering_position": [0.5, 0.5],
        "offscreen_rendering": True,
        "policy_frequency": POLICY_HZ,
        "simulation_frequency": SIMULATION_HZ,
        "duration": duration_s + 10,
        "show_trajectories": False,
        "render_agent": True,
        **({"action": action} if action is not None else {}),
    }
    return scenario.env_class(config=config, render_mode="rgb_array")


def install_expert(env: AbstractEnv, scenario: Scenario, destination: str | None) -> IDMVehicle:
    """Replace the controlled ego vehicle by an IDM/MOBIL driver (yielding at junctions where the road has rules)."""
    ego = env.vehicle
    expert = IDMVehicle.create_from(ego)
    if scenario.expert_speed_mps is not None:
        expert.target_speed = float(env.np_random.uniform(*scenario.expert_speed_mps))
        expert.LANE_CHANGE_MIN_ACC_GAIN = EAGER_LANE_CHANGE_GAIN
    if destination is not None:
        expert.plan_route_to(destination)
    elif getattr(ego, "route", None):
        expert.route = list(ego.route)
    env.road.vehicles[env.road.vehicles.index(ego)] = expert
    env.controlled_vehicles = [expert]
    return expert


def _heading_rh(env: AbstractEnv, lane_index: tuple, at_end: bool) -> float:
    lane = env.road.network.get_lane(lane_index if lane_index[2] is not None else (*lane_index[:2], 0))
    return -lane.heading_at(lane.length if at_end else 0.0)  # highway-env's y axis points down


def route_turn(env: AbstractEnv, route: list[tuple]) -> str:
    """'left', 'right' or 'straight': how the planned route's last lane is oriented against its first."""
    if not route:
        return "straight"
    change = _heading_rh(env, route[-1], True) - _heading_rh(env, route[0], False)
    change = math.atan2(math.sin(change), math.cos(change))
    if change > math.radians(45):
        return "left"
    if change < -math.radians(45):
        return "right"
    return "straight"


def navigation(scenario: Scenario, turn: str, junction_passed: bool) -> str:
    """The instruction a route planner would give now."""
    if scenario.name in ("highway", "blocked"):
        return "follow the highway"
    if scenario.name == "merge":
        return "follow the highway; traffic merges from the right ahead"
    if junction_passed:
        return "follow the road"
    if scenario.name == "roundabout":
        return {
            "left": "at the roundabout, take the exit on the left",
            "right": "at the roundabout, take the exit on the right",
            "straight": "at the roundabout, take the exit straight ahead",
        }[turn]
    return {
        "left": "turn left at the intersection",
        "right": "turn right at the intersection",
        "straight": "go straight through the intersection",
    }[turn]
