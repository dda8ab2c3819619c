"""Reading a model's reasoning back into scene facts (evaluation/reasoning_facts.py, bench/reasoning_facts.py)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from alphadrive_cli.data.records import Record
from alphadrive_cli.evaluation.reasoning_facts import (
    answers_as_the_table,
    claimed_facts,
    compare_facts,
    fact_table,
    fact_table_accuracy,
    phrase_patterns,
    table_facts,
    true_facts,
)
from alphadrive_cli.teacher.grounded import FactSet, GroundedTemplates, grounded_trace
from bench.reasoning_facts import where_tables_differ

SCENES: list[dict[str, Any]] = [
    {  # a slower car close ahead, traffic on both sides, a junction coming
        "lead_vehicle": {"gap_m": 12.0, "relative_speed_mps": -2.0},
        "left_lane": "occupied",
        "right_lane": "free",
        "speed_limit_mps": 20.0,
        "distance_to_junction_m": 40.0,
        "vehicles_within_50m": 3,
        "yielding": True,
    },
    {  # an obstacle, no side lanes, alone
        "lead_vehicle": {"gap_m": 30.0, "kind": "obstacle"},
        "left_lane": "none",
        "right_lane": "none",
        "speed_limit_mps": 10.0,
        "vehicles_within_50m": 0,
    },
    {  # nothing ahead, at the junction, one car around
        "lead_vehicle": None,
        "left_lane": "free",
        "right_lane": "none",
        "speed_limit_mps": 15.0,
        "distance_to_junction_m": 2.0,
        "vehicles_within_50m": 1,
    },
    {  # a faster car far ahead
        "lead_vehicle": {"gap_m": 80.0, "relative_speed_mps": 1.5},
        "left_lane": "none",
        "right_lane": "occupied",
        "speed_limit_mps": 30.0,
        "vehicles_within_50m": 4,
    },
]


@pytest.fixture(scope="module")
def templates() -> GroundedTemplates:
    return GroundedTemplates.load()


def _trace(scene: dict[str, Any], speed: float, seed: int, templates: GroundedTemplates, facts: FactSet = "all") -> str:
    record = Record(
        id="f",
        images=["images/f.png"],
        navigation="follow the road",
        ego_speed_mps=speed,
        speed_action="KEEP",
        path_action="STRAIGHT",
        scene=scene,
        source={"scenario": "test"},
    )
    return grounded_trace(record, random.Random(seed), templates, facts=facts)


@pytest.mark.parametrize("speed", [0.0, 9.6, 20.4, 31.0])
def test_every_phrasing_of_a_faithful_trace_reads_back_as_the_scene_facts(
    templates: GroundedTemplates, speed: float
) -> None:
    """A grounded trace, whichever phrasings its seed draws, states every fact of its scene right, numbers too."""
    patterns = phrase_patterns(templates)
    for scene in SCENES:
        truth = true_facts(scene, speed)
        for seed in range(12):
            claims = claimed_facts(_trace(scene, speed, seed, templates), patterns)
            assert {fact: state for fact, (state, _) in claims.items()} == {
                fact: state for fact, (state, _) in truth.items()
            }
            for fact, (_, values) in truth.items():
                for name, said in claims[fact][1].items():  # a phrasing may leave a number out
                    assert float(said) == pytest.approx(float(values[name])), (fact, name)


def test_a_wrong_or_missing_sentence_counts_as_such_and_the_plan_is_split_by_it(templates: GroundedTemplates) -> None:
    """Frame 1 says 'no vehicle ahead' of a close, slower car; frame 2 leaves the lead car out; frame 3 is right."""
    close = SCENES[0]
    faithful = _trace(close, 9.6, 0, templates)
    lead_sentences = [s for alt in templates.phrases["lead.close"] for s in [alt.format(gap="12")] if s in faithful]
    assert len(lead_sentences) == 1
    wrong = faithful.replace(lead_sentences[0], templates.phrases["lead.absent"][0])
    missing = faithful.replace(lead_sentences[0], "")
    frames = [(close, 9.6, wrong, False), (close, 9.6, missing, False), (close, 9.6, faithful, True)]
    result = compare_facts(frames, templates)
    lead = result["facts"]["lead"]
    assert (lead["frames"], lead["right"], lead["wrong"], lead["missing"]) == (3, 1, 1, 1)
    assert lead["confusions"] == {"close -> absent": 1}
    assert result["facts"]["speed"]["right_rate"] == 1.0
    assert result["speed_accuracy_by_fact"]["lead"] == {
        "right": {"frames": 1, "speed_accuracy": 1.0},
        "wrong or missing": {"frames": 2, "speed_accuracy": 0.0},
    }
    assert result["speed_accuracy_by_fact"]["lead motion"] == {  # its own sentence, right in all three
        "right": {"frames": 3, "speed_accuracy": 0.3333},
        "wrong or missing": {"frames": 0, "speed_accuracy": 0.0},
    }
    assert result["facts"]["yielding"]["right"] == 3


@pytest.mark.parametrize(
    ("facts", "fact", "states"),
    [  # at 13.7 m/s: the 12 to 15 m/s band; 68, 137, 91 and 46% of SCENES' limits
        ("one_frame_speed_band", "speed band", ["12", "12", "12", "12"]),
        ("one_frame_limit_band", "limit band", ["50", "105", "85", "30"]),
    ],
)
def test_band_traces_read_back_with_their_band(
    templates: GroundedTemplates, facts: FactSet, fact: str, states: list[str]
) -> None:
    """A trace of a fact set that adds a band states it right whichever phrasing it draws (the band's state is its
    lower end), and only that fact set's tables use the band."""
    patterns = phrase_patterns(templates)
    for scene, state in zip(SCENES, states, strict=True):
        for seed in range(6):
            text = _trace(scene, 13.7, seed, templates, facts)
            assert claimed_facts(text, patterns)[fact][0] == state
        assert true_facts(scene, 13.7, facts)[fact][0] == state
        assert fact not in true_facts(scene, 13.7, "one_frame")
    assert table_facts(facts) == ["speed", fact, "lead", "junction", "yielding"]
    assert fact not in table_facts("all")


