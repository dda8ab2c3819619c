"""One simulated episode: the expert drives, frames are rendered and labelled from its future motion."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alphadrive_cli.config.schemas import DataConfig
from alphadrive_cli.data.labels import Track, label_at
from alphadrive_cli.data.sim.render import canvas_size, heading_up_view, png_bytes, render_world
from alphadrive_cli.data.sim.scenarios import (
    POLICY_HZ,
    SCENARIOS,
    Scenario,
    install_expert,
    isolated_vehicle_defaults,
    make_env,
    navigation,
    route_turn,
)
from alphadrive_cli.data.sim.scene import scene_facts

WARMUP_S = 1.0  # let the traffic settle before the first frame
IDLE_ACTION = 1  # every scenario's discrete action 1; the expert ignores actions anyway


@dataclass(frozen=True)
class EpisodePlan:
    """Which episode to simulate: everything that decides its content."""

    index: int
    scenario: str
    env_seed: int
    destination: str | None
    split: str


@dataclass
class SimFrame:
    """A rendered, labelled frame."""

    frame: int
    time_s: float
    png: bytes
    ego_speed_mps: float
    navigation: str
    scene: dict[str, Any]
    speed_action: str
    path_action: str


@dataclass
class EpisodeResult:
    """The frames of an episode, and what was lost (expert crash, horizon past the episode's end)."""

    plan: EpisodePlan
    frames: list[SimFrame] = field(default_factory=list)
    crashed: bool = False
    unlabelled_frames: int = 0


def run_episode(plan: EpisodePlan, config: DataConfig) -> EpisodeResult:
    """Simulate one episode and return its labelled frames."""
    scenario = SCENARIOS[plan.scenario]
    frame_times = [WARMUP_S + k * config.frame_interval_s for k in range(config.frames_per_episode)]
    end_time = frame_times[-1] + config.labels.horizon_s
    with isolated_vehicle_defaults():
        return _simulate_and_label(plan, config, scenario, frame_times, end_time)


def _simulate_and_label(
    plan: EpisodePlan, config: DataConfig, scenario: Scenario, frame_times: list[float], end_time: float
) -> EpisodeResult:
    env = make_env(
        scenario, canvas_size(config.image_size, config.ego_row), config.image_size / config.view_m, end_time
    )
    try:
        env.reset(seed=plan.env_seed)
        ego = install_expert(env, scenario, plan.destination)
        if scenario.setup is not None:
            scenario.setup(env, ego)
        route = list(ego.route or [])
        turn = route_turn(env, route)
        frame_at_step = {round(t * POLICY_HZ): k for k, t in enumerate(frame_times)}
        states: list[tuple[float, float, float, float, float]] = []
        pending: dict[int, tuple[int, dict[str, Any]]] = {}
        result = EpisodeResult(plan)
        for step in range(round(end_time * POLICY_HZ) + 1):
            if step:
                env.step(IDLE_ACTION)
            if ego.crashed:
                result.crashed = True
                break
            # highway-env's y axis points down: flip it for the right-handed frame the label rules use
            states.append(
                (
                    step / POLICY_HZ,
                    float(ego.position[0]),
                    -float(ego.position[1]),
                    -float(ego.heading),
                    float(ego.speed),
                )
            )
            if step in frame_at_step:
                passed = bool(route) and tuple(ego.lane_index[:2]) == tuple(route[-1][:2])
                view = heading_up_view(render_world(env), ego.heading, config.image_size, config.ego_row)
                pending[len(states) - 1] = (
                    frame_at_step[step],
                    {
                        "png": png_bytes(view),
                        "ego_speed_mps": round(float(ego.speed), 2),
                        "navigation": navigation(scenario, turn, passed),
                        "scene": scene_facts(env, ego, scenario.name),
                    },
                )
    finally:
        env.close()
    track = Track(*(np.array(column) for column in zip(*states, strict=False))) if states else None
    for state_index, (frame, facts) in sorted(pending.items()):
        labels = label_at(track, state_index, config.labels) if track is not None else None
        if labels is None:
            result.unlabelled_frames += 1
            continue
        result.frames.append(
            SimFrame(frame=frame, time_s=frame_times[frame], speed_action=labels[0], path_action=labels[1], **facts)
        )
    result.unlabelled_frames += len(frame_times) - len(pending)
    return result
