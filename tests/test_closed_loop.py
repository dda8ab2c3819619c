"""``alphadrive eval --closed-loop``: plans drive the simulator, the expert drives the same seeds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from alphadrive_cli.actions import DEFAULT_VOCABULARY
from alphadrive_cli.artifacts.store import Artifact, OutputSpec, begin, open_artifact
from alphadrive_cli.config.resolve import resolve_config
from alphadrive_cli.config.schemas import DataConfig, RenderConfig, TinyModelConfig
from alphadrive_cli.data.sim.scenarios import isolated_vehicle_defaults
from alphadrive_cli.errors import BadInput
from alphadrive_cli.evaluation.closed_loop.driving import EXPERT, DrivingEpisode, EpisodeSpec, episode_specs
from alphadrive_cli.evaluation.closed_loop.runner import DriveLog, drive
from alphadrive_cli.evaluation.closed_loop.views import closed_loop_render
from alphadrive_cli.evaluation.metrics import closed_loop_metrics, wilson_interval
from alphadrive_cli.models.loading import ModelSource
from alphadrive_cli.stages import data_sim, models_tiny

RENDER = RenderConfig(image_size=112)


def scripted(*texts: str):
    """A planner answering with ``texts`` in turn (the last one forever), for every episode alike."""
    calls = []

    def plan(observations):
        text = texts[min(len(calls), len(texts) - 1)]
        calls.append(len(observations))
        return [text] * len(observations)

    plan.calls = calls
    return plan


def answer(speed: str, path: str) -> str:
    return f"<think>ok</think><answer>{speed}, {path}</answer>"


def test_stop_keeps_slowing_down_to_a_standstill() -> None:
    spec = EpisodeSpec("highway", 0, None)
    [stopped] = drive([spec], "model", scripted(answer("STOP", "STRAIGHT")), RENDER, 10.0, 1.0, DEFAULT_VOCABULARY)
    [kept] = drive([spec], "model", scripted(answer("KEEP", "STRAIGHT")), RENDER, 10.0, 1.0, DEFAULT_VOCABULARY)
    assert not stopped.collided and stopped.decisions == 10
    assert stopped.distance_m < 0.6 * kept.distance_m
    assert stopped.plans == ["STOP, STRAIGHT"] * 10


def test_unparseable_plans_keep_the_last_plan_and_are_counted() -> None:
    spec = EpisodeSpec("highway", 1, None)
    planner = scripted(
        answer("DECELERATE", "STRAIGHT"),
        "no plan here",
        answer("KEEP, STOP", "STRAIGHT"),
        answer("ACCELERATE", "STRAIGHT"),
    )
    log = DriveLog(record_episodes={spec.id})
    [outcome] = drive([spec], "model", planner, RENDER, 4.0, 1.0, DEFAULT_VOCABULARY, log)
    assert outcome.parse_failures == 2  # no answer at all, and a hedge of two speed actions
    assert outcome.plans == [
        "DECELERATE, STRAIGHT",
        "DECELERATE, STRAIGHT",
        "DECELERATE, STRAIGHT",
        "ACCELERATE, STRAIGHT",
    ]
    assert [row["fallback"] for row in log.decisions] == [False, True, True, False]
    assert len(log.frames[spec.id]) == 4 and "kept: no valid plan" in log.frames[spec.id][1][1]


def test_queries_are_batched_across_episodes_and_the_expert_is_reproducible() -> None:
    specs = episode_specs(["roundabout", "intersection"], [0, 1])
    assert [s.id for s in specs] == ["roundabout-s0", "roundabout-s1", "intersection-s0", "intersection-s1"]
    assert all(s.destination is not None for s in specs)
    planner = scripted(answer("KEEP", "STRAIGHT"))
    model = drive(specs, "model", planner, RENDER, 3.0, 1.0, DEFAULT_VOCABULARY)
    assert planner.calls == [2, 2, 2, 2, 2, 2]  # two episodes of a scenario per query, three decisions each
    first = [o.as_dict() for o in drive(specs, EXPERT, None, RENDER, 3.0, 1.0, DEFAULT_VOCABULARY)]
    again = [o.as_dict() for o in drive(specs, EXPERT, None, RENDER, 3.0, 1.0, DEFAULT_VOCABULARY)]
    assert first == again and [o["episode"] for o in first] == [o.episode for o in model]


def test_a_collision_ends_the_episode_and_the_route_is_not_completed() -> None:
    with isolated_vehicle_defaults():  # the intersection changes IDMVehicle's constants for the whole process
        _collide_after_the_exit()


def _collide_after_the_exit() -> None:
    episode = DrivingEpisode(EpisodeSpec("intersection", 0, "o1"), "model", RENDER, 10.0)
    try:
        episode.reached_route_end = True  # as if it had reached its exit ...
        episode.advance(1.0)
        assert episode.outcome.route_completed
        episode.outcome.collided = True  # ... and then hit something
        episode.advance(1.0)
        assert episode.done and episode.steps == 5 and not episode.outcome.route_completed
    finally:
        episode.close()


def test_closed_loop_metrics_per_driver_and_scenario() -> None:
    def episode(driver, scenario, collided=False, completed=True, speed=10.0, failures=0):
        return {
            "driver": driver,
            "scenario": scenario,
            "collided": collided,
            "off_road": False,
            "route_completed": completed,
            "mean_speed_mps": speed,
            "distance_m": speed * 10,
            "decisions": 10,
            "parse_failures": failures,
        }

    metrics = closed_loop_metrics(
        [
            episode("expert", "highway"),
            episode("expert", "merge", speed=20.0),
            episode("model", "highway", collided=True, completed=False, failures=5),
            episode("model", "merge", failures=1),
        ]
    )
    assert metrics["expert"]["overall"]["mean_speed_mps"] == 15.0
    assert metrics["model"]["overall"]["collision_rate"] == 0.5
    assert metrics["model"]["overall"]["route_completion_rate"] == 0.5
    assert metrics["model"]["overall"]["parse_failure_rate"] == pytest.approx(6 / 20)
    assert metrics["model"]["scenarios"]["highway"]["collision_rate"] == 1.0
    assert metrics["model"]["overall"]["collision_rate_ci95"] == wilson_interval(1, 2)


@pytest.mark.parametrize(
    ("successes", "trials", "interval"),
    [(5, 50, [0.0435, 0.2136]), (0, 50, [0.0, 0.0713]), (25, 50, [0.3664, 0.6336]), (0, 0, [0.0, 1.0])],
)
def test_wilson_interval_matches_hand_computed_values(successes: int, trials: int, interval: list[float]) -> None:
    """0 of 50: the upper bound is z²/(n + z²) = 0.0713; 25 of 50: 0.5 ± 1.96·sqrt(0.25/50 + z²/4n²)/(1 + z²/n)."""
    assert wilson_interval(successes, trials) == pytest.approx(interval, abs=1e-4)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models_tiny.run(TinyModelConfig(), OutputSpec(tmp_path_factory.mktemp("cl") / "runs")).path


def test_one_command_gives_expert_and_model_rows_and_a_gif(cli, tiny_model: Path, tmp_path: Path) -> None:
    result = cli(
        "eval",
        "--closed-loop",
        "--model",
        tiny_model,
        "--scenarios",
        "highway,roundabout",
        "--seeds",
        "3",
        "--out-root",
        tmp_path,
        "--set",
        "closed_loop.seconds=3",
        "--set",
        "max_new_tokens=8",
    )
    assert result.exit_code == 0, result.stderr
    assert "expert" in result.stderr and "model" in result.stderr  # the table
    artifact = open_artifact(Path(result.stdout.strip()), stage="eval")
    loop = json.loads((artifact.path / "closed_loop.json").read_text())
    assert set(loop["drivers"]) == {"expert", "model"}
    by_driver = {
        driver: [e["episode"] for e in loop["episodes"] if e["driver"] == driver] for driver in loop["drivers"]
    }
    assert by_driver["expert"] == by_driver["model"] == ["highway-s3", "roundabout-s3"]
    model = loop["drivers"]["model"]["overall"]
    assert model["decisions"] == 6 and 0 <= model["parse_failure_rate"] <= 1  # random weights: mostly unparsed
    assert set(loop["drivers"]["model"]["scenarios"]) == {"highway", "roundabout"}
    decisions = (artifact.path / "decisions.jsonl").read_text().splitlines()
    assert len(decisions) == 6
    gif = Image.open(artifact.path / "drive.gif")
    assert gif.is_animated and gif.n_frames == 6  # two episodes (gif_episodes=2) x three decisions
    assert artifact.manifest["metrics"]["closed_loop"]["expert"]["episodes"] == 2
    assert [i["role"] for i in artifact.manifest["inputs"]] == ["model"]
    assert artifact.manifest["closed_loop"]["decoding"] == {"compiled": False, "cache": "dynamic"}  # the CPU

    compared = cli("eval", "compare", artifact.path, artifact.path, "--markdown")
    assert compared.exit_code == 0 and "closed-loop collision rate" in compared.stdout
    low, high = loop["drivers"]["model"]["overall"]["collision_rate_ci95"]
    assert f"[{low:.2f}, {high:.2f}]" in compared.stdout  # the collision rate with its 95 % interval


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--closed-loop"], "--closed-loop needs --model"),
        (["--closed-loop", "--model", "x/y", "--scenarios", "highway,moon"], "closed_loop.scenarios"),
        (["--closed-loop", "--model", "x/y", "--seeds", "1,b"], "--seeds takes whole numbers"),
        (["--model", "x/y", "--episodes", "3"], "go with --closed-loop"),
    ],
)
def test_closed_loop_usage_errors_are_one_line(cli, args: list[str], fragment: str) -> None:
    result = cli("eval", *args)
    assert result.exit_code == 2 and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], result.stderr


# --- the views a model drives with: those of its training data (evaluation/closed_loop/views.py) ---


def _sim_data(root: Path, name: str, views: list[str]) -> Artifact:
    config = resolve_config(
        "data", DataConfig, options={"frames": 2, "frames_per_episode": 2, "render": {"views": views, "image_size": 64}}
    )
    return data_sim.run(config, OutputSpec(root, name))


def _trained_on(root: Path, data: Artifact) -> ModelSource:
    with begin("sft", "student", {}, inputs={"data": data}, root=root) as writer:
        writer.path("adapter.txt").write_text("weights would be here")
        artifact = writer.publish()
    return ModelSource(str(artifact.path), "artifact", str(artifact.path), artifact)


def test_closed_loop_renders_the_training_data_views_and_refuses_others(tmp_path: Path) -> None:
    front = _sim_data(tmp_path, "front", ["front"])
    bev = _sim_data(tmp_path, "bev", ["bev"])
    student = _trained_on(tmp_path, bev)
    render, found = closed_loop_render(student, None)
    assert render.views == ["bev"] and render.image_size == 64 and found.path == bev.path
    assert closed_loop_render(student, bev.path)[0] == render  # the same data: fine
    with pytest.raises(BadInput, match=r"learned from views \[bev\].*has views \[front\]"):
        closed_loop_render(student, front.path)
    base = ModelSource("base", "hub", "org/base")
    assert closed_loop_render(base, front.path)[0].views == ["front"]  # no lineage: --data decides
    assert closed_loop_render(base, None) == (RenderConfig(), None)  # neither: data sim's defaults
    shutil.rmtree(bev.path)  # the training data is gone: its views are unknown, so no guess
    with pytest.raises(BadInput, match="training data .* is missing"):
        closed_loop_render(student, None)
    assert closed_loop_render(student, front.path)[0].views == ["front"]  # --data says how it was rendered
