"""Open-loop planning metrics (docs/spec.md#metrics): pure functions, JSON-ready results.

A prediction of ``None`` means the model gave no usable action for that head (no answer,
no action, or several actions hedged): it is always wrong, a false negative for the true
class and a false positive for no class. Every ratio with a zero denominator is 0.0.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from alphadrive_cli.actions import (
    DEFAULT_VOCABULARY,
    ActionVocabulary,
    matches_answer_format,
    parse_answer,
)
from alphadrive_cli.config.schemas import DEFAULT_ACTION_WEIGHTS, RewardConfig
from alphadrive_cli.rewards.planning import group_rewards
from alphadrive_cli.rewards.trl_adapter import component_statistics

Plan = tuple[str, str]
INVALID_COLUMN = "invalid"


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


Z_95 = 1.959964  # the standard normal's 97.5th percentile


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> list[float]:
    """The Wilson score interval of a proportion (95 % by default): ``[low, high]``, ``[0, 1]`` without trials.

    Wilson (1927), the interval Agresti and Coull (1998) recommend for small counts and rates near 0 or 1,
    where the normal approximation gives bounds outside [0, 1]."""
    if trials == 0:
        return [0.0, 1.0]
    rate = successes / trials
    denominator = 1 + z**2 / trials
    centre = (rate + z**2 / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z**2 / (4 * trials**2)) / denominator
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def paired_difference_ci(
    baseline: Sequence[bool],
    candidate: Sequence[bool],
    resamples: int = 2000,
    seed: int = 0,
    units: Sequence[str | None] | None = None,
) -> dict[str, float]:
    """How much more often ``candidate`` is right than ``baseline`` on the same frames, with a 95 % interval.

    A paired percentile bootstrap (Efron and Tibshirani 1993, ch. 13): frames are resampled with replacement,
    both models' outcomes on a frame staying together, so the interval is that of the difference itself and
    is much narrower than two separate intervals would suggest. With ``units`` (each frame's simulator episode,
    say; None: a unit of its own) whole units are resampled instead, a cluster bootstrap for frames that are
    right or wrong together."""
    if len(baseline) != len(candidate):
        raise ValueError(f"{len(baseline)} baseline outcomes but {len(candidate)} candidate outcomes")
    if not baseline:
        return _paired_interval(0.0, np.zeros(1), 0)
    differences = np.asarray(candidate, dtype=float) - np.asarray(baseline, dtype=float)
    units_index = resampling_units(units, len(differences))
    means = resampled_means([differences], units_index, resamples, np.random.default_rng(seed))[:, 0]
    return _paired_interval(differences.mean(), means, len(differences))


def resampling_units(units: Sequence[str | None] | None, frames: int) -> np.ndarray:
    """Each frame's bootstrap unit as an index 0..K-1: the frame itself without ``units``, else its unit's (a
    frame whose unit is None is a unit of its own)."""
    if units is None:
        return np.arange(frames)
    if len(units) != frames:
        raise ValueError(f"{len(units)} units for {frames} frames")
    named = [unit if unit is not None else ("frame", position) for position, unit in enumerate(units)]
    index = {unit: number for number, unit in enumerate(dict.fromkeys(named))}
    return np.array([index[unit] for unit in named])


def resampled_means(
    values: Sequence[np.ndarray], units: np.ndarray, resamples: int, generator: np.random.Generator
) -> np.ndarray:
    """Bootstrap means of each of ``values`` (per-frame numbers of the same frames), one draw of whole
    :func:`resampling_units` with replacement per resample, shared by every array: shape (resamples, arrays)."""
    draws = _unit_draws(units, resamples, generator)
    sizes = _drawn_totals(np.ones(len(units)), units, draws)
    return np.stack([_drawn_totals(value, units, draws) / sizes for value in values], axis=1)


def _unit_draws(units: np.ndarray, resamples: int, generator: np.random.Generator) -> np.ndarray:
    """``resamples`` draws of as many units as there are, with replacement, one row per resample."""
    count = int(units.max()) + 1
    return generator.integers(0, count, size=(resamples, count))


def _drawn_totals(value: np.ndarray, units: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """The sum of ``value`` over the frames of each resample's drawn units, one number per resample."""
    return np.bincount(units, weights=value, minlength=draws.shape[1])[draws].sum(axis=1)


def _paired_interval(difference: float, resampled: np.ndarray, frames: int) -> dict[str, float]:
    """A paired difference and the 95 % percentile interval of its resampled values, rounded as reported."""
    low, high = np.percentile(resampled, [2.5, 97.5])
    return {
        "difference": round(float(difference), 4),
        "low": round(float(low), 4),
        "high": round(float(high), 4),
        "frames": frames,
    }


