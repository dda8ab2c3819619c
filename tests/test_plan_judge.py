"""The plan judge (``data sim --judge``): every candidate plan driven from the frame's simulator state."""

from __future__ import annotations

import json

import pytest

from alphadrive_cli.artifacts.store import OutputSpec, open_artifact
from alphadrive_cli.config.resolve import resolve_config
from alphadrive_cli.config.schemas import DataConfig, DataJudgeConfig, JudgeRules
from alphadrive_cli.data.records import SPLITS, Record
from alphadrive_cli.data.sim import plan_judge
from alphadrive_cli.data.sim.episode import EpisodePlan, run_episode
from alphadrive_cli.data.sim.scenarios import (
    SCENARIOS,
    JunctionProgress,
    install_expert,
    isolated_vehicle_defaults,
    make_env,
)
from alphadrive_cli.data.sim.scene import scene_facts
from alphadrive_cli.stages import data_judge, data_sim
from tests.support.labelled_data import make_labelled_data

SMALL = {"render": {"image_size": 64}, "frames_per_episode": 2}


def config(judge: bool = True, **changes) -> DataConfig:
    return resolve_config("data", DataConfig, options={**SMALL, "judge": judge, **changes})


def frame_content(frame) -> tuple:
    return (frame.ego_speed_mps, frame.speed_action, frame.path_action, frame.scene, frame.pngs)


@pytest.mark.parametrize(
    ("scenario", "seed", "destination"), [("highway", 3, None), ("intersection", 7, "o1"), ("roundabout", 4, "wxr")]
)
def test_judging_leaves_the_episode_alone_and_offers_the_experts_plan(scenario, seed, destination) -> None:
    plan = EpisodePlan(0, scenario, seed, destination, "train")
    judged, plain = run_episode(plan, config()), run_episode(plan, config(judge=False))
    assert [frame_content(f) for f in judged.frames] == [frame_content(f) for f in plain.frames]
    assert judged.frames and all(f.plans is None for f in plain.frames)
    for frame in judged.frames:
        offered = {(p["speed"], p["path"]) for p in frame.plans}
        assert (frame.speed_action, frame.path_action) in offered
        assert {p["speed"] for p in frame.plans} == set(plan_judge.SPEEDS)
        assert len(offered) == len(frame.plans)  # each plan once


def frame_state(scenario: str, seed: int, seconds: float):
    """An environment with its expert ``seconds`` into an episode, and the frame's scene facts."""
    definition = SCENARIOS[scenario]
    env = make_env(definition, config().render.bev, 64, 20)
    env.reset(seed=seed)
    ego = install_expert(env, definition, None)
    if definition.setup is not None:
        definition.setup(env, ego)
    progress = JunctionProgress(definition)
    for _ in range(round(seconds * 5)):
        env.step(1)
        progress.update(tuple(ego.lane_index))
    return env, ego, definition, scene_facts(env, ego, definition, progress), progress.passed


def test_lane_changes_are_offered_only_where_the_lane_exists_and_far_traffic_changes_no_verdict() -> None:
    labels, rules = config().labels, JudgeRules()
    with isolated_vehicle_defaults():
        env, ego, scenario, scene, passed = frame_state("highway", 3, 2.0)
        candidates = plan_judge.candidate_plans(env, ego, scenario, scene, passed)
        paths = {path for _, path, _ in candidates}
        assert ("LEFT_CHANGE" in paths) == (scene["left_lane"] != "none")
        assert ("RIGHT_CHANGE" in paths) == (scene["right_lane"] != "none")
        assert "STRAIGHT" in paths and not paths & {"LEFT_TURN", "RIGHT_TURN"}  # a highway has no junction
        assert plan_judge.judge_frame(env, ego, scenario, scene, passed, labels, rules) == plan_judge.judge_frame(
            env, ego, scenario, scene, passed, labels, rules
        )  # deterministic, and judging leaves the frame's state alone
        for candidate in candidates[:8]:
            near = plan_judge.judge_plan(env, ego, scenario, candidate, labels, rules)
            everything = plan_judge.judge_plan(env, ego, scenario, candidate, labels, rules, radius_m=1e9)
            # far traffic still nudges the lead vehicle's own leader a little (IDM), so TTC may differ by a hair
            assert near.model_dump(exclude={"min_ttc_s"}) == everything.model_dump(exclude={"min_ttc_s"})
            assert (near.min_ttc_s is None) == (everything.min_ttc_s is None)
            assert near.min_ttc_s is None or near.min_ttc_s == pytest.approx(everything.min_ttc_s, rel=0.02)
        env.close()


