"""Every candidate plan of a simulator frame, driven from the frame's exact state for the label horizon.

At a frame the environment is copied once per candidate plan; in the copy the expert is replaced by the
meta-action vehicle that closed loop drives (``MDPVehicle``, the scenario's ladder of target speeds), the plan
is held for the horizon as closed loop holds a plan the model repeats (its speed meta-action applied at every
decision, a lane change once), and the traffic drives on as it would have. Each rollout records collision,
leaving the road, progress, minimum time-to-collision with the lead vehicle and peak deceleration, and the plan
the rollout *realised* by the data set's own labelling rules (``labels.speed_action`` on the speed, and
``route_labels.route_path_action`` on the lanes). The verdict (docs/data.md#plans-judged-by-the-simulator):

    acceptable = no collision and on the road throughout, minimum TTC >= judge_rules.min_ttc_s (1.5 s),
                 and the realised plan is the plan itself.

Peak deceleration is recorded but not judged: the controller brakes one step of the speed ladder (5 m/s on a
highway) at up to about 9 m/s² (highway-env's proportional speed control, gain 1/0.6 s), so any threshold
below that would reject every DECELERATE it can drive.

Candidate paths are the ones the road offers at the frame: the lane keep, a lane change where that lane
exists, and at a junction not yet passed each turn some destination of the scenario leads to (the ego is
routed there). Every speed action is tried with each.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from highway_env.envs.common.abstract import AbstractEnv
from highway_env.vehicle.controller import MDPVehicle
from highway_env.vehicle.kinematics import Vehicle

from alphadrive_cli.config.schemas import JudgeRules, LabelRules
from alphadrive_cli.data.labels import speed_action
from alphadrive_cli.data.records import JudgedPlan
from alphadrive_cli.data.sim.meta_actions import PATH_META, SPEED_META, TARGET_SPEEDS
from alphadrive_cli.data.sim.route_labels import TURN_ACTION, route_path_action
from alphadrive_cli.data.sim.scenarios import POLICY_HZ, Scenario, route_turn
from alphadrive_cli.data.sim.scene import LEAD_RANGE_M, bumper_gap

SPEEDS = ("KEEP", "ACCELERATE", "DECELERATE", "STOP")
IDLE_ACTION = 1  # every scenario's discrete action 1 (IDLE); the plan acts on the vehicle directly
# Traffic that cannot come within the lead range of the ego during the horizon, even closing at this speed (two
# cars at 30 m/s head-on), is left out of a rollout: every vehicle costs each step a search over all the others
# (tests/test_plan_judge.py checks that leaving it out changes no outcome).
MAX_CLOSING_MPS = 60.0


def verdict(collision: bool, off_road: bool, min_ttc_s: float | None, realised: bool, rules: JudgeRules) -> bool:
    """The documented acceptability rule (module docstring)."""
    safe_gap = min_ttc_s is None or min_ttc_s >= rules.min_ttc_s
    return not collision and not off_road and safe_gap and realised


@contextmanager
def quiet_route_warnings() -> Iterator[None]:
    """Silence highway-env's "route does not start after current road" while a rerouted copy drives: the car then
    picks its next road itself, and the realised path says what happened."""
    logger = logging.getLogger("highway_env.road.road")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _routes(env: AbstractEnv, ego: Vehicle, scenario: Scenario, junction_passed: bool) -> dict[str, str | None]:
    """Path action -> destination to route the ego to (None: keep its own route), for the road's paths."""
    own = TURN_ACTION[route_turn(env, list(ego.route or []))] if scenario.destinations else "STRAIGHT"
    routes: dict[str, str | None] = {"STRAIGHT" if junction_passed else own: None}
    if junction_passed:
        return routes
    for destination in scenario.destinations:
        probe = copy.copy(ego)  # plan_route_to only sets .route; the copy shares the road
        probe.plan_route_to(destination)
        if len(probe.route or []) > 1:  # reachable from here (else the route is the current lane alone)
            routes.setdefault(TURN_ACTION[route_turn(env, list(probe.route))], destination)
    routes.setdefault("STRAIGHT", None)  # keeping the lane along the own route: STRAIGHT while the junction is far
    return routes


def candidate_plans(
    env: AbstractEnv, ego: Vehicle, scenario: Scenario, scene: dict[str, Any], junction_passed: bool
) -> list[tuple[str, str, str | None]]:
    """Every (speed, path, destination) the road offers at this frame."""
    routes = _routes(env, ego, scenario, junction_passed)
    paths = dict(routes)
    for side, path in (("left_lane", "LEFT_CHANGE"), ("right_lane", "RIGHT_CHANGE")):
        if scene.get(side, "none") != "none":
            paths[path] = None
    return [(speed, path, destination) for path, destination in paths.items() for speed in SPEEDS]


