"""Tests for alphadrive_cli.rewards.planning: hand-computed rewards and hypothesis properties."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from alphadrive_cli.actions import DEFAULT_VOCABULARY, ActionVocabulary
from alphadrive_cli.rewards.planning import (
    MIN_DIVERSITY_FLOOR,
    RewardBreakdown,
    RewardConfig,
    action_weight,
    diversity_factors,
    format_reward,
    group_rewards,
    planning_accuracy,
    set_f1,
)

SPEEDS = DEFAULT_VOCABULARY.speed
PATHS = DEFAULT_VOCABULARY.path
PROPERTY = settings(max_examples=60, deadline=None)
DEFAULT = RewardConfig()


def completion(*actions: str, think: str = "reasoning") -> str:
    return f"<think>{think}</think><answer>{', '.join(actions)}</answer>"


# --- format reward ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>red light</think><answer>STOP, STRAIGHT</answer>", 1.0),
        ("  <think>a\nb</think>\n<answer>stop straight</answer>\n", 1.0),  # outer whitespace stripped
        ("<answer>STOP, STRAIGHT</answer>", 0.0),  # no <think>
        ("<think>x</think><answer>STOP, STRAIGHT</answer> done", 0.0),  # text after </answer>
        ("Sure! <think>x</think><answer>STOP, STRAIGHT</answer>", 0.0),  # text before <think>
        ("<think>x</think><answer>STOP, STRAIGHT", 0.0),  # unclosed answer
    ],
)
def test_format_reward(text: str, expected: float) -> None:
    assert format_reward(text) == expected


# --- planning accuracy ------------------------------------------------------------------------


def test_planning_accuracy_hand_cases() -> None:
    # exact: P = R = 1 on both heads
    assert planning_accuracy(completion("STOP", "STRAIGHT"), "STOP", "STRAIGHT") == (1.0, 1.0)
    # speed hedged over 2 (P 1/2, R 1): F1 = 2 * 1/2 * 1 / (1/2 + 1) = 2/3; path exact
    hedged_speed = completion("STOP", "KEEP", "STRAIGHT")
    assert planning_accuracy(hedged_speed, "STOP", "STRAIGHT") == pytest.approx((2 / 3, 1.0))
    # every speed action (P 1/4, R 1): F1 = 2/5; path wrong: 0
    assert planning_accuracy(completion(*SPEEDS, "LEFT_TURN"), "STOP", "STRAIGHT") == pytest.approx((0.4, 0.0))
    # wrong speed, path hedged over 3 including the truth: F1 = 2/4
    hedged_path = completion("KEEP", "STRAIGHT", "LEFT_TURN", "RIGHT_TURN")
    assert planning_accuracy(hedged_path, "STOP", "STRAIGHT") == pytest.approx((0.0, 0.5))
    # empty answer: 0
    assert planning_accuracy(completion(), "STOP", "STRAIGHT") == (0.0, 0.0)


def test_format_zero_means_no_planning_reward() -> None:
    right_but_unformatted = "<answer>STOP, STRAIGHT</answer>"
    assert planning_accuracy(right_but_unformatted, "STOP", "STRAIGHT") == (0.0, 0.0)
    (result,) = group_rewards([right_but_unformatted], [("STOP", "STRAIGHT")], [0], DEFAULT)
    assert result.format == 0.0 and result.quality == 0.0 and result.total == 0.0


def test_answer_only_format_rewards_answers_without_reasoning() -> None:
    """rewards.reasoning false (grpo --no-reasoning): <answer>…</answer> alone is the format, and a reasoning
    block is then as wrong as text around the answer."""
    assert format_reward("<answer>STOP, STRAIGHT</answer>", reasoning=False) == 1.0
    assert format_reward(" <answer>stop straight</answer>\n", reasoning=False) == 1.0
    assert format_reward(completion("STOP", "STRAIGHT"), reasoning=False) == 0.0
    assert format_reward("Sure: <answer>STOP, STRAIGHT</answer>", reasoning=False) == 0.0
    answer_only = RewardConfig(reasoning=False)
    right, hedged, reasoned = group_rewards(
        ["<answer>STOP, STRAIGHT</answer>", "<answer>STOP, KEEP, STRAIGHT</answer>", completion("STOP", "STRAIGHT")],
        [("STOP", "STRAIGHT")] * 3,
        [0, 0, 0],
        answer_only,
    )
    assert (right.format, right.speed_accuracy, right.path_accuracy) == (1.0, 1.0, 1.0)
    assert hedged.speed_accuracy == pytest.approx(2 / 3) and hedged.path_accuracy == 1.0
    assert reasoned.format == 0.0 and reasoned.total == 0.0


def test_planning_accuracy_rejects_unknown_truth() -> None:
    with pytest.raises(ValueError, match="'FLY'"):
        planning_accuracy(completion("STOP", "STRAIGHT"), "FLY", "STRAIGHT")


# --- action weights ---------------------------------------------------------------------------


def test_default_weights_favour_safety_critical_actions() -> None:
    for critical in ("STOP", "DECELERATE"):
        assert action_weight(critical) > action_weight("KEEP")
    for critical in ("LEFT_TURN", "RIGHT_TURN"):
        assert action_weight(critical) > action_weight("STRAIGHT")
    assert action_weight("STOP") == 1.5 and action_weight("KEEP") == 1.0  # RewardConfig's defaults
    assert action_weight("STOP", {"STOP": 3.0}) == 3.0
    with pytest.raises(ValueError, match="'FLY'"):
        action_weight("FLY")


def test_default_weights_cover_the_default_vocabulary() -> None:
    assert set(DEFAULT.action_weights) == set(SPEEDS + PATHS)
    assert DEFAULT.diversity_floor == 0.8  # the paper's "up to 20% reduction" (Alg. 1 line 22)
    DEFAULT.check_vocabulary(DEFAULT_VOCABULARY)


def test_weights_must_cover_the_vocabulary() -> None:
    weights = dict(DEFAULT.action_weights)
    del weights["LEFT_CHANGE"]
    config = DEFAULT.model_copy(update={"action_weights": weights})
    with pytest.raises(ValueError, match="no action weight for 'LEFT_CHANGE'"):
        config.check_vocabulary(DEFAULT_VOCABULARY)
    with pytest.raises(ValueError, match="no action weight for 'LEFT_CHANGE'"):
        group_rewards([completion("KEEP", "STRAIGHT")], [("KEEP", "STRAIGHT")], [0], config)
    # a vocabulary with an action the default weights do not know
    other = ActionVocabulary(speed=("KEEP", "STOP", "CREEP"), path=("STRAIGHT",))
    with pytest.raises(ValueError, match="no action weight for 'CREEP'"):
        group_rewards([completion("KEEP", "STRAIGHT")], [("KEEP", "STRAIGHT")], [0], DEFAULT, other)


def test_config_validation(tmp_path: Path) -> None:
    base = DEFAULT.model_dump()
    for bad in (
        {"action_weights": {**base["action_weights"], "STOP": 0.0}},
        {"action_weights": {**base["action_weights"], "STOP": float("nan")}},
        {"diversity_floor": 0.6},  # below 2/3: a hedge could out-earn the exact answer
        {"diversity_floor": 1.1},
        {"format_coef": -1.0},
        {"unknown_key": 1},
    ):
        with pytest.raises(ValidationError):
            RewardConfig.model_validate({**base, **bad})
    assert RewardConfig.model_validate({**base, "diversity_floor": 0.9}).diversity_floor == 0.9


# --- diversity --------------------------------------------------------------------------------


def test_diversity_factors_hand_case() -> None:
    a, b, c = ("STOP", "STRAIGHT"), ("KEEP", "STRAIGHT"), ("STOP", "LEFT_TURN")
    group = [a] * 5 + [b] * 2 + [c]  # G = 8
    # shares 5/8, 2/8, 1/8 -> 1 - share = 0.375, 0.75, 0.875
    assert diversity_factors(group, 0.0) == pytest.approx([0.375] * 5 + [0.75] * 2 + [0.875])
    # the paper's floor: 1 - min(0.2, share)
    assert diversity_factors(group, 0.8) == pytest.approx([0.8] * 5 + [0.8] * 2 + [0.875])
    # None: factor 1.0, counted in G only (A's share 1/2)
    assert diversity_factors([a, None], 0.0) == [0.5, 1.0]
    assert diversity_factors([], 0.8) == []
    with pytest.raises(ValueError):
        diversity_factors([a], 1.5)


@PROPERTY
@given(st.floats(0.0, 1.0))
def test_floor_point_eight_is_the_papers_rule(share: float) -> None:
    assert max(0.8, 1.0 - share) == pytest.approx(1.0 - min(0.2, share))


@PROPERTY
@given(st.lists(st.sampled_from(["A", "B", "C", None]), max_size=12), st.floats(0.0, 1.0))
def test_diversity_factor_falls_with_share(group: list, floor: float) -> None:
    factors = diversity_factors(group, floor)
    counts = {answer: group.count(answer) for answer in group}
    for answer, factor in zip(group, factors, strict=False):
        assert floor <= factor <= 1.0
        if answer is None:
            assert factor == 1.0
    for i, j in ((i, j) for i in range(len(group)) for j in range(len(group))):
        if group[i] is not None and group[j] is not None and counts[group[i]] > counts[group[j]]:
            assert factors[i] <= factors[j]


def test_right_times_min_factor_beats_wrong_times_max_factor() -> None:
    for action in SPEEDS + PATHS:
        weight = action_weight(action)
        right = set_f1({action}, action) * weight * MIN_DIVERSITY_FLOOR
        wrong = max(set_f1({other}, action) for other in SPEEDS + PATHS if other != action) * weight * 1.0
        assert right > wrong == 0.0


# --- group rewards ----------------------------------------------------------------------------


def test_group_rewards_hand_case() -> None:
    config = DEFAULT.model_copy(update={"diversity_floor": 0.7, "format_coef": 0.5, "quality_coef": 2.0})
    batch = [
        ("a", completion("STOP", "STRAIGHT")),
        ("b", completion("KEEP", "LEFT_TURN")),
        ("a", completion("STOP", "STRAIGHT")),
        ("a", completion("DECELERATE", "STRAIGHT")),
        ("b", completion("KEEP", "LEFT_TURN")),
        ("a", completion("STOP", "KEEP", "LEFT_TURN")),
        ("a", "<answer>STOP, STRAIGHT</answer>"),
    ]
    truth = {"a": ("STOP", "STRAIGHT"), "b": ("KEEP", "LEFT_TURN")}
    results = group_rewards([c for _, c in batch], [truth[g] for g, _ in batch], [g for g, _ in batch], config)
    # Group a (G = 5, truth STOP 1.5 / STRAIGHT 1.0), floor 0.7:
    #   speed answers {STOP} x2 (share 2/5: 0.6 -> 0.7), {DECELERATE} (0.8), {STOP, KEEP} (0.8), None (1.0)
    #   path answers {STRAIGHT} x3 (share 3/5: 0.4 -> 0.7), {LEFT_TURN} (0.8), None (1.0)
    #   exact:     speed 1 * 1.5 * 0.7 = 1.05, path 1 * 1.0 * 0.7 = 0.7; quality 1.75; total 2*1.75 + 0.5 = 4.0
    #   DECEL:     speed 0, path 0.7; quality 0.7; total 1.4 + 0.5 = 1.9
    #   hedge:     speed 2/3 * 1.5 * 0.8 = 0.8, path 0; quality 0.8; total 1.6 + 0.5 = 2.1
    #   no format: everything 0
    # Group b (G = 2, truth KEEP 1.0 / LEFT_TURN 1.5): both exact, share 1 -> floor 0.7
    #   quality 1.0 * 0.7 + 1.5 * 0.7 = 1.75; total 4.0
    # fields: format, accuracy (speed, path), weight (speed, path), diversity (speed, path), head quality
    # (speed, path), quality, safety (off here), total
    exact_a = RewardBreakdown(1.0, 1.0, 1.0, 1.5, 1.0, 0.7, 0.7, 1.05, 0.7, 1.75, 0.0, 4.0)
    exact_b = RewardBreakdown(1.0, 1.0, 1.0, 1.0, 1.5, 0.7, 0.7, 0.7, 1.05, 1.75, 0.0, 4.0)
    expected = [
        exact_a,
        exact_b,
        exact_a,
        RewardBreakdown(1.0, 0.0, 1.0, 1.5, 1.0, 0.8, 0.7, 0.0, 0.7, 0.7, 0.0, 1.9),
        exact_b,
        RewardBreakdown(1.0, 2 / 3, 0.0, 1.5, 1.0, 0.8, 0.8, 0.8, 0.0, 0.8, 0.0, 2.1),
        RewardBreakdown(0.0, 0.0, 0.0, 1.5, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    ]
    for got, want in zip(results, expected, strict=True):
        assert got.as_dict() == pytest.approx(want.as_dict())


def test_released_code_style_hand_case() -> None:
    """The released code: accuracy x mean weight of the predicted words + 0.4 if every answered word is new in the
    batch so far (else - 0.4), per head; total = speed + path + format with unit coefficients."""
    config = DEFAULT.model_copy(update={"style": "released_code"})
    batch = [
        completion("STOP", "STRAIGHT"),  # speed STOP new, path STRAIGHT new
        completion("STOP", "LEFT_TURN"),  # STOP seen, LEFT_TURN new
        completion("KEEP", "STOP", "STRAIGHT"),  # hedged speed: STOP seen; STRAIGHT seen
        "<answer>STOP, STRAIGHT</answer>",  # no format: no planning reward, counts nothing
        completion("DECELERATE", "RIGHT_TURN"),  # both new
    ]
    truth = [("STOP", "STRAIGHT")] * 5
    results = group_rewards(batch, truth, ["a"] * 5, config)
    w = DEFAULT.action_weights
    speed_hedge = 2 / 3 * (w["KEEP"] + w["STOP"]) / 2 - 0.4
    expected_totals = [
        (1 * w["STOP"] + 0.4) + (1 * w["STRAIGHT"] + 0.4) + 1,
        (1 * w["STOP"] - 0.4) + (0 * w["LEFT_TURN"] + 0.4) + 1,
        speed_hedge + (1 * w["STRAIGHT"] - 0.4) + 1,
        0.0,
        (0 + 0.4) + (0 + 0.4) + 1,
    ]
    assert [r.total for r in results] == pytest.approx(expected_totals)
    assert results[2].speed_weight == pytest.approx((w["KEEP"] + w["STOP"]) / 2)  # the predicted words' weights


def test_safety_reward_pays_any_acceptable_plan() -> None:
    """safety: 1 for a well-formatted single plan among the frame's acceptable plans, whatever the label says;
    0 for an unacceptable plan, a hedge, a plan the road does not offer and a completion that fails the format.
    The label's planning terms are unchanged, and the total adds safety_coef x safety."""
    config = DEFAULT.model_copy(update={"safety_coef": 2.0})
    acceptable = frozenset({("KEEP", "STRAIGHT"), ("DECELERATE", "STRAIGHT"), ("KEEP", "LEFT_CHANGE")})
    batch = [
        completion("KEEP", "STRAIGHT"),  # the label, acceptable
        completion("KEEP", "LEFT_CHANGE"),  # not the label, acceptable
        completion("ACCELERATE", "STRAIGHT"),  # judged unacceptable (absent from the set)
        completion("KEEP", "DECELERATE", "STRAIGHT"),  # a hedge is no plan
        "<answer>KEEP, STRAIGHT</answer>",  # no format
        completion("KEEP", "RIGHT_CHANGE"),  # no lane there: never offered
    ]
    truths = [("KEEP", "STRAIGHT")] * len(batch)
    plain = group_rewards(batch, truths, ["a"] * len(batch), DEFAULT, acceptable=[acceptable] * len(batch))
    safe = group_rewards(batch, truths, ["a"] * len(batch), config, acceptable=[acceptable] * len(batch))
    assert [r.safety for r in safe] == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert [r.safety for r in plain] == [r.safety for r in safe]  # computed (and logged) even when it weighs 0
    for off, on in zip(plain, safe, strict=True):
        assert on.quality == off.quality
        assert on.total == pytest.approx(off.total + 2.0 * on.safety)
    # the non-label acceptable plan now earns more than the unacceptable one wrong on the same head
    assert safe[1].total > safe[2].total


