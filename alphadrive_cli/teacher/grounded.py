"""The offline grounded teacher: reasoning traces written from a frame's scene facts, not by a model.

Each trace describes what the record's ``scene`` facts, navigation and speed say, with phrasings
drawn from ``prompts/<template_id>.yaml``, and concludes with the record's label, so the answer is
always the ground truth and the reasoning never argues for another plan.
"""

from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import yaml

from alphadrive_cli.actions import DEFAULT_VOCABULARY, ActionVocabulary, format_completion
from alphadrive_cli.data.records import Record
from alphadrive_cli.errors import BadInput
from alphadrive_cli.resources import PROMPT_DIR

NAME = "grounded-template"
DEFAULT_TEMPLATES = "grounded-v1"

STOPPED_MPS = 0.5  # below this the ego is "standing still" (the STOP label's threshold)
AT_LIMIT_MPS = 1.0  # within this of the speed limit the ego is "at the limit"
SAME_SPEED_MPS = 0.5  # a lead vehicle within this relative speed moves "at my speed"
CLOSE_GAP_M = 20.0  # a lead vehicle is "close" below this gap ...
CLOSE_HEADWAY_S = 2.0  # ... or below this time headway at the ego's speed
AT_JUNCTION_M = 5.0  # closer than this the ego is "at the junction"
LANE_STATES = ("free", "occupied", "none")
SPEED_BAND_MPS = 3.0  # the width of the ego-speed bands a trace of "one_frame_speed_band" states
# the edges of the bands of the ego speed's share of the limit that a trace of "one_frame_limit_band" states
LIMIT_SHARE_EDGES = (0.05, 0.3, 0.5, 0.7, 0.85, 0.95, 1.05)
FactSet = Literal["all", "one_frame", "one_frame_speed_band", "one_frame_limit_band"]
# what the student's one front image and prompt cannot show: the lead's speed relative to the ego (no motion in one
# image) and the count of vehicles within 50 m (behind and beside the ego too)
HIDDEN_FROM_ONE_FRAME = frozenset(
    {"lead.slower", "lead.faster", "lead.same_speed", "traffic.none", "traffic.one", "traffic.many"}
)
HIDDEN_LEAVES: dict[FactSet, frozenset[str]] = {
    "all": frozenset(),
    "one_frame": HIDDEN_FROM_ONE_FRAME,
    "one_frame_speed_band": HIDDEN_FROM_ONE_FRAME,
    "one_frame_limit_band": HIDDEN_FROM_ONE_FRAME,
}
# leaves only some fact sets state: the ego speed's band in m/s or as a share of the limit, a category a reasoning
# can look its answer up by where the bare number is not (docs/results.md, commands 25 to 29)
ADDED_LEAVES: dict[FactSet, frozenset[str]] = {
    "all": frozenset(),
    "one_frame": frozenset(),
    "one_frame_speed_band": frozenset({"speed.band"}),
    "one_frame_limit_band": frozenset({"speed.limit_band", "speed.limit_band_over"}),
}
OPTIONAL_LEAVES = frozenset().union(*ADDED_LEAVES.values())

# The structure of a template file: every leaf is a list of alternatives, and the set names the
# placeholders its alternatives may use. Conclusions are checked separately (keys are actions).
_LEAVES: dict[str, frozenset[str]] = {
    "navigation": frozenset({"navigation"}),
    "speed.stopped": frozenset({"speed"}),
    "speed.below_limit": frozenset({"speed", "limit"}),
    "speed.at_limit": frozenset({"speed", "limit"}),
    "speed.above_limit": frozenset({"speed", "limit"}),
    "speed.no_limit": frozenset({"speed"}),
    "speed.band": frozenset({"low", "high"}),
    "speed.limit_band": frozenset({"low", "high"}),
    "speed.limit_band_over": frozenset({"low"}),
    "lead.absent": frozenset(),
    "lead.close": frozenset({"gap"}),
    "lead.far": frozenset({"gap"}),
    "lead.obstacle": frozenset({"gap"}),
    "lead.slower": frozenset({"closing"}),
    "lead.faster": frozenset({"opening"}),
    "lead.same_speed": frozenset(),
    **{f"lanes.{side}.{state}": frozenset() for side in ("left", "right") for state in LANE_STATES},
    "lanes.both": frozenset({"left", "right"}),
    "lanes.single": frozenset(),
    "junction.ahead": frozenset({"distance"}),
    "junction.at": frozenset(),
    "yielding": frozenset(),
    "traffic.none": frozenset(),
    "traffic.one": frozenset(),
    "traffic.many": frozenset({"count"}),
}
_HEADS = ("speed", "path")


