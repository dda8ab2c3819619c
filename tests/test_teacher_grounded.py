"""Tests for the offline grounded teacher, trace filtering and the teacher prompt templates."""

from __future__ import annotations

import copy
import hashlib
import itertools
import random
import re
import string
from typing import Any

import pytest
import yaml

from alphadrive_cli.actions import DEFAULT_VOCABULARY, ActionVocabulary, matches_answer_format, parse_answer
from alphadrive_cli.data.records import Record
from alphadrive_cli.errors import BadInput
from alphadrive_cli.prompts import load_prompt
from alphadrive_cli.resources import PROMPT_DIR
from alphadrive_cli.teacher import filtering, grounded
from alphadrive_cli.teacher.filtering import judge_trace, reasoning_of, verify_agrees
from alphadrive_cli.teacher.grounded import GroundedTemplates, grounded_trace

LABELS = list(itertools.product(DEFAULT_VOCABULARY.speed, DEFAULT_VOCABULARY.path))
# What a conclusion for each action must say; no trace may say another speed action's words.
SPEED_WORDS = {
    "KEEP": r"\bkeep\b",
    "ACCELERATE": r"\baccelerat|\bspeed up\b|\bpick up speed\b",
    "DECELERATE": r"\bdecelerat|\bslow down\b",
    "STOP": r"\bstop\b",
}
PATH_WORDS = {
    "STRAIGHT": r"\bstraight\b",
    "LEFT_TURN": r"\bturn left\b|\bleft turn\b",
    "RIGHT_TURN": r"\bturn right\b|\bright turn\b",
    "LEFT_CHANGE": r"\bleft lane\b",
    "RIGHT_CHANGE": r"\bright lane\b",
}

HIGHWAY = {
    "lane": 1,
    "lanes": 3,
    "lead_vehicle": {"gap_m": 14.2, "relative_speed_mps": -3.1, "kind": "vehicle"},
    "left_lane": "free",
    "right_lane": "occupied",
    "speed_limit_mps": 30.0,
    "distance_to_junction_m": None,
    "vehicles_within_50m": 5,
    "yielding": False,
}
BLOCKED = {
    "lane": 0,
    "lanes": 3,
    "lead_vehicle": {"gap_m": 61.0, "relative_speed_mps": -22.0, "kind": "obstacle"},
    "left_lane": "none",
    "right_lane": "free",
    "speed_limit_mps": 30.0,
    "distance_to_junction_m": None,
    "vehicles_within_50m": 0,
    "yielding": False,
}
INTERSECTION = {
    "lane": 0,
    "lanes": 1,
    "lead_vehicle": {"gap_m": 80.0, "relative_speed_mps": 2.4, "kind": "vehicle"},
    "left_lane": "none",
    "right_lane": "none",
    "speed_limit_mps": 10.0,
    "distance_to_junction_m": 23.4,
    "vehicles_within_50m": 1,
    "yielding": True,
}
ROUNDABOUT = {
    "lane": 1,
    "lanes": 2,
    "lead_vehicle": None,
    "left_lane": "occupied",
    "right_lane": "none",
    "speed_limit_mps": 10.0,
    "distance_to_junction_m": 0.0,
    "vehicles_within_50m": 2,
    "yielding": False,
}
PARTIAL = {"lead_vehicle": None}
GARBLED = {"lead_vehicle": "ahead", "left_lane": 3, "speed_limit_mps": "fast", "vehicles_within_50m": True}
SCENES: dict[str, dict[str, Any] | None] = {
    "highway": HIGHWAY,
    "blocked": BLOCKED,
    "intersection": INTERSECTION,
    "roundabout": ROUNDABOUT,
    "partial": PARTIAL,
    "garbled": GARBLED,
    "none": None,
}


def make_record(
    scene: dict[str, Any] | None,
    speed: str = "KEEP",
    path: str = "STRAIGHT",
    ego_speed: float = 24.3,
    navigation: str = "follow the highway",
) -> Record:
    return Record(
        id="f1",
        images=["images/f1.png"],
        navigation=navigation,
        ego_speed_mps=ego_speed,
        speed_action=speed,
        path_action=path,
        scene=scene,
        source={"scenario": "test"},
    )


@pytest.fixture(scope="module")
def templates() -> GroundedTemplates:
    return GroundedTemplates.load()


@pytest.fixture(scope="module")
def template_data() -> dict[str, Any]:
    return yaml.safe_load((PROMPT_DIR / "grounded-v1.yaml").read_text(encoding="utf-8"))