def test_safety_reward_needs_the_verdicts() -> None:
    config = DEFAULT.model_copy(update={"safety_coef": 1.0})
    with pytest.raises(ValueError, match="acceptable plans of every frame"):
        group_rewards([completion("KEEP", "STRAIGHT")], [("KEEP", "STRAIGHT")], [0], config)
    with pytest.raises(ValueError, match="2 sets of acceptable plans for 1"):
        group_rewards([completion("KEEP", "STRAIGHT")], [("KEEP", "STRAIGHT")], [0], config, acceptable=[set(), set()])
    released = RewardConfig(style="released_code", safety_coef=1.0)
    (result,) = group_rewards(
        [completion("STOP", "STRAIGHT")], [("KEEP", "STRAIGHT")], [0], released, acceptable=[{("STOP", "STRAIGHT")}]
    )
    assert result.safety == 1.0 and result.total == pytest.approx(result.quality + 1.0 + 1.0)


def test_group_rewards_checks_lengths_and_truths() -> None:
    with pytest.raises(ValueError, match="lengths must match"):
        group_rewards([completion("KEEP", "STRAIGHT")], [("KEEP", "STRAIGHT")], [0, 1], DEFAULT)
    with pytest.raises(ValueError, match="'FLY'"):
        group_rewards([completion("KEEP", "STRAIGHT")], [("KEEP", "FLY")], [0], DEFAULT)


