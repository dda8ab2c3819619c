"""Tests for alphadrive_cli.evaluation.metrics: a hand-computed case and hypothesis properties."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphadrive_cli.actions import DEFAULT_VOCABULARY, ActionVocabulary, format_completion
from alphadrive_cli.evaluation.metrics import (
    accuracy_by_group,
    confusion_matrix,
    correct_plans,
    frame_episode,
    judged_plans,
    macro_f1,
    multimodality,
    open_loop_metrics,
    paired_difference_ci,
    paired_f1_change_ci,
    per_class_prf,
    released_code_correct,
    reward_signal,
)

SPEEDS = DEFAULT_VOCABULARY.speed  # KEEP, ACCELERATE, DECELERATE, STOP
PATHS = DEFAULT_VOCABULARY.path  # STRAIGHT, LEFT_TURN, RIGHT_TURN, LEFT_CHANGE, RIGHT_CHANGE
PROPERTY = settings(max_examples=60, deadline=None)

# --- the hand-made case: 6 frames --------------------------------------------------------------
#  frame  truth (speed, path)        prediction            completion
#  1      KEEP,       STRAIGHT       KEEP, STRAIGHT        exact format           both right
#  2      KEEP,       STRAIGHT       ACCELERATE, STRAIGHT  exact format           speed wrong
#  3      STOP,       STRAIGHT       STOP, LEFT_TURN       exact format           path wrong
#  4      DECELERATE, LEFT_TURN      KEEP, LEFT_TURN       no <think>: format 0   speed wrong
#  5      STOP,       RIGHT_TURN     STOP, RIGHT_TURN      exact format           both right
#  6      ACCELERATE, LEFT_TURN      None (no answer)      no tags at all         invalid
TRUTHS = [
    ("KEEP", "STRAIGHT"),
    ("KEEP", "STRAIGHT"),
    ("STOP", "STRAIGHT"),
    ("DECELERATE", "LEFT_TURN"),
    ("STOP", "RIGHT_TURN"),
    ("ACCELERATE", "LEFT_TURN"),
]
PREDICTIONS = [
    ("KEEP", "STRAIGHT"),
    ("ACCELERATE", "STRAIGHT"),
    ("STOP", "LEFT_TURN"),
    ("KEEP", "LEFT_TURN"),
    ("STOP", "RIGHT_TURN"),
    None,
]
COMPLETIONS = [
    "<think>clear road</think><answer>KEEP, STRAIGHT</answer>",
    "<think>free lane</think><answer>accelerate straight</answer>",
    "<think>red light</think> <answer>Stop / left turn</answer>",
    "<answer>KEEP, LEFT_TURN</answer>",
    "<think>queue</think><answer>STOP, RIGHT_TURN</answer>",
    "I am not sure what to do.",
]
SPEED_TRUTH = [s for s, _ in TRUTHS]
SPEED_PRED = [p[0] if p else None for p in PREDICTIONS]
PATH_TRUTH = [p for _, p in TRUTHS]
PATH_PRED = [p[1] if p else None for p in PREDICTIONS]

# speed   truth: KEEP KEEP STOP DECEL STOP ACCEL / pred: KEEP ACCEL STOP KEEP STOP None
#   KEEP        tp 1 (f1), fp 1 (f4), fn 1 (f2): P 1/2, R 1/2, F1 1/2, support 2
#   ACCELERATE  tp 0, fp 1 (f2), fn 1 (f6):      P 0,   R 0,   F1 0,   support 1
#   DECELERATE  tp 0, fp 0, fn 1 (f4):           P 0 (0/0), R 0, F1 0, support 1
#   STOP        tp 2, fp 0, fn 0:                P 1,   R 1,   F1 1,   support 2
#   macro F1 over the 4 active classes: (1/2 + 0 + 0 + 1) / 4 = 0.375
SPEED_EXPECTED = {
    "KEEP": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2},
    "ACCELERATE": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
    "DECELERATE": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
    "STOP": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2},
}
# rows: true KEEP, ACCELERATE, DECELERATE, STOP; columns: the same, then "invalid"
SPEED_CONFUSION = [
    [1, 1, 0, 0, 0],
    [0, 0, 0, 0, 1],
    [1, 0, 0, 0, 0],
    [0, 0, 0, 2, 0],
]
# path    truth: STR STR STR LEFT RIGHT LEFT / pred: STR STR LEFT LEFT RIGHT None
#   STRAIGHT    tp 2, fp 0, fn 1 (f3):       P 1,   R 2/3, F1 2*2/(2*2+0+1) = 0.8, support 3
#   LEFT_TURN   tp 1, fp 1 (f3), fn 1 (f6):  P 1/2, R 1/2, F1 1/2,                 support 2
#   RIGHT_TURN  tp 1, fp 0, fn 0:            P 1,   R 1,   F1 1,                   support 1
#   LEFT_CHANGE, RIGHT_CHANGE: never true nor predicted: all 0, support 0, not in the macro
#   macro F1 over the 3 active classes: (0.8 + 0.5 + 1) / 3 = 0.7666...
PATH_EXPECTED = {
    "STRAIGHT": {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3},
    "LEFT_TURN": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2},
    "RIGHT_TURN": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
    "LEFT_CHANGE": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
    "RIGHT_CHANGE": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
}
PATH_CONFUSION = [
    [2, 1, 0, 0, 0, 0],
    [0, 1, 0, 0, 0, 1],
    [0, 0, 1, 0, 0, 0],
    [0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0],
]


def assert_prf(actual: dict, expected: dict) -> None:
    assert list(actual) == list(expected)
    for cls, values in expected.items():
        assert actual[cls] == pytest.approx(values), cls


def test_hand_case_per_class_prf() -> None:
    assert_prf(per_class_prf(SPEED_TRUTH, SPEED_PRED, SPEEDS), SPEED_EXPECTED)
    assert_prf(per_class_prf(PATH_TRUTH, PATH_PRED, PATHS), PATH_EXPECTED)


def test_hand_case_macro_f1_skips_inactive_classes() -> None:
    assert macro_f1(SPEED_TRUTH, SPEED_PRED, SPEEDS) == pytest.approx(0.375)
    assert macro_f1(PATH_TRUTH, PATH_PRED, PATHS) == pytest.approx(2.3 / 3)
    # A class predicted but never true is active (its false positives count): F1 0 joins the mean.
    assert macro_f1(["KEEP", "KEEP"], ["KEEP", "STOP"], SPEEDS) == pytest.approx((2 / 3 + 0) / 2)


def test_hand_case_confusion_matrix_has_invalid_column() -> None:
    assert confusion_matrix(SPEED_TRUTH, SPEED_PRED, SPEEDS) == SPEED_CONFUSION
    assert confusion_matrix(PATH_TRUTH, PATH_PRED, PATHS) == PATH_CONFUSION


def test_hand_case_correct_plans() -> None:
    # Frames 1 and 5 have both heads right: 2 of 6.
    assert correct_plans(TRUTHS, PREDICTIONS) == 2


def test_hand_case_open_loop_metrics() -> None:
    metrics = open_loop_metrics(TRUTHS, COMPLETIONS, DEFAULT_VOCABULARY)
    assert metrics["planning_accuracy"] == pytest.approx(1 / 3)
    assert metrics["released_code_accuracy"] == pytest.approx(1 / 3)  # frames 1 and 5; 2 and 3 are lower case
    assert metrics["format_valid_rate"] == pytest.approx(2 / 3)  # frames 4 (no <think>) and 6 (no tags) fail it
    # only frame 4 is an answer alone: the format of a model trained without reasoning
    assert metrics["answer_only_format_rate"] == pytest.approx(1 / 6)
    assert metrics["parse_failures"] == 1
    assert_prf(metrics["speed"]["per_class"], SPEED_EXPECTED)
    assert_prf(metrics["path"]["per_class"], PATH_EXPECTED)
    assert metrics["speed"]["macro_f1"] == pytest.approx(0.375)
    assert metrics["path"]["macro_f1"] == pytest.approx(2.3 / 3)
    assert metrics["speed"]["confusion_matrix"] == SPEED_CONFUSION
    assert metrics["path"]["confusion_matrix"] == PATH_CONFUSION
    assert metrics["speed"]["confusion_columns"] == [*SPEEDS, "invalid"]
    assert metrics["counts"] == {
        "frames": 6,
        "planning_correct": 2,
        "released_code_correct": 2,
        "format_valid": 4,
        "answer_only_format": 1,
        "parse_failures": 1,
        "no_answer_tag": 1,
        "hedged": 0,
        "incomplete": 0,
    }
    assert json.loads(json.dumps(metrics)) == metrics  # plain JSON types only


def test_open_loop_hedged_head_is_invalid_per_head() -> None:
    truths = [("STOP", "LEFT_TURN"), ("KEEP", "STRAIGHT")]
    completions = [
        "<think>t</think><answer>STOP, KEEP, LEFT_TURN</answer>",  # speed hedged, path right
        "<think>t</think><answer>KEEP</answer>",  # no path action
    ]
    metrics = open_loop_metrics(truths, completions)
    assert metrics["planning_accuracy"] == 0.0
    assert metrics["parse_failures"] == 2
    assert metrics["counts"]["hedged"] == 1 and metrics["counts"]["incomplete"] == 1
    speed_rows = dict(zip(SPEEDS, metrics["speed"]["confusion_matrix"], strict=False))
    assert speed_rows["STOP"][-1] == 1  # the hedge counts as invalid, not as STOP
    assert speed_rows["KEEP"][SPEEDS.index("KEEP")] == 1
    path_rows = dict(zip(PATHS, metrics["path"]["confusion_matrix"], strict=False))
    assert path_rows["LEFT_TURN"][PATHS.index("LEFT_TURN")] == 1
    assert path_rows["STRAIGHT"][-1] == 1


def test_multimodality_hand_case() -> None:
    samples = [
        [("STOP", "STRAIGHT"), ("STOP", "STRAIGHT"), ("KEEP", "LEFT_TURN"), None],  # 2 plans, truth in
        [None, None, None, None],  # 0 plans
        [("KEEP", "STRAIGHT"), ("DECELERATE", "STRAIGHT"), ("STOP", "STRAIGHT"), None],  # 3, truth out
    ]
    truths = [("STOP", "STRAIGHT"), ("KEEP", "STRAIGHT"), ("ACCELERATE", "STRAIGHT")]
    result = multimodality(samples, truths)
    assert result == {
        "frames": 3,
        "samples": 12,
        "mean_distinct_plans": pytest.approx(5 / 3),  # (2 + 0 + 3) / 3
        "truth_covered_rate": pytest.approx(1 / 3),  # frame 1 only
    }


def test_reward_signal_hand_case() -> None:
    """Three frames of three samples: prose only (no reward anywhere), one sample in the reasoning format among
    prose (the only group a reasoning-format GRPO could learn from), and three equal answer-only completions
    (paid by the answer-only format, but all alike, so no advantage there either)."""
    prose = "The road is clear, so keep going straight."
    samples = [
        [prose, prose, prose],
        [format_completion("clear road", "KEEP", "STRAIGHT"), prose, prose],
        ["<answer>STOP, LEFT_TURN</answer>"] * 3,
    ]
    truths = [("KEEP", "STRAIGHT"), ("KEEP", "STRAIGHT"), ("STOP", "LEFT_TURN")]
    result = reward_signal(samples, truths, DEFAULT_VOCABULARY)
    assert (result["frames"], result["samples"]) == (3, 9)
    assert result["reasoning"]["format_rate"] == pytest.approx(1 / 9)
    assert result["reasoning"]["groups_with_signal_rate"] == pytest.approx(1 / 3)
    assert result["reasoning"]["mean_reward"] > 0
    assert result["answer_only"]["format_rate"] == pytest.approx(3 / 9)
    assert result["answer_only"]["groups_with_signal_rate"] == 0.0
    assert result["answer_only"]["mean_reward"] > 0
    with pytest.raises(ValueError, match="2 frames of samples but 3 truths"):
        reward_signal(samples[:2], truths, DEFAULT_VOCABULARY)


def test_reward_signal_takes_a_users_own_vocabulary() -> None:
    """Actions the default weights do not know weigh 1: a right and a wrong answer in one group still differ."""
    vocabulary = ActionVocabulary(speed=("GO", "WAIT"), path=("AHEAD", "BACK"))
    samples = [[format_completion("x", "GO", "AHEAD", vocabulary), format_completion("x", "WAIT", "BACK", vocabulary)]]
    result = reward_signal(samples, [("GO", "AHEAD")], vocabulary)
    assert result["reasoning"]["format_rate"] == 1.0
    assert result["reasoning"]["groups_with_signal_rate"] == 1.0


def test_empty_inputs_give_zero() -> None:
    assert per_class_prf([], [], SPEEDS)["KEEP"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert macro_f1([], [], SPEEDS) == 0.0
    assert correct_plans([], []) == 0
    assert multimodality([], [])["mean_distinct_plans"] == 0.0


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="2 truths but 1 predictions"):
        per_class_prf(["KEEP", "STOP"], ["KEEP"], SPEEDS)
    with pytest.raises(ValueError, match="'FLY'"):
        per_class_prf(["FLY"], ["KEEP"], SPEEDS)
    with pytest.raises(ValueError, match="'FLY'"):
        confusion_matrix(["KEEP"], ["FLY"], SPEEDS)
    with pytest.raises(ValueError, match="'FLY'"):
        open_loop_metrics([("FLY", "STRAIGHT")], ["<answer>KEEP, STRAIGHT</answer>"])


# --- properties -------------------------------------------------------------------------------

frames = st.lists(
    st.tuples(
        st.sampled_from(SPEEDS),
        st.sampled_from(PATHS),
        st.one_of(st.none(), st.tuples(st.sampled_from(SPEEDS), st.sampled_from(PATHS))),
    ),
    max_size=30,
)


def unzip(rows: list) -> tuple[list, list, list, list, list, list]:
    truth_speed = [s for s, _, _ in rows]
    truth_path = [p for _, p, _ in rows]
    preds = [pred for _, _, pred in rows]
    return (
        truth_speed,
        truth_path,
        [p[0] if p else None for p in preds],
        [p[1] if p else None for p in preds],
        list(zip(truth_speed, truth_path, strict=False)),
        preds,
    )


@PROPERTY
@given(frames)
def test_all_metrics_lie_in_unit_interval(rows: list) -> None:
    ts, tp, ps, pp, truths, preds = unzip(rows)
    for truth, pred, classes in ((ts, ps, SPEEDS), (tp, pp, PATHS)):
        for values in per_class_prf(truth, pred, classes).values():
            assert all(0.0 <= values[key] <= 1.0 for key in ("precision", "recall", "f1"))
        assert 0.0 <= macro_f1(truth, pred, classes) <= 1.0
        matrix = confusion_matrix(truth, pred, classes)
        assert sum(map(sum, matrix)) == len(truth)
        assert [sum(row) for row in matrix] == [truth.count(c) for c in classes]
        invalid = [sum(1 for t, p in zip(truth, pred, strict=False) if t == c and p is None) for c in classes]
        assert [row[-1] for row in matrix] == invalid
    assert 0 <= correct_plans(truths, preds) <= len(truths)


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(SPEEDS), st.sampled_from(PATHS)), min_size=1, max_size=30))
def test_perfect_predictions_score_one(truths: list) -> None:
    completions = [format_completion("ok", s, p) for s, p in truths]
    metrics = open_loop_metrics(truths, completions)
    assert metrics["planning_accuracy"] == 1.0
    assert metrics["format_valid_rate"] == 1.0
    assert metrics["parse_failures"] == 0
    for head in ("speed", "path"):
        assert metrics[head]["macro_f1"] == 1.0
        for values in metrics[head]["per_class"].values():
            if values["support"]:
                assert values["precision"] == values["recall"] == values["f1"] == 1.0
        assert all(row[-1] == 0 for row in metrics[head]["confusion_matrix"])


@PROPERTY
@given(frames, st.randoms(use_true_random=False))
def test_permutation_invariance(rows: list, rnd: random.Random) -> None:
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    a, b = unzip(rows), unzip(shuffled)
    for (truth, pred, classes), (truth2, pred2, _) in (
        ((a[0], a[2], SPEEDS), (b[0], b[2], SPEEDS)),
        ((a[1], a[3], PATHS), (b[1], b[3], PATHS)),
    ):
        assert per_class_prf(truth, pred, classes) == per_class_prf(truth2, pred2, classes)
        assert macro_f1(truth, pred, classes) == macro_f1(truth2, pred2, classes)
        assert confusion_matrix(truth, pred, classes) == confusion_matrix(truth2, pred2, classes)
    assert correct_plans(a[4], a[5]) == correct_plans(b[4], b[5])


@PROPERTY
@given(
    st.lists(
        st.tuples(
            st.tuples(st.sampled_from(SPEEDS), st.sampled_from(PATHS)),
            st.lists(st.one_of(st.none(), st.tuples(st.sampled_from(SPEEDS), st.sampled_from(PATHS))), max_size=6),
        ),
        max_size=10,
    )
)
def test_multimodality_bounds(rows: list) -> None:
    truths = [truth for truth, _ in rows]
    samples = [plans for _, plans in rows]
    result = multimodality(samples, truths)
    assert 0.0 <= result["truth_covered_rate"] <= 1.0
    assert 0.0 <= result["mean_distinct_plans"] <= max((len(s) for s in samples), default=0)
    # Adding the true plan to every frame covers every frame.
    covered = multimodality([[*s, t] for s, t in zip(samples, truths, strict=False)], truths)
    assert covered["truth_covered_rate"] == (1.0 if rows else 0.0)


def test_paired_difference_ci_holds_the_difference_and_narrows_with_pairing() -> None:
    """A candidate right on 10 more of 400 frames where both agree elsewhere: +0.025, interval inside (0, 0.05);
    identical outcomes give exactly zero; the unpaired width of two such accuracies would be about 0.14."""
    baseline = [True] * 200 + [False] * 200
    candidate = [True] * 210 + [False] * 190
    gain = paired_difference_ci(baseline, candidate)
    assert gain["difference"] == pytest.approx(0.025)
    assert 0.0 < gain["low"] < 0.025 < gain["high"] < 0.05
    assert gain["frames"] == 400
    assert paired_difference_ci(baseline, baseline) == {"difference": 0.0, "low": 0.0, "high": 0.0, "frames": 400}
    with pytest.raises(ValueError, match="400 baseline outcomes but 3"):
        paired_difference_ci(baseline, [True] * 3)


def test_paired_difference_ci_resamples_whole_units_when_given() -> None:
    """The 10 frames gained all lie in one of 40 episodes of 10 frames: resampling episodes, the interval reaches
    from 0 (that episode never drawn) to twice its share, far wider than frames give; a frame whose unit is None
    is its own, so units of None alone resample as frames do."""
    baseline = [True] * 200 + [False] * 200
    candidate = [True] * 210 + [False] * 190
    episodes = [str(frame // 10) for frame in range(400)]
    by_frame = paired_difference_ci(baseline, candidate)
    by_episode = paired_difference_ci(baseline, candidate, units=episodes)
    assert by_episode["difference"] == by_frame["difference"] == pytest.approx(0.025)
    assert by_episode["low"] == 0.0 and by_episode["high"] > by_frame["high"]
    assert paired_difference_ci(baseline, candidate, units=[None] * 400) == by_frame
    with pytest.raises(ValueError, match="3 units for 400 frames"):
        paired_difference_ci(baseline, candidate, units=["a"] * 3)


def test_paired_f1_change_ci_resamples_whole_units_when_given() -> None:
    """DECELERATE lost on the 10 frames of one episode of 20: by episode the interval reaches 0 (that episode left
    out), by frame it does not; frames each their own unit resample as frames do."""
    truth = ["DECELERATE"] * 100 + ["KEEP"] * 100
    before = list(truth)
    after = ["KEEP"] * 10 + truth[10:]
    episodes = [str(frame // 10) for frame in range(200)]
    by_frame = paired_f1_change_ci(truth, before, after, "DECELERATE")
    by_episode = paired_f1_change_ci(truth, before, after, "DECELERATE", units=episodes)
    assert by_frame["difference"] == by_episode["difference"] < 0
    assert by_frame["high"] < 0 and by_episode["high"] == 0.0
    assert paired_f1_change_ci(truth, before, after, "DECELERATE", units=[str(f) for f in range(200)]) == by_frame


def test_frame_episode_reads_the_simulator_episode_as_text() -> None:
    assert frame_episode({"origin": "simulator", "episode": 213}) == "213"
    assert frame_episode({"origin": "simulator", "episode": "e7"}) == "e7"
    assert frame_episode({"origin": "user"}) is None and frame_episode({"episode": True}) is None


def test_judged_plans_counts_unparsed_and_unoffered_answers_as_unacceptable() -> None:
    acceptable = [frozenset({("KEEP", "STRAIGHT")}), frozenset({("STOP", "STRAIGHT")}), frozenset()]
    result = judged_plans([[("KEEP", "STRAIGHT")], [None], [("KEEP", "LEFT_CHANGE")]], acceptable)
    assert result == {
        "frames": 3,
        "acceptable_rate": pytest.approx(1 / 3),
        "unacceptable_by_speed": {"unparsed": 1, "KEEP": 1},
        "unacceptable_by_path": {"unparsed": 1, "LEFT_CHANGE": 1},
    }  # one answer per frame: no K-sample numbers
    with pytest.raises(ValueError, match="verdicts"):
        judged_plans([[None]], acceptable)


def test_released_code_rule_counts_hedges_and_reasoning_mentions() -> None:
    """The released evaluation reads the whole completion: a hedge, or the truth named in the reasoning while the
    answer is another plan, counts as right; exact match (planning accuracy) counts neither."""
    truths = [("STOP", "STRAIGHT"), ("KEEP", "LEFT_TURN"), ("KEEP", "STRAIGHT"), ("KEEP", "STRAIGHT")]
    completions = [
        "<think>t</think><answer>KEEP, STOP, STRAIGHT</answer>",  # hedged speed
        "<think>not KEEP, LEFT_TURN here</think><answer>STOP, STRAIGHT</answer>",  # truth only in the reasoning
        "<think>t</think><answer>keep, straight</answer>",  # right, but lower case: the rule is case-sensitive
        "<think>t</think><answer>KEEP, STRAIGHT</answer>",
    ]
    metrics = open_loop_metrics(truths, completions)
    assert metrics["planning_accuracy"] == pytest.approx(2 / 4)
    assert metrics["released_code_accuracy"] == pytest.approx(3 / 4)
    assert [released_code_correct(text, truth) for text, truth in zip(completions, truths, strict=True)] == [
        True,
        True,
        False,
        True,
    ]


def test_paired_f1_change_is_the_f1_difference_with_an_interval_from_the_same_frames():
    truth = ["ACCELERATE"] * 30 + ["KEEP"] * 70
    before = ["KEEP"] * 100  # never answers ACCELERATE: F1 0
    after = ["ACCELERATE"] * 24 + ["KEEP"] * 6 + ["ACCELERATE"] * 6 + ["KEEP"] * 64  # 24 right, 6 false alarms
    change = paired_f1_change_ci(truth, before, after, "ACCELERATE")
    expected = per_class_prf(truth, after, ["KEEP", "ACCELERATE"])["ACCELERATE"]["f1"]
    assert change["difference"] == round(expected, 4) == 0.8 and change["frames"] == 100
    assert 0.65 < change["low"] < 0.8 < change["high"] < 0.95
    same = paired_f1_change_ci(truth, after, after, "ACCELERATE")
    assert (same["difference"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    right_once = ["STOP", "KEEP", "KEEP", "KEEP"]
    one_frame = paired_f1_change_ci(right_once, right_once, ["KEEP"] * 4, "STOP")
    assert (one_frame["low"], one_frame["high"]) == (-1.0, 0.0)  # one frame of the class: the interval spans it
    with pytest.raises(ValueError, match="truths"):
        paired_f1_change_ci(truth, before[:-1], after, "ACCELERATE")


def test_accuracy_by_group_scores_each_groups_frames_as_the_whole_split_is_scored() -> None:
    def text(answer: str) -> str:
        return f"<think>t</think><answer>{answer}</answer>"

    groups = ["highway", "blocked", "highway", "highway", "blocked"]
    truths = [
        ("KEEP", "STRAIGHT"),
        ("STOP", "STRAIGHT"),
        ("DECELERATE", "STRAIGHT"),
        ("KEEP", "LEFT_CHANGE"),
        ("KEEP", "STRAIGHT"),
    ]
    completions = [
        text("KEEP, STRAIGHT"),  # right
        text("STOP, STRAIGHT"),  # right
        text("KEEP, STRAIGHT"),  # speed wrong
        text("KEEP, STRAIGHT, LEFT_CHANGE"),  # path hedged: wrong
        "no answer",  # both heads missing
    ]
    scores = accuracy_by_group(groups, truths, completions)
    assert list(scores) == ["blocked", "highway"]
    assert scores["highway"] == {
        "frames": 3,
        "planning_accuracy": 1 / 3,
        "speed_accuracy": 2 / 3,
        "path_accuracy": 2 / 3,
    }
    assert scores["blocked"] == {"frames": 2, "planning_accuracy": 0.5, "speed_accuracy": 0.5, "path_accuracy": 0.5}
    whole = open_loop_metrics(truths, completions)
    assert whole["counts"]["planning_correct"] == sum(
        group["planning_accuracy"] * group["frames"] for group in scores.values()
    )
    with pytest.raises(ValueError, match="4 groups"):
        accuracy_by_group(groups[:4], truths, completions)
