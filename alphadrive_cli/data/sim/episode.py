"""One simulated episode: the expert drives, frames are rendered and labelled from what it does next
(its lane and route on the road network for the path, its speed for the speed; see ``route_labels``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alphadrive_cli.config.schemas import DataConfig
from alphadrive_cli.data.labels import speed_action
from alphadrive_cli.data.sim.plan_judge import judge_frame
from alphadrive_cli.data.sim.render import png_bytes, render_views
from alphadrive_cli.data.sim.route_labels import EXPERT_SPEED_RULE, route_path_action
from alphadrive_cli.data.sim.scenarios import (
    POLICY_HZ,
    SCENARIOS,
    JunctionProgress,
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
CRASH_MARGIN_STEPS = POLICY_HZ  # no label window ends within 1 s of an expert crash: its last moves are no example


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
    pngs: list[bytes]  # one per configured view, in order
    ego_speed_mps: float
    navigation: str
    scene: dict[str, Any]
    speed_action: str
    path_action: str
    label_source: dict[str, str]
    plans: list[dict[str, Any]] | None = None  # with judge: every candidate plan's outcome


@dataclass(frozen=True)
class EgoState:
    """The expert at one recorded step: speed (m/s), lane index and whether it is in the junction."""

    speed: float
    lane_index: tuple
    in_junction: bool


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
    env = make_env(scenario, config.render.bev, config.render.image_size, end_time)
    try:
        env.reset(seed=plan.env_seed)
        ego = install_expert(env, scenario, plan.destination)
        if scenario.setup is not None:
            scenario.setup(env, ego)
        route = list(ego.route or [])
        turn = route_turn(env, route)
        progress = JunctionProgress(scenario)
        frame_at_step = {round(t * POLICY_HZ): k for k, t in enumerate(frame_times)}
        states: list[EgoState] = []
        pending: dict[int, tuple[int, dict[str, Any]]] = {}
        result = EpisodeResult(plan)
        for step in range(round(end_time * POLICY_HZ) + 1):
            if step:
                env.step(IDLE_ACTION)
            if ego.crashed:
                result.crashed = True
                break
            lane_index = tuple(ego.lane_index)
            progress.update(lane_index)
            states.append(EgoState(float(ego.speed), lane_index, scenario.in_junction(lane_index)))
            if step in frame_at_step:
                scene = scene_facts(env, ego, scenario, progress)
                judged = (
                    judge_frame(env, ego, scenario, scene, progress.passed, config.labels, config.judge_rules)
                    if config.judge
                    else None
                )
                pending[len(states) - 1] = (
                    frame_at_step[step],
                    {
                        "pngs": [png_bytes(view) for view in render_views(env, config.render)],
                        "ego_speed_mps": round(float(ego.speed), 2),
                        "navigation": navigation(scenario, turn, progress.passed),
                        "scene": scene,
                        "plans": None if judged is None else [plan.model_dump() for plan in judged],
                    },
                )
    finally:
        env.close()
    steps = round(config.labels.horizon_s * POLICY_HZ)
    for state_index, (frame, facts) in sorted(pending.items()):
        window = states[state_index : state_index + steps + 1]
        margin = CRASH_MARGIN_STEPS if result.crashed else 0
        if state_index + steps + margin >= len(states):  # the horizon passes the end, or comes near the crash
            result.unlabelled_frames += 1
            continue
        path, path_rule = route_path_action(
            [state.lane_index for state in window], [state.in_junction for state in window], turn
        )
        result.frames.append(
            SimFrame(
                frame=frame,
                time_s=frame_times[frame],
                speed_action=speed_action(window[0].speed, window[-1].speed, config.labels),
                path_action=path,
                label_source={"speed": EXPERT_SPEED_RULE, "path": path_rule},
                **facts,
            )
        )
    result.unlabelled_frames += len(frame_times) - len(pending)
    return result
