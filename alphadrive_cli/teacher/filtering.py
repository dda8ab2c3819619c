"""Which teacher traces are kept: well-formed, with real reasoning, and planning the labelled actions."""

from __future__ import annotations

import re

from alphadrive_cli.actions import ActionVocabulary, matches_answer_format, parse_answer

KEPT = "kept"
MALFORMED = "malformed"
NO_PLAN = "no plan"
DISAGREES = "disagrees with label"
EMPTY_REASONING = "empty reasoning"
REASONS = (KEPT, MALFORMED, NO_PLAN, DISAGREES, EMPTY_REASONING)

MIN_REASONING_CHARS = 20

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
# A tag inside the reasoning would be learnt by the student as part of its thinking.
_TAG = re.compile(r"<\s*/?\s*(?:think|answer)\s*>", re.IGNORECASE | re.ASCII)


def reasoning_of(text: str) -> str:
    """The text of the first ``<think>…</think>`` block, stripped; ``""`` if there is none."""
    match = _THINK.search(text)
    return match.group(1).strip() if match else ""


def judge_trace(text: str, truth: tuple[str, str], vocabulary: ActionVocabulary) -> tuple[bool, str]:
    """Keep or drop a teacher trace for the label ``truth`` = (speed, path); returns (keep, reason).

    Checked in order: the answer format, with no think/answer tag inside the reasoning
    (MALFORMED); exactly one speed and one path action in the answer (NO_PLAN); the plan equal
    to ``truth`` (DISAGREES); at least MIN_REASONING_CHARS of reasoning (EMPTY_REASONING).
    """
    if not matches_answer_format(text) or _TAG.search(reasoning_of(text)):
        return False, MALFORMED
    plan = parse_answer(text, vocabulary).plan
    if plan is None:
        return False, NO_PLAN
    if plan != tuple(truth):
        return False, DISAGREES
    if len(reasoning_of(text)) < MIN_REASONING_CHARS:
        return False, EMPTY_REASONING
    return True, KEPT


def verify_agrees(text: str, truth: tuple[str, str], vocabulary: ActionVocabulary) -> bool:
    """Whether an independent (label-free) teacher answer plans exactly ``truth``."""
    return parse_answer(text, vocabulary).plan == tuple(truth)