def paired_f1_change_ci(
    truth: Sequence[str],
    baseline: Sequence[str | None],
    candidate: Sequence[str | None],
    cls: str,
    resamples: int = 2000,
    seed: int = 0,
    units: Sequence[str | None] | None = None,
) -> dict[str, float]:
    """``cls``'s F1 under ``candidate`` minus under ``baseline`` (predictions of the same frames, None: none or
    hedged), with a paired percentile bootstrap 95 % interval: frames (or whole ``units``) are resampled with both
    predictions of a frame together, as :func:`paired_difference_ci` does. A resample without the class, true or
    predicted, scores an F1 of 0, as :func:`per_class_prf` does."""
    if not len(truth) == len(baseline) == len(candidate):
        raise ValueError(f"{len(truth)} truths, {len(baseline)} and {len(candidate)} predictions")
    if not truth:
        return _paired_interval(0.0, np.zeros(1), 0)
    units_index = resampling_units(units, len(truth))
    draws = _unit_draws(units_index, resamples, np.random.default_rng(seed))
    true = np.asarray([label == cls for label in truth])

    def f1(predicted: Sequence[str | None]) -> tuple[float, np.ndarray]:
        said = np.asarray([label == cls for label in predicted])
        twice_tp, wrong = 2 * (true & said), (true ^ said).astype(int)  # false positives and negatives
        drawn_tp = _drawn_totals(twice_tp.astype(float), units_index, draws)
        totals = drawn_tp + _drawn_totals(wrong.astype(float), units_index, draws)
        scores = np.divide(drawn_tp, totals, out=np.zeros(resamples), where=totals > 0)
        return _ratio(twice_tp.sum(), twice_tp.sum() + wrong.sum()), scores

    (before, before_draws), (after, after_draws) = f1(baseline), f1(candidate)
    return _paired_interval(after - before, after_draws - before_draws, len(truth))


def _check_labels(truth: Sequence[str], predicted: Sequence[str | None], classes: Sequence[str]) -> None:
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} truths but {len(predicted)} predictions")
    if len(set(classes)) != len(classes):
        raise ValueError("classes must be distinct")
    known = set(classes)
    for label in truth:
        if label not in known:
            raise ValueError(f"true label {label!r} is not one of the classes {list(classes)}")
    for label in predicted:
        if label is not None and label not in known:
            raise ValueError(f"predicted label {label!r} is not one of the classes {list(classes)}")