def trace(templates: GroundedTemplates, scene: dict[str, Any] | None, seed: int = 0, **kwargs: Any) -> str:
    return grounded_trace(make_record(scene, **kwargs), random.Random(seed), templates)


# --- the grounded teacher -----------------------------------------------------------------


@pytest.mark.parametrize("scene_name", SCENES)
def test_every_label_gives_a_kept_trace_with_that_plan(templates: GroundedTemplates, scene_name: str) -> None:
    for (speed, path), seed in itertools.product(LABELS, range(3)):
        text = trace(templates, SCENES[scene_name], seed, speed=speed, path=path)
        assert matches_answer_format(text)
        assert judge_trace(text, (speed, path), DEFAULT_VOCABULARY) == (True, filtering.KEPT), text
        assert parse_answer(text).plan == (speed, path)


def test_same_seed_same_trace_and_seeds_vary(templates: GroundedTemplates) -> None:
    first = [trace(templates, HIGHWAY, seed) for seed in range(20)]
    again = [trace(templates, HIGHWAY, seed) for seed in range(20)]
    assert first == again
    assert len({reasoning_of(text) for text in first}) >= 5


def test_conclusion_follows_the_label_and_nothing_contradicts_it(templates: GroundedTemplates) -> None:
    cases = itertools.product(SCENES.values(), LABELS, (0.0, 9.6, 31.0))
    for seed, (scene, (speed, path), ego_speed) in enumerate(cases):  # a seed per case: all phrasings drawn
        text = trace(templates, scene, seed, speed=speed, path=path, ego_speed=ego_speed)
        reasoning = reasoning_of(text).lower()
        endings = [
            f"{s} {p}".lower()
            for s in templates.phrases[f"conclusion.speed.{speed}"]
            for p in templates.phrases[f"conclusion.path.{path}"]
        ]
        ending = next((e for e in endings if reasoning.endswith(e)), None)
        assert ending is not None, reasoning
        assert re.search(SPEED_WORDS[speed], ending) and re.search(PATH_WORDS[path], ending), ending
        for other in DEFAULT_VOCABULARY.speed:
            if other != speed:
                assert not re.search(SPEED_WORDS[other], reasoning), (speed, reasoning)
                for sentence in templates.phrases[f"conclusion.speed.{other}"]:
                    assert sentence.lower() not in reasoning
        for other in DEFAULT_VOCABULARY.path:
            if other != path:
                assert not re.search(PATH_WORDS[other], ending), (path, ending)


def test_every_conclusion_sentence_names_its_action_only(templates: GroundedTemplates) -> None:
    all_words = {**SPEED_WORDS, **PATH_WORDS}
    for head, words in (("speed", SPEED_WORDS), ("path", PATH_WORDS)):
        for action, pattern in words.items():
            for sentence in templates.phrases[f"conclusion.{head}.{action}"]:
                assert re.search(pattern, sentence.lower()), sentence
                others = [other for other in all_words if other != action]
                assert not any(re.search(all_words[other], sentence.lower()) for other in others), sentence


def test_no_observation_sentence_names_a_speed_action(templates: GroundedTemplates) -> None:
    observations = [
        text for leaf, texts in templates.phrases.items() if not leaf.startswith("conclusion.") for text in texts
    ]
    assert len(observations) > 50
    for text, pattern in itertools.product(observations, SPEED_WORDS.values()):
        assert not re.search(pattern, text.lower()), text


def phrases(templates: GroundedTemplates, leaf: str, **values: str) -> list[str]:
    return [alternative.format(**values) for alternative in templates.phrases[leaf]]


def mentions(reasoning: str, candidates: list[str]) -> bool:
    return any(candidate in reasoning for candidate in candidates)