# --- properties -------------------------------------------------------------------------------

action_sets = st.tuples(
    st.lists(st.sampled_from(SPEEDS), unique=True, max_size=4),
    st.lists(st.sampled_from(PATHS), unique=True, max_size=5),
)
# One completion: an answer (speed list, path list) and whether it keeps the exact format.
answers = st.tuples(action_sets, st.booleans())
configs = st.builds(
    lambda floor, fc, qc, weights: RewardConfig(
        format_coef=fc,
        quality_coef=qc,
        diversity_floor=floor,
        action_weights=dict(zip(SPEEDS + PATHS, weights, strict=False)),
    ),
    st.floats(MIN_DIVERSITY_FLOOR, 1.0),
    st.floats(0.0, 5.0),
    st.floats(0.01, 5.0),
    st.lists(st.floats(0.01, 10.0), min_size=9, max_size=9),
)


def render(answer: tuple, formatted: bool, rnd: random.Random) -> str:
    (speeds, paths) = answer
    actions = list(speeds) + list(paths)
    rnd.shuffle(actions)
    text = ", ".join(actions)
    return completion(*actions) if formatted else f"<answer>{text}</answer>"


@PROPERTY
@given(st.lists(st.sampled_from(SPEEDS), unique=True, max_size=4), st.sampled_from(SPEEDS))
def test_f1_in_unit_interval_and_hedging_never_beats_exact(predicted: list, truth: str) -> None:
    score = set_f1(set(predicted), truth)
    assert 0.0 <= score <= 1.0
    assert (score == 1.0) == (set(predicted) == {truth})
    assert score <= set_f1({truth}, truth)
    if truth in predicted and len(predicted) > 1:
        assert score <= 2 / 3