def _check_alternatives(where: str, value: Any, allowed: frozenset[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{where} must be a non-empty list of non-empty strings")
    for text in value:
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
            text.format(**dict.fromkeys(allowed, "0"))
            ok = fields <= allowed
        except (KeyError, IndexError, ValueError, AttributeError):
            ok = False
        if not ok:
            names = ", ".join(f"{{{name}}}" for name in sorted(allowed)) or "none"
            raise ValueError(f"{where}: bad placeholder in {text!r} (allowed: {names})")
    return tuple(value)


def _check_mapping(where: str, value: Any, keys: set[str]) -> Mapping[str, Any]:
    where = where or "the top level"
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a mapping with the keys {', '.join(sorted(keys))}")
    if missing := keys - set(value):
        raise ValueError(f"{where} is missing the keys {', '.join(sorted(missing))}")
    if unknown := set(value) - keys:
        raise ValueError(f"{where} has unknown keys {', '.join(sorted(map(str, unknown)))}")
    return value


def _parse(data: Any) -> dict[str, tuple[str, ...]]:
    """Check the loaded YAML against the structure; return leaf path -> alternatives."""
    tree: dict[str, set[str]] = {}
    for path in [*_LEAVES, *(f"conclusion.{head}" for head in _HEADS)]:
        parts = path.split(".")
        for depth in range(len(parts)):
            tree.setdefault(".".join(parts[:depth]), set()).add(parts[depth])
    leaves: dict[str, tuple[str, ...]] = {}

    def walk(where: str, value: Any) -> None:
        if where in _LEAVES:
            leaves[where] = _check_alternatives(where, value, _LEAVES[where])
        elif where.startswith("conclusion."):
            if not isinstance(value, dict) or not value or not all(isinstance(key, str) for key in value):
                raise ValueError(f"{where} must map {where.split('.')[1]} action names to lists of sentences")
            for action, alternatives in value.items():
                leaves[f"{where}.{action}"] = _check_alternatives(f"{where}.{action}", alternatives, frozenset())
        else:
            for key, child in _check_mapping(where, value, tree[where]).items():
                walk(f"{where}.{key}" if where else key, child)

    walk("", data)
    return leaves


@dataclass(frozen=True)
class GroundedTemplates:
    """The phrasings of one template file; ``id`` and ``sha256`` identify it in manifests."""

    id: str
    sha256: str
    phrases: Mapping[str, tuple[str, ...]]

    @classmethod
    def load(cls, template_id: str = DEFAULT_TEMPLATES) -> GroundedTemplates:
        """Read and check ``prompts/<template_id>.yaml``; BadInput names the file and the problem."""
        path = PROMPT_DIR / f"{template_id}.yaml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in PROMPT_DIR.glob("*.yaml"))) or "none"
            raise BadInput(f"unknown grounded template {template_id!r} (known: {known})")
        raw = path.read_bytes()
        try:
            return cls.from_yaml(template_id, raw.decode("utf-8"))
        except ValueError as exc:
            raise BadInput(f"{path}: {exc}") from None

    @classmethod
    def from_yaml(cls, template_id: str, text: str) -> GroundedTemplates:
        """Templates from YAML text; ValueError says which entry is wrong and why."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"not valid YAML ({exc})".replace("\n", " ")) from None
        return cls(template_id, hashlib.sha256(text.encode("utf-8")).hexdigest(), _parse(data))

    def check_vocabulary(self, vocabulary: ActionVocabulary) -> None:
        """Raise BadInput unless every action of ``vocabulary`` has conclusion sentences."""
        missing = [
            f"conclusion.{head}.{action}"
            for head in _HEADS
            for action in getattr(vocabulary, head)
            if f"conclusion.{head}.{action}" not in self.phrases
        ]
        if missing:
            raise BadInput(f"grounded template {self.id!r} has no sentences for {', '.join(missing)}")

    def pick(self, rng: random.Random, leaf: str, **values: str) -> str:
        """One alternative of ``leaf`` (e.g. ``"lead.close"``), drawn with ``rng`` and filled."""
        return rng.choice(self.phrases[leaf]).format(**values)


class Phrasing(Protocol):
    """What the sentence builders need of a template set: one filled alternative of a leaf."""

    def pick(self, rng: random.Random, leaf: str, **values: str) -> str: ...


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _speed_sentence(speed: float, limit: float | None, rng: random.Random, t: Phrasing) -> str:
    if speed < STOPPED_MPS:
        return t.pick(rng, "speed.stopped", speed=f"{speed:.1f}")
    if limit is None:
        return t.pick(rng, "speed.no_limit", speed=f"{speed:.1f}")
    leaf = "at_limit" if abs(speed - limit) <= AT_LIMIT_MPS else "below_limit" if speed < limit else "above_limit"
    return t.pick(rng, f"speed.{leaf}", speed=f"{speed:.1f}", limit=f"{limit:.0f}")


def speed_band(speed: float) -> tuple[int, int]:
    """The SPEED_BAND_MPS band the ego speed lies in, as its (low, high) ends in m/s."""
    low = int(max(speed, 0.0) // SPEED_BAND_MPS * SPEED_BAND_MPS)
    return low, int(low + SPEED_BAND_MPS)


def limit_share_band(speed: float, limit: float) -> tuple[int, int | None]:
    """The LIMIT_SHARE_EDGES band the ego speed's share of the limit lies in, as its (low, high) ends in percent;
    high is None above the last edge."""
    share, low = max(speed, 0.0) / limit, 0
    for edge in LIMIT_SHARE_EDGES:
        if share < edge:
            return low, round(edge * 100)
        low = round(edge * 100)
    return low, None


def speed_limit(scene: dict[str, Any]) -> float | None:
    """The scene's speed limit in m/s where it is a positive number, else None (a trace then states no limit)."""
    limit = _number(scene.get("speed_limit_mps"))
    return limit if limit and limit > 0 else None


def _added_fact(facts: FactSet, scene: dict[str, Any], speed: float) -> tuple[str, dict[str, str]] | None:
    """The leaf, with its values, that ``facts`` states after the speed sentence (ADDED_LEAVES), if any here: the
    speed's band, or its share of the limit's band where the limit is known."""
    added = ADDED_LEAVES[facts]
    if "speed.band" in added:
        low, high = speed_band(speed)
        return "speed.band", {"low": str(low), "high": str(high)}
    if "speed.limit_band" in added and (limit := speed_limit(scene)) is not None:
        low, top = limit_share_band(speed, limit)
        if top is None:
            return "speed.limit_band_over", {"low": str(low)}
        return "speed.limit_band", {"low": str(low), "high": str(top)}
    return None


def _lead_sentences(lead: Any, speed: float, rng: random.Random, t: Phrasing) -> list[str]:
    if lead is None:
        return [t.pick(rng, "lead.absent")]
    gap = _number(lead.get("gap_m")) if isinstance(lead, dict) else None
    if gap is None:
        return []
    shown = f"{max(gap, 0.0):.0f}"
    if lead.get("kind") == "obstacle":
        return [t.pick(rng, "lead.obstacle", gap=shown)]
    close = gap < max(CLOSE_GAP_M, CLOSE_HEADWAY_S * speed)
    sentences = [t.pick(rng, "lead.close" if close else "lead.far", gap=shown)]
    relative = _number(lead.get("relative_speed_mps"))
    if relative is not None:
        if relative < -SAME_SPEED_MPS:
            sentences.append(t.pick(rng, "lead.slower", closing=f"{-relative:.1f}"))
        elif relative > SAME_SPEED_MPS:
            sentences.append(t.pick(rng, "lead.faster", opening=f"{relative:.1f}"))
        else:
            sentences.append(t.pick(rng, "lead.same_speed"))
    return sentences


def _lane_sentences(left: Any, right: Any, rng: random.Random, t: Phrasing) -> list[str]:
    left = left if left in LANE_STATES else None
    right = right if right in LANE_STATES else None
    if left == right == "none":
        return [t.pick(rng, "lanes.single")]
    clauses = [t.pick(rng, f"lanes.{side}.{state}") for side, state in (("left", left), ("right", right)) if state]
    if len(clauses) == 2:
        return [_capitalized(t.pick(rng, "lanes.both", left=clauses[0], right=clauses[1]))]
    return [_capitalized(clause) + "." for clause in clauses]


def _scene_sentences(scene: dict[str, Any], speed: float, rng: random.Random, t: Phrasing) -> list[str]:
    sentences: list[str] = []
    if "lead_vehicle" in scene:
        sentences += _lead_sentences(scene["lead_vehicle"], speed, rng, t)
    sentences += _lane_sentences(scene.get("left_lane"), scene.get("right_lane"), rng, t)
    distance = _number(scene.get("distance_to_junction_m"))
    if distance is not None:
        if distance < AT_JUNCTION_M:
            sentences.append(t.pick(rng, "junction.at"))
        else:
            sentences.append(t.pick(rng, "junction.ahead", distance=f"{distance:.0f}"))
    if scene.get("yielding") is True:
        sentences.append(t.pick(rng, "yielding"))
    count = _number(scene.get("vehicles_within_50m"))
    if count is not None and count >= 0:
        leaf = "traffic.none" if count == 0 else "traffic.one" if count == 1 else "traffic.many"
        sentences.append(t.pick(rng, leaf, count=f"{count:.0f}"))
    return sentences


class _Omitting:
    """A Phrasing that states nothing for the ``hidden`` leaves and passes the rest on. It still draws their
    phrasing, so that every other sentence is the one the full trace of the same random state has."""

    def __init__(self, inner: Phrasing, hidden: frozenset[str]) -> None:
        self.inner, self.hidden = inner, hidden

    def pick(self, rng: random.Random, leaf: str, **values: str) -> str:
        text = self.inner.pick(rng, leaf, **values)
        return "" if leaf in self.hidden else text


def _observation_sentences(
    scene: dict[str, Any], speed: float, rng: random.Random, t: Phrasing, facts: FactSet = "all"
) -> list[str]:
    """What a trace observes: the speed (against the limit when known), then the scene facts; with ``facts``
    "one_frame", none of those one front image cannot show (HIDDEN_FROM_ONE_FRAME)."""
    if HIDDEN_LEAVES[facts]:
        t = _Omitting(t, HIDDEN_LEAVES[facts])
    sentences = [
        _speed_sentence(speed, speed_limit(scene), rng, t),
        *_scene_sentences(scene, speed, rng, t),
    ]
    return [sentence for sentence in sentences if sentence]


class _FactRecorder:
    """A Phrasing that writes nothing and records each leaf a trace would state, with its values."""

    def __init__(self) -> None:
        self.facts: list[tuple[str, dict[str, str]]] = []

    def pick(self, rng: random.Random, leaf: str, **values: str) -> str:
        self.facts.append((leaf, values))
        return ""


def stated_facts(
    scene: dict[str, Any], ego_speed_mps: float, facts: FactSet = "all"
) -> list[tuple[str, dict[str, str]]]:
    """The template leaves (e.g. ``"lead.close"``), each with its formatted values, that a grounded trace of a
    frame with these scene facts and speed states (with ``facts``, as :func:`grounded_trace`): what a faithful
    reasoning says about the frame (navigation and conclusions left out). The same leaves for every phrasing and
    random draw."""
    recorder = _FactRecorder()
    _observation_sentences(scene, ego_speed_mps, random.Random(0), recorder)
    if added := _added_fact(facts, scene, ego_speed_mps):
        recorder.facts.insert(1, added)
    hidden = HIDDEN_LEAVES[facts]
    return [(leaf, values) for leaf, values in recorder.facts if leaf != "lanes.both" and leaf not in hidden]


def scene_description(scene: dict[str, Any], rng: random.Random, templates: Phrasing) -> str:
    """What one image of the frame shows, in the grounded trace's phrasing: the lead or obstacle ahead and its gap,
    the lanes beside, the junction (its yielding), nothing the image cannot show (HIDDEN_FROM_ONE_FRAME) and nothing
    that needs the ego speed (a lead counts as close below CLOSE_GAP_M alone). Empty without such facts."""
    sentences = _scene_sentences(scene, 0.0, rng, _Omitting(templates, HIDDEN_FROM_ONE_FRAME))
    return " ".join(sentence for sentence in sentences if sentence)


def grounded_trace(
    record: Record,
    rng: random.Random,
    templates: GroundedTemplates,
    vocabulary: ActionVocabulary = DEFAULT_VOCABULARY,
    facts: FactSet = "all",
) -> str:
    """``<think>REASONING</think><answer>SPEED, PATH</answer>`` for the record's label.

    The reasoning states the navigation, the speed (against the limit when known) and whatever scene facts are
    present and well-formed (with ``facts`` "one_frame", only those one front image can show; "one_frame_speed_band"
    adds the ego speed's band after the speed, "one_frame_limit_band" its share of the limit's band where the limit
    is known, each drawn last so that every other sentence is the "one_frame" trace's), then concludes with the
    label's speed and path action. The same ``rng`` state gives the same text. ValueError if the label has no
    conclusion sentences.
    """
    sentences = [
        templates.pick(rng, "navigation", navigation=record.navigation.strip()),
        *_observation_sentences(record.scene or {}, record.ego_speed_mps, rng, templates, facts),
    ]
    for head, action in (("speed", record.speed_action), ("path", record.path_action)):
        leaf = f"conclusion.{head}.{action}"
        if leaf not in templates.phrases:
            raise ValueError(f"grounded template {templates.id!r} has no sentences for {leaf}")
        sentences.append(templates.pick(rng, leaf))
    if added := _added_fact(facts, record.scene or {}, record.ego_speed_mps):
        leaf, values = added
        sentences.insert(2, templates.pick(rng, leaf, **values))
    return format_completion(" ".join(sentences), record.speed_action, record.path_action, vocabulary)
