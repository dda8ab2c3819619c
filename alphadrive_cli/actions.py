"""Meta-action vocabulary and the parser for model answers.

An AlphaDrive model answers ``<think>reasoning</think><answer>SPEED, PATH</answer>``.
This module is the only place in the project that reads such answers.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Literal

Head = Literal["speed", "path"]

_ACTION_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
# A word is a run of letters/digits; every other character separates words.
_WORD = re.compile(r"[^\W_]+")
# Only ASCII letters are case-folded, so that e.g. "ſtop" never reads as STOP.
_ASCII_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)
_SEPARATOR_WORD = "AND"
# re.ASCII keeps IGNORECASE from folding non-ASCII look-alikes into "answer".
_OPEN_TAG = re.compile(r"<\s*answer\s*>", re.IGNORECASE | re.ASCII)
_CLOSE_TAG = re.compile(r"<\s*/\s*answer\s*>", re.IGNORECASE | re.ASCII)

ANSWER_FORMAT = re.compile(r"^<think>.*?</think>\s*<answer>.*?</answer>$", re.DOTALL)
ANSWER_ONLY_FORMAT = re.compile(r"^<answer>.*?</answer>$", re.DOTALL)


def _words(text: str) -> tuple[str, ...]:
    return tuple(word.translate(_ASCII_UPPER) for word in _WORD.findall(text))


def _contains_phrase(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(words[i : i + n] == phrase for i in range(len(words) - n + 1))


@dataclass(frozen=True)
class ActionVocabulary:
    """The meta-actions a model may answer with, split into speed and path heads."""

    speed: tuple[str, ...]
    path: tuple[str, ...]

    def __post_init__(self) -> None:
        for head in ("speed", "path"):
            actions = getattr(self, head)
            if isinstance(actions, str):
                raise ValueError(f"{head} actions must be a sequence of names, not a string")
            actions = tuple(actions)
            object.__setattr__(self, head, actions)
            if not actions:
                raise ValueError(f"the {head} head needs at least one action")
            for action in actions:
                if not isinstance(action, str) or not _ACTION_NAME.fullmatch(action):
                    raise ValueError(f"invalid {head} action {action!r}: names must match [A-Z][A-Z0-9_]*")
        seen: set[str] = set()
        for action in self.speed + self.path:
            if action in seen:
                raise ValueError(f"duplicate action {action!r}")
            seen.add(action)
        phrases = {action: _words(action) for action in seen}
        for action, words in phrases.items():
            if words == (_SEPARATOR_WORD,):
                raise ValueError(f"action {action!r} clashes with the separator word 'and'")
            for other, other_words in phrases.items():
                if other != action and _contains_phrase(other_words, words):
                    raise ValueError(f"ambiguous vocabulary: {action!r} is a whole-word part of {other!r}")

    def head_of(self, action: str) -> Head:
        """Return ``"speed"`` or ``"path"`` for a vocabulary action; ValueError otherwise."""
        if action in self.speed:
            return "speed"
        if action in self.path:
            return "path"
        raise ValueError(f"unknown action {action!r}")

    def to_dict(self) -> dict[str, list[str]]:
        """Return a JSON-ready ``{"speed": [...], "path": [...]}`` mapping."""
        return {"speed": list(self.speed), "path": list(self.path)}

    @classmethod
    def from_dict(cls, data: dict[str, list[str]]) -> ActionVocabulary:
        """Build a vocabulary from the mapping written by :meth:`to_dict`."""
        if set(data) != {"speed", "path"}:
            raise ValueError(f"vocabulary needs exactly the keys 'speed' and 'path', got {sorted(data)}")
        return cls(speed=tuple(data["speed"]), path=tuple(data["path"]))


DEFAULT_VOCABULARY = ActionVocabulary(
    speed=("KEEP", "ACCELERATE", "DECELERATE", "STOP"),
    path=("STRAIGHT", "LEFT_TURN", "RIGHT_TURN", "LEFT_CHANGE", "RIGHT_CHANGE"),
)


@dataclass(frozen=True)
class ParsedAnswer:
    """What was read from the ``<answer>`` part of a completion.

    ``unrecognized`` holds the answer's words that belong to no vocabulary action
    (ASCII letters upper-cased, in order); ``has_answer`` says an ``<answer>`` tag was found.
    """

    speed: frozenset[str]
    path: frozenset[str]
    unrecognized: tuple[str, ...]
    has_answer: bool

    @property
    def plan(self) -> tuple[str, str] | None:
        """The (speed, path) pair when exactly one action of each head was found."""
        if len(self.speed) == 1 and len(self.path) == 1:
            (speed,) = self.speed
            (path,) = self.path
            return speed, path
        return None

    def to_dict(self) -> dict[str, list[str]]:
        """``{"speed": [...], "path": [...], "unrecognized": [...]}``, actions sorted: a JSON line's ``parsed``."""
        return {"speed": sorted(self.speed), "path": sorted(self.path), "unrecognized": list(self.unrecognized)}