def test_a_blocked_road_makes_keep_a_collision_and_braking_acceptable() -> None:
    """Obstacles across every lane ahead: driving on at speed must crash, stopping must not."""
    labels, rules = config().labels, JudgeRules()
    with isolated_vehicle_defaults():
        env, ego, scenario, scene, passed = frame_state("blocked", 2, 1.0)
        gap = scene["lead_vehicle"]["gap_m"] if scene["lead_vehicle"] else None
        assert gap is not None
        longer = labels.model_copy(update={"horizon_s": 12.0})
        keep = plan_judge.judge_plan(env, ego, scenario, ("ACCELERATE", "STRAIGHT", None), longer, rules)
        stop = plan_judge.judge_plan(env, ego, scenario, ("STOP", "STRAIGHT", None), longer, rules)
        env.close()
    assert keep.collision and not keep.acceptable
    assert not stop.collision and stop.realised_speed == "STOP"


@pytest.mark.parametrize(
    ("outcome", "acceptable"),
    [
        ({}, True),
        ({"collision": True}, False),
        ({"off_road": True}, False),
        ({"min_ttc_s": 1.0}, False),
        ({"min_ttc_s": 1.5}, True),
        ({"realised": False}, False),
    ],
)
def test_verdict_rule(outcome: dict, acceptable: bool) -> None:
    given = {"collision": False, "off_road": False, "min_ttc_s": None, "realised": True, **outcome}
    assert plan_judge.verdict(**given, rules=JudgeRules()) is acceptable


def all_records(artifact) -> list[Record]:
    return [
        Record.model_validate_json(line)
        for split in SPLITS
        for line in (artifact.path / f"{split}.jsonl").read_text().splitlines()
    ]


@pytest.fixture(scope="module")
def sim_pair(tmp_path_factory: pytest.TempPathFactory):
    """Four frames of two episodes, simulated plain and with --judge."""
    root = tmp_path_factory.mktemp("judge")
    return (
        data_sim.run(config(judge=False, frames=4, seed=1), OutputSpec(root / "plain")),
        data_sim.run(config(frames=4, seed=1), OutputSpec(root / "judged")),
    )


def test_data_sim_judge_stores_validated_plans(sim_pair) -> None:
    plain, judged = sim_pair
    records = all_records(judged)
    assert len(records) == 4 and all(record.plans for record in records)
    assert [r.model_dump(exclude={"plans"}) for r in records] == [
        r.model_dump(exclude={"plans"}) for r in all_records(plain)
    ]
    manifest = open_artifact(judged.path).manifest
    assert manifest["config"]["judge"] is True and manifest["config"]["judge_rules"] == JudgeRules().model_dump()
    assert json.dumps(manifest)  # plain JSON


def test_data_judge_gives_what_data_sim_judge_gives_and_resumes(sim_pair, tmp_path, monkeypatch) -> None:
    plain, judged = sim_pair
    real = data_judge._judge_episode
    calls: list[int] = []

    def judge_then_fail(task):
        if calls:
            raise KeyboardInterrupt  # the run is stopped during its second episode
        calls.append(task[0].index)
        return real(task)

    monkeypatch.setattr(data_judge, "_judge_episode", judge_then_fail)
    with pytest.raises(KeyboardInterrupt):
        data_judge.run(DataJudgeConfig(), OutputSpec(tmp_path), data=plain.path)
    first = list(calls)
    monkeypatch.setattr(data_judge, "_judge_episode", lambda task: calls.append(task[0].index) or real(task))
    artifact = data_judge.run(DataJudgeConfig(), OutputSpec(tmp_path), data=plain.path)
    assert len(first) == 1 and first[0] not in calls[1:]  # the finished episode was not judged again
    assert sorted(calls) == sorted({r.source["episode"] for r in all_records(plain)})
    assert [r.model_dump() for r in all_records(artifact)] == [r.model_dump() for r in all_records(judged)]
    assert artifact.manifest["inputs"][0]["role"] == "data"
    assert not (artifact.path / data_judge.CACHE_DIR).exists()


def test_data_judge_refuses_imported_frames_in_one_line(cli, runs) -> None:
    data = make_labelled_data(runs, [("KEEP", "STRAIGHT")], {"train": range(1)})
    result = cli("data", "judge", data)
    assert result.exit_code == 2
    assert "not from the simulator" in result.stderr and len(result.stderr.strip().splitlines()) == 1