def test_reasoning_states_the_scene_facts(templates: GroundedTemplates) -> None:
    highway = reasoning_of(trace(templates, HIGHWAY))
    assert mentions(highway, phrases(templates, "navigation", navigation="follow the highway"))
    assert mentions(highway, phrases(templates, "speed.below_limit", speed="24.3", limit="30"))
    assert mentions(highway, phrases(templates, "lead.close", gap="14"))
    assert mentions(highway, phrases(templates, "lead.slower", closing="3.1"))
    assert mentions(highway, phrases(templates, "traffic.many", count="5"))
    assert not mentions(highway, phrases(templates, "yielding"))

    intersection = reasoning_of(
        trace(templates, INTERSECTION, ego_speed=9.8, navigation="turn left at the intersection")
    )
    assert mentions(intersection, phrases(templates, "speed.at_limit", speed="9.8", limit="10"))
    assert mentions(intersection, phrases(templates, "lead.far", gap="80"))
    assert mentions(intersection, phrases(templates, "lead.faster", opening="2.4"))
    assert mentions(intersection, phrases(templates, "lanes.single"))
    assert mentions(intersection, phrases(templates, "junction.ahead", distance="23"))
    assert mentions(intersection, phrases(templates, "yielding"))
    assert mentions(intersection, phrases(templates, "traffic.one"))

    blocked = reasoning_of(trace(templates, BLOCKED, ego_speed=0.2))
    assert mentions(blocked, phrases(templates, "speed.stopped", speed="0.2"))
    assert mentions(blocked, phrases(templates, "lead.obstacle", gap="61"))
    assert not mentions(blocked, phrases(templates, "lead.slower", closing="22.0"))
    assert mentions(blocked, phrases(templates, "traffic.none"))

    roundabout = reasoning_of(trace(templates, ROUNDABOUT, ego_speed=12.0))
    assert mentions(roundabout, phrases(templates, "speed.above_limit", speed="12.0", limit="10"))
    assert mentions(roundabout, phrases(templates, "lead.absent"))
    assert mentions(roundabout, phrases(templates, "junction.at"))


class _Recording:
    """The templates, recording each leaf picked and the text it gave."""

    def __init__(self, templates: GroundedTemplates) -> None:
        self.templates, self.said = templates, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.templates, name)

    def pick(self, rng: random.Random, leaf: str, **values: str) -> str:
        text = self.templates.pick(rng, leaf, **values)
        self.said.append((leaf, text))
        return text


def test_one_frame_traces_are_the_full_traces_without_what_one_image_cannot_show(templates: GroundedTemplates) -> None:
    """With facts "one_frame" the reasoning is the full trace of the same random state minus its sentences on the
    lead's relative speed and the traffic count (neither is in one front image), word for word; stated_facts
    leaves out the same leaves."""
    for scene, speed in ((HIGHWAY, 24.3), (INTERSECTION, 9.8)):
        record, recording = make_record(scene, ego_speed=speed), _Recording(templates)
        full = grounded_trace(record, random.Random(0), recording)
        hidden = [text for leaf, text in recording.said if leaf in grounded.HIDDEN_FROM_ONE_FRAME]
        assert len(hidden) == 2 and all(text in full for text in hidden)  # the lead's motion, the traffic
        expected = full
        for text in hidden:
            expected = expected.replace(text + " ", "", 1)
        one_frame = grounded_trace(record, random.Random(0), templates, facts="one_frame")
        assert one_frame == expected and matches_answer_format(one_frame)
        facts = grounded.stated_facts(scene, speed)
        assert grounded.stated_facts(scene, speed, "one_frame") == [
            (leaf, values) for leaf, values in facts if leaf not in grounded.HIDDEN_FROM_ONE_FRAME
        ]
        assert len(facts) - len(grounded.stated_facts(scene, speed, "one_frame")) == 2


BAND_CASES = {  # fact set -> (scene, ego speed, the leaf of its band sentence, that leaf's values)
    "one_frame_speed_band": [  # 3 m/s bands
        (HIGHWAY, 24.3, "speed.band", {"low": "24", "high": "27"}),
        (INTERSECTION, 9.8, "speed.band", {"low": "9", "high": "12"}),
        (INTERSECTION, 0.0, "speed.band", {"low": "0", "high": "3"}),
    ],
    "one_frame_limit_band": [  # the share of the limit (30 m/s on the highway, 10 at the intersection), in percent
        (HIGHWAY, 24.3, "speed.limit_band", {"low": "70", "high": "85"}),
        (INTERSECTION, 9.8, "speed.limit_band", {"low": "95", "high": "105"}),
        (INTERSECTION, 12.0, "speed.limit_band_over", {"low": "105"}),
        (INTERSECTION, 0.0, "speed.limit_band", {"low": "0", "high": "5"}),
    ],
}


