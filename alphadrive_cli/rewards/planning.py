"""AlphaDrive's four GRPO planning rewards (docs/spec.md#rewards; paper section 3.2.2, Alg. 1).

Pure functions of completion text and labels; the formulas, defaults and their sources are in
``docs/rewards.md``. Per completion and per head (speed, path), ``style: algorithm1`` (the paper)::

    accuracy  = F1(set of actions answered for the head, true action)   (0 if format is 0)
    weight    = action_weights[true action]
    diversity = max(floor, 1 - share of the group giving the same answer for the head)
    head      = accuracy * weight * diversity

``style: released_code`` (the released training code, ../shared/PAPER.md)::

    weight    = mean of action_weights over the answered words of the head
    diversity = +0.4 if every answered word is new in the batch so far (in batch order), else -0.4
    head      = accuracy * weight + diversity          (0 if format is 0)

and in both ``quality = speed head + path head``. ``safety`` (ours, docs/rewards.md#safety-reward) is 1 for a
well-formatted single plan that the simulator judged acceptable at the frame, else 0, and
``total = quality_coef * quality + format_coef * format + safety_coef * safety``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence, Set
from dataclasses import asdict, dataclass
from typing import Any

from alphadrive_cli.actions import (
    DEFAULT_VOCABULARY,
    ActionVocabulary,
    matches_answer_format,
    parse_answer,
)
from alphadrive_cli.config.schemas import MIN_DIVERSITY_FLOOR, RewardConfig

__all__ = [
    "MIN_DIVERSITY_FLOOR",
    "RewardBreakdown",
    "RewardConfig",
    "action_weight",
    "diversity_factors",
    "format_reward",
    "group_rewards",
    "planning_accuracy",
    "set_f1",
]


@dataclass(frozen=True)
class RewardBreakdown:
    """Every reward component of one completion (each is logged during training)."""

    format: float
    speed_accuracy: float
    path_accuracy: float
    speed_weight: float
    path_weight: float
    speed_diversity: float
    path_diversity: float
    speed_quality: float
    path_quality: float
    quality: float
    safety: float
    total: float

    def as_dict(self) -> dict[str, float]:
        """The components as a plain mapping (for logs and JSON)."""
        return asdict(self)


def format_reward(completion: str, reasoning: bool = True) -> float:
    """1.0 if ``completion`` is exactly ``<think>…</think><answer>…</answer>`` (without ``reasoning``:
    ``<answer>…</answer>``), else 0.0."""
    return 1.0 if matches_answer_format(completion, reasoning) else 0.0


def set_f1(predicted: Set[str], truth: str) -> float:
    """F1 of a set of answered actions against one true action: 2 / (k + 1) if the truth is
    among the k answered actions, else 0 (an empty set is 0)."""
    return 2.0 / (len(predicted) + 1) if truth in predicted else 0.0


def _check_truth(truth_speed: str, truth_path: str, vocabulary: ActionVocabulary) -> None:
    if truth_speed not in vocabulary.speed:
        raise ValueError(f"true speed action {truth_speed!r} is not in the vocabulary")
    if truth_path not in vocabulary.path:
        raise ValueError(f"true path action {truth_path!r} is not in the vocabulary")


def planning_accuracy(
    completion: str,
    truth_speed: str,
    truth_path: str,
    vocabulary: ActionVocabulary = DEFAULT_VOCABULARY,
) -> tuple[float, float]:
    """(speed F1, path F1) of the answer against the true actions.

    Format 0 means no planning reward: a completion that fails the format reward scores
    (0.0, 0.0) whatever its answer says.
    """
    _check_truth(truth_speed, truth_path, vocabulary)
    if not format_reward(completion):
        return 0.0, 0.0
    parsed = parse_answer(completion, vocabulary)
    return set_f1(parsed.speed, truth_speed), set_f1(parsed.path, truth_path)


def action_weight(action: str, weights: Mapping[str, float] | None = None) -> float:
    """The weight of a true action (``weights`` default: ``RewardConfig``'s)."""
    table = RewardConfig().action_weights if weights is None else weights
    if action not in table:
        raise ValueError(f"no action weight for {action!r}")
    return float(table[action])


def diversity_factors(answers_in_group: Sequence[Hashable | None], floor: float) -> list[float]:
    """Diversity factor of each answer among the G completions of one prompt.

    ``factor = max(floor, 1 - n / G)`` where n is the number of completions of the group giving
    the same answer (itself included); an answer shared by a larger fraction earns less. With
    ``floor = 0.8`` this is the paper's ``1 - min(0.2, n / G)`` (Alg. 1 lines 19-22). Answers
    are compared by equality: a (speed set, path set) pair, or one head's action set as
    :func:`group_rewards` uses. ``None`` (no valid answer) is 1.0 and counts only in G.
    """
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"the diversity floor must lie in [0, 1], got {floor}")
    size = len(answers_in_group)
    counts = Counter(answer for answer in answers_in_group if answer is not None)
    return [1.0 if answer is None else max(floor, 1.0 - counts[answer] / size) for answer in answers_in_group]