def _answer_text(text: str) -> str | None:
    openings = list(_OPEN_TAG.finditer(text))
    if not openings:
        return None
    start = openings[-1].end()
    closing = _CLOSE_TAG.search(text, start)
    return text[start : closing.start() if closing else len(text)]


def parse_answer(text: str, vocabulary: ActionVocabulary = DEFAULT_VOCABULARY) -> ParsedAnswer:
    """Read the actions inside the last ``<answer>`` tag of ``text``; never raises.

    Case, spacing and separators are tolerated; only exact vocabulary actions
    (as whole words, in order) are recognised. An opening tag without a closing
    tag reads to the end of the text; without any opening tag nothing is read.
    """
    answer = _answer_text(text)
    if answer is None:
        return ParsedAnswer(frozenset(), frozenset(), (), has_answer=False)
    phrases = [(_words(action), action) for action in vocabulary.speed + vocabulary.path]
    found: dict[Head, set[str]] = {"speed": set(), "path": set()}
    unrecognized: list[str] = []
    words = _words(answer)
    i = 0
    while i < len(words):
        for phrase, action in phrases:
            if words[i : i + len(phrase)] == phrase:
                found[vocabulary.head_of(action)].add(action)
                i += len(phrase)
                break
        else:
            if words[i] != _SEPARATOR_WORD:
                unrecognized.append(words[i])
            i += 1
    return ParsedAnswer(
        speed=frozenset(found["speed"]),
        path=frozenset(found["path"]),
        unrecognized=tuple(unrecognized),
        has_answer=True,
    )


def matches_answer_format(text: str, reasoning: bool = True) -> bool:
    """The paper's format reward: ``<think>…</think><answer>…</answer>`` and nothing else; without ``reasoning``
    (the paper's answer-only ablation), ``<answer>…</answer>`` and nothing else."""
    return (ANSWER_FORMAT if reasoning else ANSWER_ONLY_FORMAT).match(text.strip()) is not None


def format_answer(speed: str, path: str, vocabulary: ActionVocabulary = DEFAULT_VOCABULARY) -> str:
    """Return ``"SPEED, PATH"`` after checking both actions against ``vocabulary``."""
    if speed not in vocabulary.speed:
        raise ValueError(f"{speed!r} is not a speed action of the vocabulary")
    if path not in vocabulary.path:
        raise ValueError(f"{path!r} is not a path action of the vocabulary")
    return f"{speed}, {path}"


def format_completion(reasoning: str, speed: str, path: str, vocabulary: ActionVocabulary = DEFAULT_VOCABULARY) -> str:
    """Return ``<think>{reasoning}</think><answer>{SPEED, PATH}</answer>``."""
    return f"<think>{reasoning}</think><answer>{format_answer(speed, path, vocabulary)}</answer>"
