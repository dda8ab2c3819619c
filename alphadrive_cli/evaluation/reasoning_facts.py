"""Does a model's reasoning state the frame's facts? Its sentences read back through the grounded teacher's
phrasings and compared, fact by fact, with what a faithful trace of the same frame states.

A model trained on grounded traces (`distill --teacher grounded`) writes their sentences: the speed against the
limit, the lead vehicle (none, close, far, an obstacle) and whether it is slower or faster, each side lane, the
junction, yielding and the traffic around. Each is one *fact* with a *state* (``lead``: ``close``); reading the
model's sentences back with the same phrasings gives the state it claims, and `stated_facts` the state the scene
has. A claim that differs is a wrong fact; a fact the scene has and the model does not mention is missing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from alphadrive_cli.errors import BadInput
from alphadrive_cli.teacher.grounded import (
    ADDED_LEAVES,
    HIDDEN_LEAVES,
    OPTIONAL_LEAVES,
    FactSet,
    GroundedTemplates,
    stated_facts,
)

NUMBER = r"-?\d+(?:\.\d+)?"
NUMERIC_VALUES = {"speed": "speed", "lead": "gap", "junction": "distance", "traffic": "count"}


# the leaves that state a band, and the fact each is; a band's state is its lower end
BAND_FACTS = {"speed.band": "speed band", "speed.limit_band": "limit band", "speed.limit_band_over": "limit band"}


def fact_of(leaf: str, values: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """The (fact, state) pairs a template leaf states: ``"lead.slower"`` -> ``[("lead motion", "slower")]``; a
    band's state is its lower end, from ``values`` (``"speed.band"``, ``{"low": "12"}`` -> ``("speed band",
    "12")``)."""
    if leaf in BAND_FACTS:
        return [(BAND_FACTS[leaf], (values or {}).get("low", ""))]
    head, _, rest = leaf.partition(".")
    if head == "lead":
        return [("lead motion" if rest in ("slower", "faster", "same_speed") else "lead", rest)]
    if head == "lanes":
        if rest == "single":
            return [("left lane", "none"), ("right lane", "none")]
        side, _, state = rest.partition(".")
        return [(f"{side} lane", state)]
    if head == "yielding":
        return [("yielding", "yes")]
    return [(head, rest)]


def _pattern(alternative: str) -> re.Pattern[str]:
    """A regular expression that finds one phrasing in a text, its {placeholders} captured as numbers."""
    escaped = re.escape(alternative)
    for name in set(re.findall(r"\\\{(\w+)\\\}", escaped)):
        escaped = escaped.replace(rf"\{{{name}\}}", f"(?P<{name}>{NUMBER})", 1).replace(rf"\{{{name}\}}", NUMBER)
    return re.compile(escaped, re.IGNORECASE)


def phrase_patterns(templates: GroundedTemplates) -> dict[str, list[re.Pattern[str]]]:
    """Every scene leaf's phrasings as patterns (navigation, conclusions and the lane-joining leaf left out: the
    side-lane clauses are found on their own)."""
    skipped = ("navigation", "conclusion.", "lanes.both")
    return {
        leaf: [_pattern(alternative) for alternative in alternatives]
        for leaf, alternatives in templates.phrases.items()
        if not leaf.startswith(skipped)
    }


def claimed_facts(text: str, patterns: Mapping[str, list[re.Pattern[str]]]) -> dict[str, tuple[str, dict[str, str]]]:
    """Each fact a text claims, as (state, captured values), from the first phrasing of it in the text."""
    found: list[tuple[int, str, dict[str, str]]] = []
    for leaf, alternatives in patterns.items():
        for pattern in alternatives:
            if match := pattern.search(text):
                found.append((match.start(), leaf, match.groupdict()))
    claims: dict[str, tuple[str, dict[str, str]]] = {}
    for _, leaf, values in sorted(found, key=lambda item: item[0]):
        for fact, state in fact_of(leaf, values):
            claims.setdefault(fact, (state, values))
    return claims


def true_facts(
    scene: dict[str, Any], ego_speed_mps: float, facts: FactSet = "all"
) -> dict[str, tuple[str, dict[str, str]]]:
    """Each fact a faithful trace of the frame states (of ``facts``, as the traces were written), as (state,
    values); ``yielding`` only where it holds."""
    return {
        fact: (state, values)
        for leaf, values in stated_facts(scene, ego_speed_mps, facts)
        for fact, state in fact_of(leaf, values)
    }


SPEED_SPLIT_FACTS = ("lead", "lead motion")  # the facts whose right or wrong statement the speed action is split by


def compare_facts(
    frames: Iterable[tuple[dict[str, Any], float, str, bool]], templates: GroundedTemplates, facts: FactSet = "all"
) -> dict[str, Any]:
    """Per fact, over ``frames`` (scene, ego speed, the model's text, whether its speed action was right): how
    often the model states it right, wrong, or not at all, the states it confuses, the mean absolute error of its
    number where it states the right state, and, for each of SPEED_SPLIT_FACTS, the speed-action accuracy on frames
    where it states that fact right against those where it states it wrong or leaves it out (does a wrong
    perception explain a wrong plan?). A fact the scene does not have is not scored, except yielding: claiming to
    yield where nothing requires it counts as "claimed without cause". ``facts``: what the traces the models learnt
    from stated (the distill's ``grounded_facts``)."""
    patterns = phrase_patterns(templates)
    counts: dict[str, Counter[str]] = {}
    confusions: dict[str, Counter[str]] = {}
    errors: dict[str, list[float]] = {}
    speed_by_fact = {fact: {"right": [], "wrong or missing": []} for fact in SPEED_SPLIT_FACTS}
    for scene, speed, text, speed_right in frames:
        truth, claims = true_facts(scene, speed, facts), claimed_facts(text, patterns)
        for fact, (state, values) in truth.items():
            claimed = claims.get(fact)
            outcome = "missing" if claimed is None else "right" if claimed[0] == state else "wrong"
            counts.setdefault(fact, Counter())[outcome] += 1
            if outcome == "wrong":
                confusions.setdefault(fact, Counter())[f"{state} -> {claimed[0]}"] += 1
            key = NUMERIC_VALUES.get(fact)
            if outcome == "right" and key in values and claimed[1].get(key) is not None:
                errors.setdefault(fact, []).append(abs(float(claimed[1][key]) - float(values[key])))
            if fact in speed_by_fact:
                speed_by_fact[fact]["right" if outcome == "right" else "wrong or missing"].append(speed_right)
        if "yielding" in claims and "yielding" not in truth:
            counts.setdefault("yielding", Counter())["claimed without cause"] += 1

    def summary(fact: str, count: Counter[str]) -> dict[str, Any]:
        frames = count["right"] + count["wrong"] + count["missing"]
        return {
            "frames": frames,
            **{key: count[key] for key in ("right", "wrong", "missing", "claimed without cause") if key in count},
            "right_rate": round(count["right"] / max(1, frames), 4),
            "confusions": dict(confusions.get(fact, Counter()).most_common(5)),
            **({"mean_abs_error": round(sum(errors[fact]) / len(errors[fact]), 3)} if errors.get(fact) else {}),
        }

    return {
        "facts": {fact: summary(fact, count) for fact, count in sorted(counts.items())},
        "speed_accuracy_by_fact": {
            fact: {
                group: {"frames": len(rights), "speed_accuracy": round(sum(rights) / max(1, len(rights)), 4)}
                for group, rights in groups.items()
            }
            for fact, groups in speed_by_fact.items()
        },
    }


TABLE_FACTS = ("speed", "speed band", "limit band", "lead", "lead motion", "junction", "yielding")


def table_facts(facts: FactSet) -> list[str]:
    """The TABLE_FACTS that traces of ``facts`` state (one-frame traces leave the lead's motion out, and only
    traces of a fact set that adds one state a band)."""
    unstated = {
        fact for leaf in HIDDEN_LEAVES[facts] | (OPTIONAL_LEAVES - ADDED_LEAVES[facts]) for fact, _ in fact_of(leaf)
    }
    return [fact for fact in TABLE_FACTS if fact not in unstated]


def fact_states(scene: dict[str, Any], speed: float, facts: FactSet) -> tuple[str, ...]:
    """The true states of TABLE_FACTS that a faithful trace of ``facts`` states ("-" for one it does not)."""
    stated = true_facts(scene, speed, facts)
    return tuple(stated.get(fact, ("-",))[0] for fact in TABLE_FACTS)


def claimed_states(claims: Mapping[str, tuple[str, dict[str, str]]], facts: FactSet) -> tuple[str, ...]:
    """The states of TABLE_FACTS a text claims (`claimed_facts`), in `fact_states`' form: a fact that traces of
    ``facts`` never state, or that the text leaves out, is "-"."""
    stated = set(table_facts(facts))
    return tuple(claims[fact][0] if fact in stated and fact in claims else "-" for fact in TABLE_FACTS)


@dataclass(frozen=True)
class StateTable:
    """The speed action most often labelled for each combination of states (of facts, say), fit on labelled
    frames; a combination never seen gets the overall majority."""

    cells: dict[tuple[str, ...], str]
    majority: str

    @classmethod
    def fit(cls, frames: Iterable[tuple[tuple[str, ...], str]]) -> StateTable:
        """Fit on (states, speed action) frames; BadInput if there are none."""
        counts: dict[tuple[str, ...], Counter[str]] = {}
        overall: Counter[str] = Counter()
        for states, action in frames:
            counts.setdefault(states, Counter())[action] += 1
            overall[action] += 1
        if not overall:
            raise BadInput("the train split has no frames to fit the table of facts on")
        cells = {states: count.most_common(1)[0][0] for states, count in counts.items()}
        return cls(cells, overall.most_common(1)[0][0])

    def answer(self, states: tuple[str, ...]) -> str:
        """The table's speed action for one combination of states."""
        return self.cells.get(states, self.majority)

    def accuracy(self, frames: Iterable[tuple[tuple[str, ...], str]]) -> dict[str, Any]:
        """The table's speed accuracy on (states, speed action) frames, beside always answering the majority."""
        right = count = majority_right = 0
        for states, action in frames:
            right += self.answer(states) == action
            majority_right += self.majority == action
            count += 1
        return {
            "combinations": len(self.cells),
            "frames": count,
            "speed_accuracy": round(right / max(1, count), 4),
            "majority_speed_accuracy": round(majority_right / max(1, count), 4),
        }


def fact_table(train: Iterable[tuple[dict[str, Any], float, str]], facts: FactSet = "all") -> StateTable:
    """The `StateTable` of the facts traces of ``facts`` state, fit on (scene, ego speed, speed action) frames."""
    return StateTable.fit((fact_states(scene, speed, facts), action) for scene, speed, action in train)


def fact_table_accuracy(
    table: StateTable, scored: Iterable[tuple[dict[str, Any], float, str]], facts: FactSet = "all"
) -> dict[str, Any]:
    """How far perfect knowledge of the stated facts goes: a `fact_table`'s answers for the true facts of the
    ``scored`` frames (scene, ego speed, speed action), beside always answering the majority action."""
    frames = ((fact_states(scene, speed, facts), action) for scene, speed, action in scored)
    return {"facts": table_facts(facts), **table.accuracy(frames)}


def answers_as_the_table(
    frames: Iterable[tuple[dict[str, Any], float, str, str | None]],
    table: StateTable,
    templates: GroundedTemplates,
    facts: FactSet = "all",
) -> dict[str, Any]:
    """Over ``frames`` (scene, ego speed, the model's text, its speed answer or None): how often the answer is the
    one a `fact_table` gives for the frame's true facts, and for the facts the text states. Near 1 for the stated
    facts, the answer is a lookup of the reasoning's own coarse states, and plans no better than the table does."""
    patterns = phrase_patterns(templates)
    count = as_true = as_stated = 0
    for scene, speed, text, answer in frames:
        count += 1
        as_true += answer == table.answer(fact_states(scene, speed, facts))
        as_stated += answer == table.answer(claimed_states(claimed_facts(text, patterns), facts))
    return {
        "frames": count,
        "as_for_the_true_facts": round(as_true / max(1, count), 4),
        "as_for_the_stated_facts": round(as_stated / max(1, count), 4),
    }