def group_rewards(
    completions: Sequence[str],
    truths: Sequence[tuple[str, str]],
    group_ids: Sequence[Hashable],
    config: RewardConfig | None = None,
    vocabulary: ActionVocabulary = DEFAULT_VOCABULARY,
    acceptable: Sequence[Set[tuple[str, str]]] | None = None,
) -> list[RewardBreakdown]:
    """Every reward component of each completion; ``truths[i]`` is (speed, path) of its prompt and
    ``acceptable[i]`` (needed when ``safety_coef`` > 0) the plans the simulator judged acceptable there.

    Diversity is computed within each group (completions sharing a group id, wherever they
    sit in the batch) and per head, on the set of actions answered for that head, so the
    result of a completion does not depend on the order of the batch.
    """
    config = RewardConfig() if config is None else config
    if not len(completions) == len(truths) == len(group_ids):
        raise ValueError(
            f"{len(completions)} completions, {len(truths)} truths and {len(group_ids)} group ids: "
            "the lengths must match"
        )
    if acceptable is None and config.safety_coef > 0:
        raise ValueError("safety_coef > 0 needs the acceptable plans of every frame (a data set judged by data judge)")
    if acceptable is not None and len(acceptable) != len(completions):
        raise ValueError(f"{len(acceptable)} sets of acceptable plans for {len(completions)} completions")
    config.check_vocabulary(vocabulary)
    for speed, path in truths:
        _check_truth(speed, path, vocabulary)

    formats = [format_reward(text, config.reasoning) for text in completions]
    parsed = [parse_answer(text, vocabulary) for text in completions]
    safety = [  # a hedge (several actions of a head) is no plan
        1.0 if ok and acceptable is not None and answer.plan in acceptable[i] else 0.0
        for i, (answer, ok) in enumerate(zip(parsed, formats, strict=True))
    ]
    if config.style == "released_code":
        heads = _released_code_heads(parsed, formats, truths, config)
    else:
        heads = _algorithm1_heads(parsed, formats, truths, group_ids, config)
    return [
        _breakdown(ok, speed, path, safe, config)
        for ok, (speed, path), safe in zip(formats, heads, safety, strict=True)
    ]


@dataclass(frozen=True)
class _Head:
    """One head's reward terms: accuracy, weight, diversity and their combination (quality)."""

    accuracy: float = 0.0
    weight: float = 0.0
    diversity: float = 0.0
    quality: float = 0.0


def _breakdown(format_ok: float, speed: _Head, path: _Head, safety: float, config: RewardConfig) -> RewardBreakdown:
    quality = speed.quality + path.quality
    return RewardBreakdown(
        format=format_ok,
        speed_accuracy=speed.accuracy,
        path_accuracy=path.accuracy,
        speed_weight=speed.weight,
        path_weight=path.weight,
        speed_diversity=speed.diversity,
        path_diversity=path.diversity,
        speed_quality=speed.quality,
        path_quality=path.quality,
        quality=quality,
        safety=safety,
        total=config.quality_coef * quality + config.format_coef * format_ok + config.safety_coef * safety,
    )


def _algorithm1_heads(
    parsed: Sequence[Any],
    formats: Sequence[float],
    truths: Sequence[tuple[str, str]],
    group_ids: Sequence[Hashable],
    config: RewardConfig,
) -> list[tuple[_Head, _Head]]:
    """``style: algorithm1``: F1 x the true action's weight x the diversity factor within the group, per head."""
    speed_keys = [p.speed if ok else None for p, ok in zip(parsed, formats, strict=False)]
    path_keys = [p.path if ok else None for p, ok in zip(parsed, formats, strict=False)]

    members: dict[Hashable, list[int]] = defaultdict(list)
    for index, group in enumerate(group_ids):
        members[group].append(index)
    speed_div = [1.0] * len(parsed)
    path_div = [1.0] * len(parsed)
    for indices in members.values():
        for keys, out in ((speed_keys, speed_div), (path_keys, path_div)):
            factors = diversity_factors([keys[i] for i in indices], config.diversity_floor)
            for index, factor in zip(indices, factors, strict=False):
                out[index] = factor

    results = []
    for i, (speed_truth, path_truth) in enumerate(truths):
        heads = []
        for words, truth, diversity in (
            (parsed[i].speed, speed_truth, speed_div[i]),
            (parsed[i].path, path_truth, path_div[i]),
        ):
            accuracy = set_f1(words, truth) if formats[i] else 0.0
            weight = action_weight(truth, config.action_weights)
            heads.append(_Head(accuracy, weight, diversity, accuracy * weight * diversity))
        results.append((heads[0], heads[1]))
    return results


RELEASED_DIVERSITY = 0.4  # the released code's additive diversity bonus / penalty


def _released_code_heads(
    parsed: Sequence[Any], formats: Sequence[float], truths: Sequence[tuple[str, str]], config: RewardConfig
) -> list[tuple[_Head, _Head]]:
    """``style: released_code``: weights of the predicted words, diversity from a running count over the batch."""
    seen: dict[str, set[str]] = {"speed": set(), "path": set()}
    results = []
    for answer, ok, (speed_truth, path_truth) in zip(parsed, formats, truths, strict=True):
        heads = []
        for head, words, truth in (("speed", answer.speed, speed_truth), ("path", answer.path, path_truth)):
            if not ok or not words:
                heads.append(_Head())
                continue
            weight = sum(action_weight(word, config.action_weights) for word in words) / len(words)
            diversity = RELEASED_DIVERSITY if not words & seen[head] else -RELEASED_DIVERSITY
            seen[head] |= set(words)
            accuracy = set_f1(words, truth)
            heads.append(_Head(accuracy, weight, diversity, accuracy * weight + diversity))
        results.append((heads[0], heads[1]))
    return results