@pytest.mark.parametrize("facts", list(BAND_CASES))
def test_band_traces_are_the_one_frame_traces_with_the_band_after_the_speed(
    templates: GroundedTemplates, facts: grounded.FactSet
) -> None:
    """With a fact set that adds a band the reasoning is the one-frame trace of the same random state, word for
    word, with one sentence naming the band right after the speed sentence; stated_facts adds the band there too."""
    for scene, speed, leaf, values in BAND_CASES[facts]:
        record, recording = make_record(scene, ego_speed=speed), _Recording(templates)
        banded = grounded_trace(record, random.Random(3), recording, facts=facts)
        (band_sentence,) = [text for said, text in recording.said if said == leaf]
        assert all(value in band_sentence for value in values.values())
        speed_sentence = next(text for said, text in recording.said if said.startswith("speed."))
        one_frame = grounded_trace(record, random.Random(3), templates, facts="one_frame")
        assert banded == one_frame.replace(speed_sentence, f"{speed_sentence} {band_sentence}", 1)
        assert matches_answer_format(banded)
        stated = grounded.stated_facts(scene, speed, facts)
        assert stated[1] == (leaf, values)
        assert stated[:1] + stated[2:] == grounded.stated_facts(scene, speed, "one_frame")


def test_limit_band_traces_state_no_band_without_a_known_limit(templates: GroundedTemplates) -> None:
    """A scene without a usable speed limit (none, or not a number) gets the one-frame trace, no band sentence."""
    for scene in (PARTIAL, GARBLED, {**HIGHWAY, "speed_limit_mps": 0.0}, None):
        record = make_record(scene, ego_speed=12.0)
        limit_banded = grounded_trace(record, random.Random(1), templates, facts="one_frame_limit_band")
        assert limit_banded == grounded_trace(record, random.Random(1), templates, facts="one_frame")
        assert grounded.stated_facts(scene or {}, 12.0, "one_frame_limit_band") == grounded.stated_facts(
            scene or {}, 12.0, "one_frame"
        )


def test_a_scene_description_states_what_one_image_shows_and_no_speed(templates: GroundedTemplates) -> None:
    """sft's perception target: the lead and its gap, the lanes, the junction; not the ego speed or limit, not the
    lead's motion or the traffic count; a lead is close by its gap alone (the speed is not in the question)."""
    recording = _Recording(templates)
    text = grounded.scene_description(HIGHWAY, random.Random(0), recording)
    leaves = [leaf for leaf, _ in recording.said]
    assert leaves[0] == "lead.close" and not any(leaf.startswith("speed.") for leaf in leaves)
    assert text.startswith(recording.said[0][1])  # the lead's sentence, as a trace phrases it
    hidden = [said for leaf, said in recording.said if leaf in grounded.HIDDEN_FROM_ONE_FRAME]
    assert len(hidden) == 2 and not any(said in text for said in hidden)  # the lead's motion, the traffic count
    assert "14" in text and "m/s" not in text and "3.1" not in text
    far = {**HIGHWAY, "lead_vehicle": {**HIGHWAY["lead_vehicle"], "gap_m": 35.0}}
    recording = _Recording(templates)
    grounded.scene_description(far, random.Random(0), recording)
    assert recording.said[0][0] == "lead.far"  # 35 m: far without a speed, though close at 24 m/s in a trace
    assert grounded.scene_description({}, random.Random(0), templates) == ""


def test_lane_clauses_are_joined_per_side(templates: GroundedTemplates) -> None:
    both = reasoning_of(trace(templates, HIGHWAY)).lower()
    assert mentions(both, phrases(templates, "lanes.left.free"))
    assert mentions(both, phrases(templates, "lanes.right.occupied"))
    one_side = reasoning_of(trace(templates, {"left_lane": "occupied"}))
    assert mentions(one_side, [c[0].upper() + c[1:] + "." for c in phrases(templates, "lanes.left.occupied")])
    right_clauses = phrases(templates, "lanes.right.free") + phrases(templates, "lanes.right.none")
    assert not mentions(one_side.lower(), right_clauses)


@pytest.mark.parametrize("scene", [None, {}, GARBLED], ids=["none", "empty", "garbled"])
def test_without_usable_facts_reasoning_is_navigation_speed_and_label(templates: GroundedTemplates, scene: Any) -> None:
    record = make_record(scene, "DECELERATE", "RIGHT_TURN", ego_speed=7.5, navigation="turn right at the intersection")
    rng = random.Random(3)
    expected = " ".join(
        [
            templates.pick(rng, "navigation", navigation="turn right at the intersection"),
            templates.pick(rng, "speed.no_limit", speed="7.5"),
            templates.pick(rng, "conclusion.speed.DECELERATE"),
            templates.pick(rng, "conclusion.path.RIGHT_TURN"),
        ]
    )
    assert reasoning_of(grounded_trace(record, random.Random(3), templates)) == expected