def test_one_frame_traces_are_scored_on_the_facts_they_state(templates: GroundedTemplates) -> None:
    """Read back as if they were full traces, one-frame traces would miss the lead's motion and the traffic on
    every frame; scored with facts "one_frame", every fact they state is right and those two are not asked for."""
    frames = [(scene, 9.6, _trace(scene, 9.6, 2, templates, "one_frame"), True) for scene in SCENES]
    as_full = compare_facts(frames, templates)["facts"]
    assert as_full["lead motion"]["missing"] == as_full["lead motion"]["frames"] > 0
    assert as_full["traffic"]["missing"] == len(SCENES)
    as_stated = compare_facts(frames, templates, "one_frame")["facts"]
    assert "lead motion" not in as_stated and "traffic" not in as_stated
    assert all(entry["right_rate"] == 1.0 for entry in as_stated.values())
    assert table_facts("one_frame") == ["speed", "lead", "junction", "yielding"]
    assert "lead motion" in table_facts("all")


def test_the_bench_reads_an_eval_and_its_data(templates: GroundedTemplates, tmp_path: Path, monkeypatch) -> None:
    """bench/reasoning_facts.py finds the eval's data set through its manifest and scores the split it scored."""
    from bench import reasoning_facts

    data, evaluation = tmp_path / "data" / "d-v1", tmp_path / "eval" / "e-v1"
    data.mkdir(parents=True)
    evaluation.mkdir(parents=True)
    records = [
        {"id": f"f{index}", "ego_speed_mps": 9.6, "scene": scene, "speed_action": "KEEP"}
        for index, scene in enumerate(SCENES)
    ]
    for split in ("train", "test"):
        (data / f"{split}.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    rows = [
        {
            "id": record["id"],
            "text": _trace(record["scene"], 9.6, 1, templates),
            "parsed": {"speed": ["KEEP"], "path": ["STRAIGHT"]},
            "speed_correct": True,
        }
        for record in records
    ]
    (evaluation / "predictions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))

    class Opened:
        def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
            self.path, self.manifest = path, manifest

    manifests = {evaluation: {"split": "test", "inputs": [{"role": "data", "path": "../../data/d-v1"}]}, data: {}}
    monkeypatch.setattr(reasoning_facts, "open_artifact", lambda path, *_, **__: Opened(path, manifests[Path(path)]))
    result = reasoning_facts.eval_facts(evaluation, templates)
    assert result["frames"] == 4
    assert all(entry["right_rate"] == 1.0 for entry in result["facts"].values())
    assert result["speed_accuracy_by_fact"]["lead"]["right"] == {"frames": 4, "speed_accuracy": 1.0}
    assert result["speed_accuracy"] == 1.0 and result["fact_table"]["speed_accuracy"] == 1.0
    assert result["speed_answer_as_the_table"]["as_for_the_true_facts"] == 1.0  # every label and answer KEEP
    out = tmp_path / "facts.json"
    monkeypatch.setattr("sys.argv", ["reasoning_facts", str(evaluation), "--facts", "one_frame", "--out", str(out)])
    reasoning_facts.main()
    assert "--facts one_frame" in json.loads(out.read_text())["command"]  # the file says how to make it again


def test_a_table_of_the_true_facts_scores_what_they_decide_and_no_more() -> None:
    """Train: an obstacle always means STOP, an empty lane KEEP twice and DECELERATE once. On four scored frames
    the table gets the obstacle and the KEEPs right, not the DECELERATE; the majority action (KEEP) gets two."""
    obstacle, empty = SCENES[1], SCENES[2]
    train = [(obstacle, 9.6, "STOP"), (empty, 9.6, "KEEP"), (empty, 9.6, "KEEP"), (empty, 9.6, "DECELERATE")]
    scored = [(obstacle, 9.6, "STOP"), (empty, 9.6, "KEEP"), (empty, 9.6, "KEEP"), (empty, 9.6, "DECELERATE")]
    result = fact_table_accuracy(fact_table(train), scored)
    assert result["combinations"] == 2 and result["frames"] == 4
    assert result["speed_accuracy"] == 0.75 and result["majority_speed_accuracy"] == 0.5


@pytest.mark.parametrize("facts", ["all", "one_frame"])
def test_an_answer_is_matched_to_the_table_of_the_facts_its_reasoning_states(
    templates: GroundedTemplates, facts: FactSet
) -> None:
    """Train: an obstacle means STOP, an empty lane KEEP. Frame 1 is an empty lane whose reasoning claims the
    obstacle and answers STOP: the table's answer for the facts it states, not for the true ones. Frame 2 states its
    empty lane right and answers KEEP: both. Frame 3 states it right and answers DECELERATE: neither. Frame 4 has no
    answer (out of format): neither."""
    obstacle, empty = SCENES[1], SCENES[2]
    table = fact_table([(obstacle, 9.6, "STOP"), (empty, 9.6, "KEEP")], facts)
    claims_obstacle = _trace(obstacle, 9.6, 0, templates, facts)
    faithful = _trace(empty, 9.6, 0, templates, facts)
    frames = [
        (empty, 9.6, claims_obstacle, "STOP"),
        (empty, 9.6, faithful, "KEEP"),
        (empty, 9.6, faithful, "DECELERATE"),
        (empty, 9.6, faithful, None),
    ]
    result = answers_as_the_table(frames, table, templates, facts)
    assert result == {"frames": 4, "as_for_the_true_facts": 0.25, "as_for_the_stated_facts": 0.5}


def test_where_two_tables_differ_splits_the_frames_and_counts_the_models_answers() -> None:
    """The band table tells 4 m/s (ACCELERATE) from 22 m/s (KEEP) where the one-frame table cannot (both 'below the
    limit'): frames split into the ones the tables answer alike and the ones they do not, each counted."""
    scene = {"lead_vehicle": None, "left_lane": "none", "right_lane": "none", "speed_limit_mps": 30.0}
    train = [(scene, 4.0, "ACCELERATE"), (scene, 22.0, "KEEP"), (scene, 22.5, "KEEP")]
    banded, one_frame = fact_table(train, "one_frame_speed_band"), fact_table(train, "one_frame")
    frames = [(scene, 4.2, "ACCELERATE", "KEEP"), (scene, 21.5, "KEEP", "KEEP"), (scene, 23.0, "DECELERATE", "KEEP")]
    parts = where_tables_differ(frames, ((banded, "one_frame_speed_band"), (one_frame, "one_frame")))
    assert parts["tables differ"] == {
        "frames": 1, "model as the first table": 0, "model right": 0, "first right": 1, "second right": 0,
        "departures right": 0, "departures": {"ACCELERATE -> KEEP": 1}}  # fmt: skip
    assert parts["tables agree"] == {
        "frames": 2, "model as the first table": 2, "model right": 1, "first right": 1, "second right": 1,
        "departures right": 0, "departures": {}}  # fmt: skip