def per_class_prf(
    truth: Sequence[str], predicted: Sequence[str | None], classes: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support (number of true examples) of every class."""
    _check_labels(truth, predicted, classes)
    result: dict[str, dict[str, float]] = {}
    for cls in classes:
        tp = sum(1 for t, p in zip(truth, predicted, strict=False) if t == cls and p == cls)
        fp = sum(1 for t, p in zip(truth, predicted, strict=False) if t != cls and p == cls)
        fn = sum(1 for t, p in zip(truth, predicted, strict=False) if t == cls and p != cls)
        result[cls] = {
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "support": tp + fn,
        }
    return result


def macro_f1(truth: Sequence[str], predicted: Sequence[str | None], classes: Sequence[str]) -> float:
    """Mean F1 over the *active* classes: those that occur in ``truth`` or in ``predicted``.

    A class that is neither true nor predicted anywhere has no defined F1; counting it as 0
    would punish the model for the data set's class coverage, counting it as 1 would reward
    it for nothing, so it is left out. A class predicted but never true is kept (F1 0): its
    false positives are errors. No active class (empty input) gives 0.0.
    """
    scores = per_class_prf(truth, predicted, classes)
    active = set(truth) | {p for p in predicted if p is not None}
    f1s = [scores[cls]["f1"] for cls in classes if cls in active]
    return _ratio(sum(f1s), len(f1s))


def confusion_matrix(truth: Sequence[str], predicted: Sequence[str | None], classes: Sequence[str]) -> list[list[int]]:
    """Counts, row = true class, column = predicted class, in ``classes`` order, plus a
    final column ``"invalid"`` for ``None`` predictions."""
    _check_labels(truth, predicted, classes)
    index = {cls: i for i, cls in enumerate(classes)}
    matrix = [[0] * (len(classes) + 1) for _ in classes]
    for t, p in zip(truth, predicted, strict=False):
        matrix[index[t]][len(classes) if p is None else index[p]] += 1
    return matrix


def correct_plans(truth_pairs: Sequence[Plan], predicted_pairs: Sequence[Plan | None]) -> int:
    """How many frames' predicted (speed, path) plan is exactly the true one."""
    if len(truth_pairs) != len(predicted_pairs):
        raise ValueError(f"{len(truth_pairs)} truths but {len(predicted_pairs)} predictions")
    return sum(1 for t, p in zip(truth_pairs, predicted_pairs, strict=True) if p is not None and tuple(p) == tuple(t))


def released_code_correct(text: str, truth: Plan) -> bool:
    """The paper's released evaluation's rule (``eval_tools/qwen2vl_plan_cmd_eval_{sft,grpo}.py`` at
    mr-d-self-driving/AlphaDrive bb4104c): a frame is right when both true action names occur, case-sensitive,
    anywhere in the completion, its reasoning included; a hedge or a mention in the reasoning counts."""
    speed, path = truth
    return speed in text and path in text


def multimodality(samples_per_frame: Sequence[Sequence[Plan | None]], truths: Sequence[Plan]) -> dict[str, float | int]:
    """Multimodality over K samples per frame (docs/spec.md#metrics).

    ``mean_distinct_plans``: mean number of distinct valid (non-``None``) plans per frame;
    ``truth_covered_rate``: fraction of frames whose true plan is among its samples.
    """
    if len(samples_per_frame) != len(truths):
        raise ValueError(f"{len(samples_per_frame)} frames of samples but {len(truths)} truths")
    distinct = [{tuple(p) for p in samples if p is not None} for samples in samples_per_frame]
    return {
        "frames": len(truths),
        "samples": sum(len(samples) for samples in samples_per_frame),
        "mean_distinct_plans": _ratio(sum(len(plans) for plans in distinct), len(truths)),
        "truth_covered_rate": _ratio(
            sum(1 for plans, truth in zip(distinct, truths, strict=False) if tuple(truth) in plans), len(truths)
        ),
    }


def reward_signal(
    samples_per_frame: Sequence[Sequence[str]], truths: Sequence[Plan], vocabulary: ActionVocabulary
) -> dict[str, Any]:
    """What GRPO would learn from if each frame's sampled completions were one group of its rollout.

    Per reward format (``reasoning``: ``<think>…</think><answer>…</answer>``; ``answer_only``:
    ``<answer>…</answer>``): ``format_rate``, the share of samples the format reward pays; ``mean_reward``, the
    mean total reward; ``groups_with_signal_rate``, the share of frames whose rewards are not all equal, the only
    groups with a non-zero advantage (TRL's ``frac_reward_zero_std`` is one minus it; 0 means GRPO cannot learn;
    a frame with a single sample never has signal). Rewards are the default ``RewardConfig``'s, weight 1 for an
    action it has no weight for.
    """
    if len(samples_per_frame) != len(truths):
        raise ValueError(f"{len(samples_per_frame)} frames of samples but {len(truths)} truths")
    texts = [text for samples in samples_per_frame for text in samples]
    group_ids = [frame for frame, samples in enumerate(samples_per_frame) for _ in samples]
    group_truths = [tuple(truths[frame]) for frame in group_ids]
    weights = {action: DEFAULT_ACTION_WEIGHTS.get(action, 1.0) for action in vocabulary.speed + vocabulary.path}
    result: dict[str, Any] = {"frames": len(truths), "samples": len(texts)}
    for name, reasoning in (("reasoning", True), ("answer_only", False)):
        config = RewardConfig(reasoning=reasoning, action_weights=weights)
        if not texts:
            result[name] = {"format_rate": 0.0, "mean_reward": 0.0, "groups_with_signal_rate": 0.0}
            continue
        stats = component_statistics(group_rewards(texts, group_truths, group_ids, config, vocabulary), group_ids)
        result[name] = {
            "format_rate": stats["planning/format/mean"],
            "mean_reward": stats["planning/total/mean"],
            "groups_with_signal_rate": 1.0 - stats["planning/total/zero_std_groups"],
        }
    return result


def judged_plans(
    samples_per_frame: Sequence[Sequence[Plan | None]], acceptable_per_frame: Sequence[frozenset[Plan]]
) -> dict[str, Any]:
    """Answers against the simulator's verdicts (docs/spec.md#metrics): the share of frames whose first answer
    is an acceptable plan, the unacceptable ones by class, and with K > 1 samples per frame the share of samples
    acceptable, of frames with some acceptable sample (best of K) and with at least two distinct acceptable
    plans (multimodal planning, measured). An unparsed answer, or a plan the road does not offer, is unacceptable."""
    if len(samples_per_frame) != len(acceptable_per_frame):
        raise ValueError(f"{len(samples_per_frame)} frames of samples but {len(acceptable_per_frame)} verdicts")
    frames = len(acceptable_per_frame)
    firsts = [samples[0] if samples else None for samples in samples_per_frame]
    bad = [plan for plan, ok in zip(firsts, acceptable_per_frame, strict=True) if plan is None or tuple(plan) not in ok]
    result: dict[str, Any] = {
        "frames": frames,
        "acceptable_rate": _ratio(frames - len(bad), frames),
        "unacceptable_by_speed": dict(Counter("unparsed" if plan is None else plan[0] for plan in bad)),
        "unacceptable_by_path": dict(Counter("unparsed" if plan is None else plan[1] for plan in bad)),
    }
    if any(len(samples) > 1 for samples in samples_per_frame):
        good = [
            [tuple(plan) for plan in samples if plan is not None and tuple(plan) in ok]
            for samples, ok in zip(samples_per_frame, acceptable_per_frame, strict=True)
        ]
        distinct = [set(plans) for plans in good]
        result |= {
            "samples": sum(len(samples) for samples in samples_per_frame),
            "sample_acceptable_rate": _ratio(sum(map(len, good)), sum(len(samples) for samples in samples_per_frame)),
            "best_of_k_acceptable_rate": _ratio(sum(1 for plans in distinct if plans), frames),
            "two_acceptable_plans_rate": _ratio(sum(1 for plans in distinct if len(plans) >= 2), frames),
            "mean_distinct_acceptable_plans": _ratio(sum(map(len, distinct)), frames),
        }
    return result


def single_action(actions: frozenset[str]) -> str | None:
    """A head's prediction: its one action, or None when the answer gave none or hedged with several."""
    return next(iter(actions)) if len(actions) == 1 else None


def _head_metrics(truth: Sequence[str], predicted: Sequence[str | None], classes: Sequence[str]) -> dict[str, Any]:
    return {
        "classes": list(classes),
        "per_class": per_class_prf(truth, predicted, classes),
        "macro_f1": macro_f1(truth, predicted, classes),
        "confusion_matrix": confusion_matrix(truth, predicted, classes),
        "confusion_columns": [*classes, INVALID_COLUMN],
    }


def open_loop_metrics(
    truths: Sequence[Plan],
    completions: Sequence[str],
    vocabulary: ActionVocabulary = DEFAULT_VOCABULARY,
) -> dict[str, Any]:
    """Every open-loop metric of ``completions`` against their true (speed, path) plans.

    Each completion is read with :func:`actions.parse_answer`. Per head, the prediction is the
    one action found for that head; none or several (hedging) is ``None``, i.e. wrong. The
    plan is ``parsed.plan`` (both heads single), else ``None``. ``released_code_accuracy`` scores the same
    completions by the paper's released evaluation (:func:`released_code_correct`). Answers are scored whether or
    not the completion has the exact reward format; ``format_valid_rate`` reports that apart, and
    ``answer_only_format_rate`` the answer-only format (``<answer>…</answer>`` alone, what a model trained
    without reasoning is rewarded for).
    """
    if len(truths) != len(completions):
        raise ValueError(f"{len(truths)} truths but {len(completions)} completions")
    for speed, path in truths:
        if speed not in vocabulary.speed:
            raise ValueError(f"true speed action {speed!r} is not in the vocabulary")
        if path not in vocabulary.path:
            raise ValueError(f"true path action {path!r} is not in the vocabulary")
    parsed = [parse_answer(text, vocabulary) for text in completions]
    plans = [answer.plan for answer in parsed]
    speed_truth = [speed for speed, _ in truths]
    path_truth = [path for _, path in truths]
    format_valid = sum(1 for text in completions if matches_answer_format(text))
    answer_only = sum(1 for text in completions if matches_answer_format(text, reasoning=False))
    correct = correct_plans(truths, plans)
    released = sum(1 for t, text in zip(truths, completions, strict=True) if released_code_correct(text, t))
    failures = sum(1 for p in plans if p is None)
    return {
        "planning_accuracy": _ratio(correct, len(truths)),
        "released_code_accuracy": _ratio(released, len(truths)),
        "format_valid_rate": _ratio(format_valid, len(completions)),
        "answer_only_format_rate": _ratio(answer_only, len(completions)),
        "parse_failures": failures,
        "speed": _head_metrics(speed_truth, [single_action(a.speed) for a in parsed], vocabulary.speed),
        "path": _head_metrics(path_truth, [single_action(a.path) for a in parsed], vocabulary.path),
        "counts": {
            "frames": len(truths),
            "planning_correct": correct,
            "released_code_correct": released,
            "format_valid": format_valid,
            "answer_only_format": answer_only,
            "parse_failures": failures,
            "no_answer_tag": sum(1 for a in parsed if not a.has_answer),
            "hedged": sum(1 for a in parsed if len(a.speed) > 1 or len(a.path) > 1),
            "incomplete": sum(1 for a in parsed if a.has_answer and (not a.speed or not a.path)),
        },
    }


UNNAMED_SCENARIO = "none"  # the scenario group of a frame without one, in a split where other frames have one


def frame_scenario(source: Mapping[str, Any]) -> str | None:
    """The simulator scenario a record's ``source`` names (``data sim`` frames), else None."""
    scenario = source.get("scenario")
    return scenario if isinstance(scenario, str) else None


def frame_episode(source: Mapping[str, Any]) -> str | None:
    """The simulator episode a record's ``source`` names (``data sim`` frames), as text, else None."""
    episode = source.get("episode")
    return str(episode) if isinstance(episode, int | str) and not isinstance(episode, bool) else None


def accuracy_by_group(
    groups: Sequence[str],
    truths: Sequence[Plan],
    completions: Sequence[str],
    vocabulary: ActionVocabulary = DEFAULT_VOCABULARY,
) -> dict[str, dict[str, float | int]]:
    """Per group of frames (e.g. each frame's simulator scenario), in name order: its frames and their planning,
    speed and path accuracy, read as :func:`open_loop_metrics` reads them (a hedged or missing head is wrong)."""
    if not len(groups) == len(truths) == len(completions):
        raise ValueError(f"{len(groups)} groups, {len(truths)} truths and {len(completions)} completions")
    tallies: dict[str, Counter[str]] = {}
    for group, (speed, path), text in zip(groups, truths, completions, strict=True):
        parsed = parse_answer(text, vocabulary)
        speed_right, path_right = single_action(parsed.speed) == speed, single_action(parsed.path) == path
        tally = tallies.setdefault(group, Counter())
        tally.update(frames=1, speed=speed_right, path=path_right, plan=speed_right and path_right)
    return {
        group: {
            "frames": tally["frames"],
            "planning_accuracy": _ratio(tally["plan"], tally["frames"]),
            "speed_accuracy": _ratio(tally["speed"], tally["frames"]),
            "path_accuracy": _ratio(tally["path"], tally["frames"]),
        }
        for group, tally in sorted(tallies.items())
    }


CLOSED_LOOP_METRICS = (
    "collision_rate",
    "off_road_rate",
    "route_completion_rate",
    "mean_speed_mps",
    "distance_m",
    "parse_failure_rate",
)


def _closed_loop_summary(episodes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    count = len(episodes)
    decisions = sum(int(e["decisions"]) for e in episodes)
    collisions = sum(1 for e in episodes if e["collided"])
    return {
        "episodes": count,
        "collision_rate": _ratio(collisions, count),
        "collision_rate_ci95": wilson_interval(collisions, count),
        "off_road_rate": _ratio(sum(1 for e in episodes if e["off_road"]), count),
        "route_completion_rate": _ratio(sum(1 for e in episodes if e["route_completed"]), count),
        "mean_speed_mps": round(sum(float(e["mean_speed_mps"]) for e in episodes) / count, 3) if count else 0.0,
        "distance_m": round(sum(float(e["distance_m"]) for e in episodes) / count, 2) if count else 0.0,
        "decisions": decisions,
        "parse_failures": sum(int(e["parse_failures"]) for e in episodes),
        "parse_failure_rate": _ratio(sum(int(e["parse_failures"]) for e in episodes), decisions),
    }


def closed_loop_metrics(episodes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per driver: the summary over all its episodes (``overall``) and per scenario.

    Each episode is a mapping with ``driver``, ``scenario``, ``collided``, ``off_road``,
    ``route_completed``, ``mean_speed_mps``, ``distance_m`` (per episode), ``decisions`` and
    ``parse_failures``; rates are fractions of episodes (parse failures: of decisions), speed and
    distance are means over episodes; ``collision_rate_ci95`` is the collision rate's 95 % Wilson interval.
    """
    result: dict[str, Any] = {}
    for driver in dict.fromkeys(e["driver"] for e in episodes):
        mine = [e for e in episodes if e["driver"] == driver]
        scenarios = dict.fromkeys(e["scenario"] for e in mine)
        result[driver] = {
            "overall": _closed_loop_summary(mine),
            "scenarios": {s: _closed_loop_summary([e for e in mine if e["scenario"] == s]) for s in scenarios},
        }
    return result