@PROPERTY
@given(action_sets, st.sampled_from(SPEEDS), st.sampled_from(PATHS), st.randoms(use_true_random=False))
def test_planning_accuracy_hedge_never_beats_exact(answer: tuple, speed: str, path: str, rnd: random.Random) -> None:
    text = render(answer, True, rnd)
    got = planning_accuracy(text, speed, path)
    assert all(0.0 <= value <= 1.0 for value in got)
    assert got <= (1.0, 1.0)
    assert got[0] < 1.0 or set(answer[0]) == {speed}
    assert got[1] < 1.0 or set(answer[1]) == {path}


@PROPERTY
@given(action_sets, st.sampled_from(SPEEDS), st.sampled_from(PATHS), st.randoms(use_true_random=False))
def test_format_zero_always_zeroes_planning(answer: tuple, speed: str, path: str, rnd: random.Random) -> None:
    text = render(answer, False, rnd)
    assert format_reward(text) == 0.0
    assert planning_accuracy(text, speed, path) == (0.0, 0.0)
    (result,) = group_rewards([text], [(speed, path)], [0], DEFAULT)
    assert result.quality == 0.0 and result.total == 0.0


@st.composite
def head_answer(draw: st.DrawFn, actions: tuple[str, ...], truth: str) -> list[str]:
    """An answer for one head relative to its truth: exact, a hedge that includes it, or other."""
    others = [a for a in actions if a != truth]
    kind = draw(st.sampled_from(["exact", "hedge", "other"]))
    if kind == "exact":
        return [truth]
    if kind == "hedge":
        return [truth, *draw(st.lists(st.sampled_from(others), unique=True, min_size=1))]
    return draw(st.lists(st.sampled_from(others), unique=True))