def test_custom_vocabulary_needs_conclusions(templates: GroundedTemplates, template_data: dict[str, Any]) -> None:
    vocabulary = ActionVocabulary(speed=(*DEFAULT_VOCABULARY.speed, "CRAWL"), path=DEFAULT_VOCABULARY.path)
    templates.check_vocabulary(DEFAULT_VOCABULARY)
    with pytest.raises(BadInput, match=r"conclusion\.speed\.CRAWL"):
        templates.check_vocabulary(vocabulary)
    record = make_record(HIGHWAY, "CRAWL", "STRAIGHT")
    with pytest.raises(ValueError, match=r"conclusion\.speed\.CRAWL"):
        grounded_trace(record, random.Random(0), templates, vocabulary)

    data = copy.deepcopy(template_data)
    data["conclusion"]["speed"]["CRAWL"] = ["So I crawl forward."]
    extended = GroundedTemplates.from_yaml("grounded-test", yaml.safe_dump(data))
    extended.check_vocabulary(vocabulary)
    text = grounded_trace(record, random.Random(0), extended, vocabulary)
    assert judge_trace(text, ("CRAWL", "STRAIGHT"), vocabulary) == (True, filtering.KEPT)
    assert "So I crawl forward." in text


# --- template file loading and validation -----------------------------------------------


def test_load_records_id_and_file_hash(templates: GroundedTemplates) -> None:
    raw = (PROMPT_DIR / "grounded-v1.yaml").read_bytes()
    assert templates.id == "grounded-v1"
    assert templates.sha256 == hashlib.sha256(raw).hexdigest()
    assert grounded.NAME == "grounded-template"


def test_unknown_template_id_is_bad_input() -> None:
    with pytest.raises(BadInput, match=r"unknown grounded template 'grounded-v99' \(known: .*grounded-v1"):
        GroundedTemplates.load("grounded-v99")


def broken(template_data: dict[str, Any], edit: str) -> str:
    data = copy.deepcopy(template_data)
    if edit == "missing":
        del data["lead"]["close"]
    elif edit == "unknown":
        data["lead"]["tailgating"] = ["Too close."]
    elif edit == "empty list":
        data["yielding"] = []
    elif edit == "not a list":
        data["junction"]["at"] = "I am at the junction."
    elif edit == "placeholder":
        data["lead"]["far"].append("It is {distance} m ahead.")
    elif edit == "index":
        data["lead"]["close"].append("Only {gap[0]} m.")
    elif edit == "positional":
        data["traffic"]["many"].append("{} vehicles.")
    elif edit == "conclusion":
        data["conclusion"]["path"] = ["I turn."]
    return yaml.safe_dump(data)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("missing", r"lead is missing the keys close"),
        ("unknown", r"lead has unknown keys tailgating"),
        ("empty list", r"yielding must be a non-empty list of non-empty strings"),
        ("not a list", r"junction\.at must be a non-empty list"),
        ("placeholder", r"lead\.far: bad placeholder in 'It is \{distance\} m ahead\.' \(allowed: \{gap\}\)"),
        ("index", r"lead\.close: bad placeholder in 'Only \{gap\[0\]\} m\.'"),
        ("positional", r"traffic\.many: bad placeholder .*\(allowed: \{count\}\)"),
        ("conclusion", r"conclusion\.path must map path action names to lists of sentences"),
    ],
)
def test_yaml_structure_errors_name_the_entry(template_data: dict[str, Any], edit: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GroundedTemplates.from_yaml("broken", broken(template_data, edit))


def test_invalid_yaml_and_wrong_top_level() -> None:
    with pytest.raises(ValueError, match="not valid YAML"):
        GroundedTemplates.from_yaml("broken", "navigation: [unclosed")
    with pytest.raises(ValueError, match="the top level must be a mapping"):
        GroundedTemplates.from_yaml("broken", "- just a list")


def test_load_reports_the_file_of_a_broken_template(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, template_data: dict[str, Any]
) -> None:
    (tmp_path / "grounded-bad.yaml").write_text(broken(template_data, "missing"), encoding="utf-8")
    monkeypatch.setattr(grounded, "PROMPT_DIR", tmp_path)
    with pytest.raises(BadInput, match=r"grounded-bad\.yaml: lead is missing the keys close"):
        GroundedTemplates.load("grounded-bad")


# --- filtering ---------------------------------------------------------------------------

REASONING = "The lane ahead is clear and the route goes straight on."
TRUTH = ("KEEP", "STRAIGHT")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"<think>{REASONING}</think><answer>KEEP, STRAIGHT</answer>", filtering.KEPT),
        (f"  <think>{REASONING}</think>\n<answer> keep and straight </answer>\n", filtering.KEPT),
        ("KEEP, STRAIGHT", filtering.MALFORMED),
        (f"<think>{REASONING}</think>", filtering.MALFORMED),
        (f"<think>{REASONING}</think><answer>KEEP, STRAIGHT</answer> Hope this helps!", filtering.MALFORMED),
        (
            f"<think>{REASONING} <answer>STOP, STRAIGHT</answer></think><answer>KEEP, STRAIGHT</answer>",
            filtering.MALFORMED,
        ),
        (f"<think>{REASONING}</think><answer>KEEP</answer>", filtering.NO_PLAN),
        (f"<think>{REASONING}</think><answer>KEEP, STOP, STRAIGHT</answer>", filtering.NO_PLAN),
        (f"<think>{REASONING}</think><answer>CRUISE, STRAIGHT</answer>", filtering.NO_PLAN),
        (f"<think>{REASONING}</think><answer>ACCELERATE, STRAIGHT</answer>", filtering.DISAGREES),
        (f"<think>{REASONING}</think><answer>KEEP, LEFT_CHANGE</answer>", filtering.DISAGREES),
        ("<think>   </think><answer>KEEP, STRAIGHT</answer>", filtering.EMPTY_REASONING),
        ("<think>Go straight.</think><answer>KEEP, STRAIGHT</answer>", filtering.EMPTY_REASONING),
    ],
)
def test_judge_trace_reasons(text: str, reason: str) -> None:
    assert judge_trace(text, TRUTH, DEFAULT_VOCABULARY) == (reason == filtering.KEPT, reason)


