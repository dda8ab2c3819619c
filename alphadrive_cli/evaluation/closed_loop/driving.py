"""One closed-loop episode in highway-env, driven by plans (a model's) or by the expert that labels the data.

A plan ``(speed, path)`` becomes the simulator's meta-actions for highway-env's ``MDPVehicle``
(``data/sim/meta_actions.py``), following the episode's route. The expert is the IDM/MOBIL driver of
``alphadrive data sim``, on the same scenario, seed and route. The view given to the model is rendered
exactly as the data set renders its frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from alphadrive_cli.config.schemas import RenderConfig
from alphadrive_cli.data.sim.meta_actions import PATH_META, SPEED_META, TARGET_SPEEDS
from alphadrive_cli.data.sim.render import render_views
from alphadrive_cli.data.sim.scenarios import (
    POLICY_HZ,
    SCENARIOS,
    JunctionProgress,
    install_expert,
    make_env,
    navigation,
    route_turn,
)
from alphadrive_cli.data.sim.scene import scene_facts

IDLE = "IDLE"
EXPERT = "expert"


@dataclass(frozen=True)
class EpisodeSpec:
    """Which episode: the scenario, the simulator seed and (at junctions) the route's destination."""

    scenario: str
    seed: int
    destination: str | None

    @property
    def id(self) -> str:
        return f"{self.scenario}-s{self.seed}"


def episode_specs(scenarios: list[str], seeds: list[int]) -> list[EpisodeSpec]:
    """Every scenario with every seed; a junction's destination is drawn from the seed."""
    specs = []
    for scenario in scenarios:
        destinations = SCENARIOS[scenario].destinations
        for seed in seeds:
            destination = str(np.random.default_rng([seed, 7]).choice(destinations)) if destinations else None
            specs.append(EpisodeSpec(scenario, seed, destination))
    return specs


@dataclass
class Observation:
    """What the driver sees at a decision: the rendered views, the navigation instruction, the speed and the scene
    facts (as a data set frame records them: what a prompt that states them reads)."""

    images: list[Image.Image]
    navigation: str
    ego_speed_mps: float
    scene: dict[str, Any] | None = None


@dataclass
class EpisodeOutcome:
    """How an episode went (one row of ``closed_loop.json``'s ``episodes``)."""

    episode: str
    scenario: str
    seed: int
    driver: str
    collided: bool = False
    off_road: bool = False
    route_completed: bool = False
    distance_m: float = 0.0
    duration_s: float = 0.0
    decisions: int = 0
    parse_failures: int = 0
    plans: list[str] = field(default_factory=list)

    @property
    def mean_speed_mps(self) -> float:
        return self.distance_m / self.duration_s if self.duration_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if key != "plans"} | {
            "mean_speed_mps": round(self.mean_speed_mps, 3),
            "distance_m": round(self.distance_m, 2),
        }


class DrivingEpisode:
    """A running episode: observe, apply a plan, advance; ``done`` after a collision, leaving the road,
    or ``seconds`` of driving."""

    def __init__(self, spec: EpisodeSpec, driver: str, render: RenderConfig, seconds: float) -> None:
        scenario = SCENARIOS[spec.scenario]
        self.spec, self.render, self.seconds = spec, render, seconds
        action = {
            "type": "DiscreteMetaAction",
            "longitudinal": True,
            "lateral": True,
            "target_speeds": list(TARGET_SPEEDS[spec.scenario]),
        }
        self.env = make_env(scenario, render.bev, render.image_size, seconds, action=action)
        self.env.reset(seed=spec.seed)
        if driver == EXPERT:
            self.ego = install_expert(self.env, scenario, spec.destination)
        else:
            self.ego = self.env.vehicle
            if spec.destination is not None:
                self.ego.plan_route_to(spec.destination)
        if scenario.setup is not None:
            scenario.setup(self.env, self.ego)
        self.route = list(self.ego.route or [])
        self.turn = route_turn(self.env, self.route)
        self.junction = JunctionProgress(scenario)  # for the navigation, as in the data set
        self.reached_route_end = False
        self.steps = 0
        self.outcome = EpisodeOutcome(spec.id, spec.scenario, spec.seed, driver)

    @property
    def done(self) -> bool:
        o = self.outcome
        return o.collided or o.off_road or self.steps >= round(self.seconds * POLICY_HZ)

    def observe(self) -> Observation:
        """The views in the data set's rendering, the navigation instruction, the speed and the scene facts, as a
        data set frame."""
        scenario = SCENARIOS[self.spec.scenario]
        return Observation(
            render_views(self.env, self.render),
            navigation(scenario, self.turn, self.junction.passed),
            round(max(0.0, float(self.ego.speed)), 2),
            scene_facts(self.env, self.ego, scenario, self.junction),
        )

    def apply(self, speed: str, path: str) -> None:
        """Turn a plan into the ego's meta-actions (the expert ignores plans)."""
        if self.outcome.driver == EXPERT:
            return
        for meta in (SPEED_META.get(speed), PATH_META.get(path)):
            if meta is not None:
                self.ego.act(meta)
        self.outcome.plans.append(f"{speed}, {path}")

    def advance(self, seconds: float) -> None:
        """Simulate up to ``seconds`` (stopping early if the episode ends)."""
        idle = self.env.unwrapped.action_type.actions_indexes[IDLE]
        for _ in range(max(1, round(seconds * POLICY_HZ))):
            if self.done:
                break
            self.env.step(idle)
            self.steps += 1
            self.outcome.distance_m += max(0.0, float(self.ego.speed)) / POLICY_HZ
            self.outcome.duration_s = self.steps / POLICY_HZ
            self.outcome.collided = self.outcome.collided or bool(self.ego.crashed)
            self.outcome.off_road = self.outcome.off_road or not self.ego.on_road
            self.junction.update(tuple(self.ego.lane_index))
            if self.route and tuple(self.ego.lane_index[:2]) == tuple(self.route[-1][:2]):
                self.reached_route_end = True
        self._update_completion()

    def _update_completion(self) -> None:
        o = self.outcome
        safe = not (o.collided or o.off_road)
        if SCENARIOS[self.spec.scenario].destinations:
            o.route_completed = safe and self.reached_route_end
        else:  # roads without a junction: complete when the whole episode was driven safely
            o.route_completed = safe and self.steps >= round(self.seconds * POLICY_HZ)

    def close(self) -> None:
        self.env.close()