@st.composite
def groups(draw: st.DrawFn) -> tuple[str, str, list]:
    """A truth and one prompt's group: some exact answers plus near-misses of every kind."""
    speed, path = draw(st.sampled_from(SPEEDS)), draw(st.sampled_from(PATHS))
    exact = (([speed], [path]), True)
    others = draw(
        st.lists(
            st.tuples(
                st.tuples(head_answer(SPEEDS, speed), head_answer(PATHS, path)),
                st.sampled_from([True, True, True, False]),  # mostly well formatted
            ),
            max_size=10,
        )
    )
    return speed, path, [exact] * draw(st.integers(1, 6)) + others


@settings(max_examples=150, deadline=None)
@given(groups(), configs, st.randoms(use_true_random=False))
def test_exact_answer_out_earns_every_other_answer_in_its_group(
    drawn: tuple, config: RewardConfig, rnd: random.Random
) -> None:
    speed, path, group = drawn
    rnd.shuffle(group)
    texts = [render(answer, formatted, rnd) for answer, formatted in group]
    results = group_rewards(texts, [(speed, path)] * len(group), ["g"] * len(group), config)
    is_exact = [formatted and set(s) == {speed} and set(p) == {path} for (s, p), formatted in group]
    assert any(is_exact)
    for i, result in enumerate(results):
        if not is_exact[i]:
            continue
        for other in results:
            assert result.total >= other.total
            assert result.quality >= other.quality
            # per head too: a right head earns at least as much as a hedged or wrong one
            for head in ("speed", "path"):
                mine, theirs = (
                    getattr(r, f"{head}_accuracy") * getattr(r, f"{head}_weight") * getattr(r, f"{head}_diversity")
                    for r in (result, other)
                )
                assert mine >= theirs
            if other.speed_accuracy == 0.0 and other.path_accuracy == 0.0:  # wrong on both heads
                assert result.quality > other.quality and result.total > other.total