def _planner(env: AbstractEnv, ego: Vehicle, scenario: Scenario, destination: str | None) -> MDPVehicle:
    """The meta-action vehicle in ``ego``'s place (same state and route), holding its current speed."""
    vehicle = MDPVehicle.create_from(ego)
    vehicle.target_speeds = np.array(TARGET_SPEEDS[scenario.name])
    vehicle.target_speed = float(ego.speed)
    vehicle.speed_index = vehicle.speed_to_index(vehicle.speed)
    if destination is not None:
        vehicle.plan_route_to(destination)
    env.road.vehicles[env.road.vehicles.index(ego)] = vehicle
    env.controlled_vehicles = [vehicle]
    return vehicle


def _time_to_collision(vehicle: Vehicle) -> float | None:
    front, _ = vehicle.road.neighbour_vehicles(vehicle, vehicle.lane_index)
    gap = bumper_gap(vehicle, front, vehicle.lane_index)
    if gap is None or gap > LEAD_RANGE_M:  # as the scene facts: no lead vehicle beyond this
        return None
    closing = float(vehicle.speed) - float(getattr(front, "speed", 0.0))
    return max(gap, 0.0) / closing if closing > 0 else None


def judge_plan(
    env: AbstractEnv,
    ego: Vehicle,
    scenario: Scenario,
    plan: tuple[str, str, str | None],
    labels: LabelRules,
    rules: JudgeRules,
    radius_m: float | None = None,
) -> JudgedPlan:
    """Hold ``plan`` for ``labels.horizon_s`` in a copy of ``env`` (``ego``: its expert) and judge the outcome."""
    speed, path, destination = plan
    world = copy.deepcopy(env)
    vehicle = _planner(world, world.road.vehicles[env.road.vehicles.index(ego)], scenario, destination)
    radius_m = LEAD_RANGE_M + MAX_CLOSING_MPS * labels.horizon_s if radius_m is None else radius_m
    world.road.vehicles = [
        other for other in world.road.vehicles if np.linalg.norm(other.position - vehicle.position) <= radius_m
    ]
    turn = route_turn(world, list(vehicle.route or []))
    steps, every = round(labels.horizon_s * POLICY_HZ), max(1, round(rules.decision_interval_s * POLICY_HZ))
    speeds, lanes, inside = [float(vehicle.speed)], [tuple(vehicle.lane_index)], [False]
    ttcs: list[float] = []
    collision = off_road = False
    progress = peak = 0.0
    for step in range(steps):
        if step % every == 0 and SPEED_META.get(speed):
            vehicle.act(SPEED_META[speed])
        if step == 0 and PATH_META.get(path):
            vehicle.act(PATH_META[path])
        world.time += 1 / POLICY_HZ  # env.step without its observation and reward, which nothing here reads
        with quiet_route_warnings():
            world._simulate(IDLE_ACTION)
        peak = max(peak, (speeds[-1] - float(vehicle.speed)) * POLICY_HZ)
        speeds.append(float(vehicle.speed))
        lanes.append(tuple(vehicle.lane_index))
        inside.append(scenario.in_junction(lanes[-1]))
        progress += max(0.0, speeds[-1]) / POLICY_HZ
        if (ttc := _time_to_collision(vehicle)) is not None:
            ttcs.append(ttc)
        collision = collision or bool(vehicle.crashed)
        off_road = off_road or not vehicle.on_road
        if collision:
            break
    world.close()
    realised_speed = speed_action(speeds[0], speeds[-1], labels)
    realised_path, _ = route_path_action(lanes, inside, turn)
    min_ttc = min(ttcs) if ttcs else None
    return JudgedPlan(
        speed=speed,
        path=path,
        collision=collision,
        off_road=off_road,
        progress_m=round(progress, 1),
        min_ttc_s=None if min_ttc is None else round(min_ttc, 2),
        peak_deceleration_mps2=round(peak, 2),
        realised_speed=realised_speed,
        realised_path=realised_path,
        acceptable=verdict(collision, off_road, min_ttc, (realised_speed, realised_path) == (speed, path), rules),
    )


def judge_frame(
    env: AbstractEnv,
    ego: Vehicle,
    scenario: Scenario,
    scene: dict[str, Any],
    junction_passed: bool,
    labels: LabelRules,
    rules: JudgeRules,
) -> list[JudgedPlan]:
    """The ``plans`` of one frame: every candidate's outcome, in a fixed order."""
    plans = candidate_plans(env, ego, scenario, scene, junction_passed)
    return [judge_plan(env, ego, scenario, plan, labels, rules) for plan in plans]
