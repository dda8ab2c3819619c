"""``alphadrive data sim``: real highway-env episodes, labels, images, splits, determinism, resume."""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alphadrive_cli.actions import DEFAULT_VOCABULARY
from alphadrive_cli.artifacts.store import OutputSpec, open_artifact
from alphadrive_cli.config.resolve import resolve_config
from alphadrive_cli.config.schemas import DataConfig
from alphadrive_cli.data.records import SPLITS, iter_split
from alphadrive_cli.data.sampling import balanced_sample
from alphadrive_cli.data.sim.episode import EpisodePlan, run_episode
from alphadrive_cli.data.sim.route_labels import route_path_action
from alphadrive_cli.data.sim.scenarios import SCENARIOS
from alphadrive_cli.errors import BadInput
from alphadrive_cli.stages import data_sim
from alphadrive_cli.stages.data_sim import plan_episodes, split_cycle

SMALL = {"render": {"image_size": 112}, "frames_per_episode": 4}
EGO_GREEN = np.array([50, 200, 0])


def small_config(**changes) -> DataConfig:
    return resolve_config("data", DataConfig, options={**SMALL, **changes})


def ego_pixels(image: np.ndarray) -> np.ndarray:
    """Pixel coordinates (row, col) of the ego vehicle's colour."""
    return np.argwhere(np.abs(image.astype(int) - EGO_GREEN).sum(axis=2) < 60)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_scenario_renders_labelled_heading_up_frames(scenario: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # the headless setting that makes highway-env draw nothing
    config = small_config(render={"views": ["bev"], "image_size": 224})  # the ego's colour survives rotation
    destination = SCENARIOS[scenario].destinations[0] if SCENARIOS[scenario].destinations else None
    result = run_episode(EpisodePlan(0, scenario, 0, destination, "train"), config)
    assert len(result.frames) + result.unlabelled_frames == config.frames_per_episode
    assert result.frames, "an episode of the expert produced no labelled frame"
    for frame in result.frames:
        [png] = frame.pngs
        image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        assert image.shape == (224, 224, 3)
        assert image.std() > 5, "blank frame"
        ego = ego_pixels(image)
        assert len(ego) > 3, "the ego vehicle is not drawn"
        row, col = ego.mean(axis=0)
        assert abs(row - config.render.bev.ego_row * 224) < 10 and abs(col - 112) < 10  # centred, at ego_row
        rows, cols = np.ptp(ego[:, 0]), np.ptp(ego[:, 1])
        assert rows >= cols, "the ego vehicle should point up (heading-up view)"
        assert frame.speed_action in DEFAULT_VOCABULARY.speed and frame.path_action in DEFAULT_VOCABULARY.path
        assert {"lane", "lead_vehicle", "left_lane", "right_lane", "distance_to_junction_m"} <= set(frame.scene)
        json.dumps(frame.scene)  # JSON-ready (no numpy types)


def test_blocked_road_makes_the_expert_stop() -> None:
    result = run_episode(EpisodePlan(0, "blocked", 2, None, "train"), small_config(frames_per_episode=12))
    speeds = [frame.speed_action for frame in result.frames]
    assert "DECELERATE" in speeds and "STOP" in speeds
    assert speeds.index("DECELERATE") < speeds.index("STOP")


def test_intersection_navigation_follows_the_route() -> None:
    left = run_episode(EpisodePlan(0, "intersection", 7, "o1", "train"), small_config(frames_per_episode=6))
    right = run_episode(EpisodePlan(0, "intersection", 7, "o3", "train"), small_config(frames_per_episode=6))
    assert left.frames[0].navigation == "turn left at the intersection"
    assert right.frames[0].navigation == "turn right at the intersection"
    assert "LEFT_TURN" in {f.path_action for f in left.frames} and "RIGHT_TURN" in {f.path_action for f in right.frames}


def test_an_episode_does_not_depend_on_episodes_run_before_it_in_the_process() -> None:
    """highway-env's intersection changes IDMVehicle's class constants; alphadrive undoes that per episode."""
    config = small_config(frames_per_episode=3)
    highway = EpisodePlan(0, "highway", 5, None, "train")

    def content(result):
        return [(f.ego_speed_mps, f.speed_action, f.path_action, f.scene, f.pngs) for f in result.frames]

    before = content(run_episode(highway, config))
    run_episode(EpisodePlan(0, "intersection", 5, "o2", "train"), config)
    assert content(run_episode(highway, config)) == before


def test_split_cycle_has_the_configured_proportions() -> None:
    cycle = split_cycle(DataConfig())
    assert Counter(cycle) == {"train": 16, "val": 2, "test": 2}
    odd = DataConfig(split={"train": 0.7, "val": 0.2, "test": 0.1})
    assert Counter(split_cycle(odd)) == {"train": 14, "val": 4, "test": 2}
    for seed in range(50):  # the first three episodes hold one of each split, whatever the shuffle
        assert set(split_cycle(DataConfig(seed=seed))[:3]) == {"train", "val", "test"}
    no_val = DataConfig(split={"train": 0.9, "val": 0.0, "test": 0.1})
    assert set(split_cycle(no_val)[:2]) == {"train", "test"}


def test_a_split_left_empty_is_said_and_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    three = data_sim.run(small_config(frames=12, seed=3), OutputSpec(tmp_path))  # 3 episodes of 4 frames
    assert three.manifest["empty_splits"] == [] and all(three.manifest["counts"][split] for split in SPLITS)
    capsys.readouterr()
    one = data_sim.run(small_config(frames=4, seed=3), OutputSpec(tmp_path))  # one episode: two splits empty
    assert len(one.manifest["empty_splits"]) == 2
    note = capsys.readouterr().err
    assert all(split in note for split in one.manifest["empty_splits"]) and "--frames" in note


@pytest.mark.parametrize("changes", [{"frame_interval_s": 0.3}, {"labels": {"horizon_s": 3.1}}])
def test_times_off_the_recording_grid_are_refused(changes: dict) -> None:
    with pytest.raises(BadInput, match="multiple of 0.2 s"):
        small_config(**changes)


def _plans(config: DataConfig, count: int) -> list[EpisodePlan]:
    return list(itertools.islice(plan_episodes(config), count))


def test_episode_plans_depend_only_on_seed_and_index() -> None:
    config = DataConfig()
    assert _plans(config, 6)[5] == _plans(config, 6)[5]
    plans = _plans(config, 200)
    assert {plan.scenario for plan in plans} == set(SCENARIOS)
    assert _plans(DataConfig(seed=1), 6)[5] != plans[5]


def test_a_split_by_scenario_gives_each_scenario_the_cycles_proportions() -> None:
    """With split_by_scenario every scenario's episodes go through the split cycle on their own, in index order;
    the scenarios, routes and simulator seeds stay those of the unstratified plan, and that plan is unchanged."""
    plain, stratified = DataConfig(seed=4), DataConfig(seed=4, split_by_scenario=True)
    cycle = split_cycle(plain)
    plain_plans = _plans(plain, 300)
    plans = _plans(stratified, 300)
    assert [plan.split for plan in plain_plans] == [cycle[i % len(cycle)] for i in range(300)]
    assert [dataclasses.replace(plan, split="") for plan in plans] == [
        dataclasses.replace(plan, split="") for plan in plain_plans
    ]
    for scenario in SCENARIOS:
        splits = [plan.split for plan in plans if plan.scenario == scenario]
        assert splits == [cycle[n % len(cycle)] for n in range(len(splits))]
    assert [plan.split for plan in plans] != [plan.split for plan in plain_plans]


def test_balanced_sample_keeps_rare_classes_and_order() -> None:
    items = ["a"] * 50 + ["b"] * 5 + ["c"] * 2
    picked = balanced_sample(items, lambda item: item, 20, seed=0)
    assert Counter(picked) == {"a": 13, "b": 5, "c": 2}
    numbered = list(enumerate(items))
    chosen = balanced_sample(numbered, lambda item: item[1], 20, seed=0)
    assert [n for n, _ in chosen] == sorted(n for n, _ in chosen)
    assert balanced_sample(items, lambda item: item, 20, seed=0) == picked  # deterministic


@pytest.fixture(scope="module")
def sim_artifact(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("runs")
    return data_sim.run(small_config(frames=24, seed=0), OutputSpec(root))


def test_sim_artifact_is_valid_and_split_by_episode(sim_artifact) -> None:
    artifact = open_artifact(sim_artifact.path, stage="data")  # every file hash verifies
    records = {split: list(iter_split(artifact, split, DEFAULT_VOCABULARY)) for split in SPLITS}
    assert sum(len(r) for r in records.values()) == 24 == artifact.manifest["counts"]["frames"]
    episodes = {split: {r.source["episode"] for r in recs} for split, recs in records.items()}
    assert not (episodes["train"] & episodes["val"]) and not (episodes["train"] & episodes["test"])
    assert not (episodes["val"] & episodes["test"])
    images = sorted(p.name for p in (artifact.path / "images").iterdir())
    assert len(images) == 24  # frames that were simulated but not used are not kept
    manifest = artifact.manifest
    assert manifest["vocabulary"] == DEFAULT_VOCABULARY.to_dict()
    assert manifest["label_rules"]["horizon_s"] == 3.0
    assert sum(manifest["classes"]["train"]["speed"].values()) == len(records["train"])
    assert not any(name.startswith(".") for name in manifest["outputs"])  # no episode cache published
    with Image.open(artifact.path / "contact_sheet.png") as sheet:
        assert sheet.width == 4 * 224 and np.asarray(sheet.convert("L")).std() > 20


def test_same_seed_gives_byte_identical_jsonl_with_any_number_of_workers(sim_artifact, tmp_path: Path) -> None:
    again = data_sim.run(small_config(frames=24, seed=0, workers=2), OutputSpec(tmp_path))
    for split in SPLITS:
        assert (again.path / f"{split}.jsonl").read_bytes() == (sim_artifact.path / f"{split}.jsonl").read_bytes()
    other = data_sim.run(small_config(frames=24, seed=1), OutputSpec(tmp_path))
    assert (other.path / "train.jsonl").read_bytes() != (sim_artifact.path / "train.jsonl").read_bytes()


def test_interrupted_run_resumes_without_simulating_finished_episodes(
    sim_artifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = data_sim._simulate

    def interrupted_after_two(task):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(task[0].index)
        return real(task)

    monkeypatch.setattr(data_sim, "_simulate", interrupted_after_two)
    with pytest.raises(KeyboardInterrupt):
        data_sim.run(small_config(frames=24, seed=0), OutputSpec(tmp_path))
    assert not (tmp_path / "data" / "sim-v1").exists()
    assert len(list((tmp_path / "data" / ".sim.partial" / ".episodes").glob("*.json"))) == 2

    resumed_calls: list[int] = []
    monkeypatch.setattr(data_sim, "_simulate", lambda task: resumed_calls.append(task[0].index) or real(task))
    resumed = data_sim.run(small_config(frames=24, seed=0), OutputSpec(tmp_path))
    assert resumed.manifest["resumed"] is True
    assert not set(calls) & set(resumed_calls)
    for split in SPLITS:
        assert (resumed.path / f"{split}.jsonl").read_bytes() == (sim_artifact.path / f"{split}.jsonl").read_bytes()


def test_balance_evens_out_the_classes(tmp_path: Path) -> None:
    plain = data_sim.run(small_config(frames=24, seed=4), OutputSpec(tmp_path, "plain"))
    balanced = data_sim.run(
        small_config(frames=24, seed=4, balance=True, balance_oversample=2.0), OutputSpec(tmp_path, "balanced")
    )
    assert balanced.manifest["counts"]["frames"] == 24

    def largest_joint_class(artifact) -> int:
        joint = Counter()
        for split in SPLITS:
            for record in iter_split(artifact, split, DEFAULT_VOCABULARY):
                joint[(record.speed_action, record.path_action)] += 1
        return max(joint.values())

    assert largest_joint_class(balanced) < largest_joint_class(plain)


def test_cli_data_sim_prints_only_the_path(cli, runs: Path) -> None:
    result = cli(
        "data", "sim", "--frames", "8", "--seed", "2", "--set", "render.image_size=112", "--set", "frames_per_episode=4"
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{runs / 'data' / 'sim-v1'}\n"
    assert "frames per class and split" in result.stderr


# --- path labels from the road network (data/sim/route_labels.py) ---------------------------------


@pytest.mark.parametrize(
    ("lanes", "in_junction", "turn", "expected"),
    [
        ([("a", "b", 1)] * 4, [False] * 4, "left", ("STRAIGHT", "sim.lane_keep")),
        ([("a", "b", 1), ("a", "b", 1), ("a", "b", 0)], [False] * 3, "left", ("LEFT_CHANGE", "sim.lane_index")),
        ([("a", "b", 1), ("a", "b", 2), ("a", "b", 1)], [False] * 3, "left", ("RIGHT_CHANGE", "sim.lane_index")),
        ([("a", "b", 0), ("b", "c", 1)], [False] * 2, "left", ("STRAIGHT", "sim.lane_keep")),  # a new road
        ([("o0", "ir0", 0), ("ir0", "il1", 0)], [False, True], "left", ("LEFT_TURN", "sim.junction")),
        ([("se", "ex", 0), ("ex", "ee", 1)], [True, True], "straight", ("STRAIGHT", "sim.junction")),
        ([("se", "ex", 1), ("se", "ex", 0)], [True, True], "right", ("RIGHT_TURN", "sim.junction")),
    ],
)
def test_route_path_action(lanes, in_junction, turn: str, expected: tuple[str, str]) -> None:
    assert route_path_action(lanes, in_junction, turn) == expected


def test_a_roundabout_exit_straight_ahead_is_never_a_turn_and_highways_never_turn() -> None:
    straight = run_episode(EpisodePlan(0, "roundabout", 4, "nxr", "train"), small_config(frames_per_episode=14))
    assert {frame.navigation for frame in straight.frames} >= {"at the roundabout, take the exit straight ahead"}
    assert not {"LEFT_TURN", "RIGHT_TURN"} & {frame.path_action for frame in straight.frames}
    assert "sim.junction" in {frame.label_source["path"] for frame in straight.frames}  # it did drive the ring
    left = run_episode(EpisodePlan(0, "roundabout", 4, "wxr", "train"), small_config(frames_per_episode=14))
    turns = [frame.path_action for frame in left.frames if frame.label_source["path"] == "sim.junction"]
    assert turns and set(turns) == {"LEFT_TURN"}  # one label for the whole passage
    highway = run_episode(EpisodePlan(0, "highway", 9, None, "train"), small_config(frames_per_episode=12))
    assert all(frame.path_action in ("STRAIGHT", "LEFT_CHANGE", "RIGHT_CHANGE") for frame in highway.frames)


def test_every_record_names_its_label_rules_and_the_audit_is_clean(sim_artifact) -> None:
    records = [record for split in SPLITS for record in iter_split(sim_artifact, split, DEFAULT_VOCABULARY)]
    assert all(record.label_source["speed"] == "sim.expert_speed" for record in records)
    assert {record.label_source["path"] for record in records} <= {"sim.junction", "sim.lane_index", "sim.lane_keep"}
    assert sim_artifact.manifest["audit"]["impossible"] == 0
    assert sim_artifact.manifest["audit"]["records"] == len(records)
    sheets = {path.name for path in (sim_artifact.path / "sheets").iterdir()}
    present = {f"speed-{r.speed_action}.png" for r in records} | {f"path-{r.path_action}.png" for r in records}
    assert sheets == present  # one sheet per class that has frames


def test_two_views_give_two_images_per_record_front_first(tmp_path: Path) -> None:
    both = data_sim.run(
        small_config(frames=4, seed=5, render={"image_size": 112, "views": ["front", "bev"]}), OutputSpec(tmp_path)
    )
    record = next(record for split in SPLITS for record in iter_split(both, split, DEFAULT_VOCABULARY))
    assert [Path(image).stem.rsplit("_", 1)[1] for image in record.images] == ["front", "bev"]
    front, bev = (np.asarray(Image.open(both.path / image).convert("RGB")) for image in record.images)
    assert front.shape == bev.shape == (112, 112, 3) and not np.array_equal(front, bev)