@PROPERTY
@given(
    st.lists(st.tuples(answers, st.integers(0, 3)), min_size=1, max_size=16),
    st.randoms(use_true_random=False),
)
def test_group_order_invariance(rows: list, rnd: random.Random) -> None:
    group_truth = {g: (SPEEDS[g % 4], PATHS[g % 5]) for g in range(4)}
    texts = [render(answer, formatted, rnd) for (answer, formatted), _ in rows]
    ids = [f"prompt-{g}" for _, g in rows]
    truths = [group_truth[g] for _, g in rows]
    before = group_rewards(texts, truths, ids, DEFAULT)
    order = list(range(len(rows)))
    rnd.shuffle(order)
    after = group_rewards([texts[i] for i in order], [truths[i] for i in order], [ids[i] for i in order], DEFAULT)
    assert [after[k] for k in sorted(range(len(order)), key=order.__getitem__)] == before


def test_diversity_is_per_group_not_per_batch() -> None:
    keep = completion("KEEP", "STRAIGHT")
    texts = [
        keep,
        keep,
        keep,
        completion("STOP", "LEFT_TURN"),
        completion("STOP", "RIGHT_TURN"),
        completion("DECELERATE", "LEFT_CHANGE"),
    ]
    config = DEFAULT.model_copy(update={"diversity_floor": 2 / 3})
    results = group_rewards(texts, [("KEEP", "STRAIGHT")] * 6, ["a", "a", "b", "b", "b", "b"], config)
    # group a: KEEP shared by 2/2 -> 1 - 1 = 0 -> floor 2/3
    # group b: KEEP by 1/4 -> 0.75 (pooled over the batch it would be 3/6 -> floor 2/3)
    #          STOP by 2/4 -> 0.5 -> floor 2/3; DECELERATE by 1/4 -> 0.75
    assert [r.speed_diversity for r in results] == pytest.approx([2 / 3, 2 / 3, 0.75, 2 / 3, 2 / 3, 0.75])
    assert [r.path_diversity for r in results] == pytest.approx([2 / 3, 2 / 3, 0.75, 0.75, 0.75, 0.75])