def test_reason_constants() -> None:
    assert filtering.REASONS == ("kept", "malformed", "no plan", "disagrees with label", "empty reasoning")


def test_verify_agrees_reads_the_plan_only() -> None:
    assert verify_agrees("<think>x</think><answer>keep / straight</answer>", TRUTH, DEFAULT_VOCABULARY)
    assert verify_agrees("I would KEEP going. <answer>KEEP, STRAIGHT</answer>", TRUTH, DEFAULT_VOCABULARY)
    assert not verify_agrees("<think>x</think><answer>STOP, STRAIGHT</answer>", TRUTH, DEFAULT_VOCABULARY)
    assert not verify_agrees("<think>x</think><answer>KEEP, STOP, STRAIGHT</answer>", TRUTH, DEFAULT_VOCABULARY)
    assert not verify_agrees("KEEP, STRAIGHT", TRUTH, DEFAULT_VOCABULARY)


def test_reasoning_of() -> None:
    assert reasoning_of(f"<think>\n {REASONING} \n</think><answer>KEEP, STRAIGHT</answer>") == REASONING
    assert reasoning_of("<think>a\nb</think><answer>x</answer><think>c</think>") == "a\nb"
    assert reasoning_of("<answer>KEEP, STRAIGHT</answer>") == ""


# --- LLM teacher prompts -----------------------------------------------------------------

COMMON = {"navigation", "ego_speed_mps", "speed_actions", "path_actions", "scene"}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


@pytest.mark.parametrize(
    ("template_id", "expected"),
    [
        ("teacher-v1", COMMON | {"speed_action", "path_action"}),
        ("verify-v1", COMMON),
    ],
)
def test_teacher_prompts_render(template_id: str, expected: set[str]) -> None:
    prompt = load_prompt(template_id)
    assert placeholders(prompt.text) == expected
    values = {
        "navigation": "turn left at the intersection",
        "ego_speed_mps": 7.34,
        "speed_actions": ", ".join(DEFAULT_VOCABULARY.speed),
        "path_actions": ", ".join(DEFAULT_VOCABULARY.path),
        "scene": '{"lead_vehicle": null}',
        "speed_action": "DECELERATE",
        "path_action": "LEFT_TURN",
    }
    text = prompt.render(**{key: values[key] for key in expected})
    assert "turn left at the intersection" in text and "7.3 m/s" in text and '{"lead_vehicle": null}' in text
    assert "KEEP, ACCELERATE, DECELERATE, STOP" in text and "<think>" in text and "</answer>" in text
    assert ("DECELERATE, LEFT_TURN" in text) == (template_id == "teacher-v1")
    with pytest.raises(KeyError):
        prompt.render(**{key: values[key] for key in expected - {"scene"}})
