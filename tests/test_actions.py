"""Tests for alphadrive_cli.actions: vocabulary, answer parsing and formatting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphadrive_cli.actions import (
    DEFAULT_VOCABULARY,
    ActionVocabulary,
    ParsedAnswer,
    format_answer,
    format_completion,
    matches_answer_format,
    parse_answer,
)

SPEEDS = DEFAULT_VOCABULARY.speed
PATHS = DEFAULT_VOCABULARY.path
PROPERTY = settings(max_examples=200, deadline=None)
# For properties that draw whole styled completions (slower per example).
COMPOSITE = settings(max_examples=100, deadline=None)

# Letters absent from every default action word and from "AND": words built from
# them can never form an action or the separator word.
JUNK_ALPHABET = "BJMQVWXYZbjmqvwxyz0123456789"
junk_words = st.text(alphabet=JUNK_ALPHABET, min_size=1, max_size=8)
whitespace = st.text(alphabet=" \t\n\r", max_size=3)
whitespace1 = st.text(alphabet=" \t\n\r", min_size=1, max_size=3)
inner_separators = st.text(alphabet=" \t\n_-./", min_size=1, max_size=4)
PUNCTUATION_SEPARATORS = [",", ";", "/", "|", "+", "-", "&"]
# Text that cannot contain an answer tag (tags need the ASCII word "answer").
tagless_text = st.text(max_size=40).filter(lambda t: "answer" not in t.lower())


def random_case(word: str) -> st.SearchStrategy[str]:
    return st.tuples(*(st.sampled_from((c.lower(), c.upper())) for c in word)).map("".join)


@st.composite
def styled_action(draw: st.DrawFn, action: str) -> str:
    """The action with random case per character and random separators between its words."""
    first, *rest = action.split("_")
    text = draw(random_case(first))
    for word in rest:
        text += draw(inner_separators) + draw(random_case(word))
    return text


@st.composite
def between(draw: st.DrawFn) -> str:
    """A separator between two actions: punctuation, the word 'and', or whitespace."""
    core = draw(st.sampled_from([*PUNCTUATION_SEPARATORS, "and", "AND", "And", ""]))
    if core.isalpha() or not core:
        return draw(whitespace1) + core + draw(whitespace1) if core else draw(whitespace1)
    return draw(whitespace) + core + draw(whitespace)


@st.composite
def open_tag(draw: st.DrawFn) -> str:
    return "<" + draw(whitespace) + draw(random_case("answer")) + draw(whitespace) + ">"


@st.composite
def close_tag(draw: st.DrawFn) -> str:
    return "<" + draw(whitespace) + "/" + draw(whitespace) + draw(random_case("answer")) + draw(whitespace) + ">"


@st.composite
def styled_answer(draw: st.DrawFn, speed: str, path: str) -> str:
    """Both actions, styled, in either order, padded with whitespace."""
    first, second = draw(st.permutations([speed, path]))
    return (
        draw(whitespace) + draw(styled_action(first)) + draw(between()) + draw(styled_action(second)) + draw(whitespace)
    )


# --- vocabulary -----------------------------------------------------------------


def test_default_vocabulary_is_the_papers():
    assert DEFAULT_VOCABULARY.speed == ("KEEP", "ACCELERATE", "DECELERATE", "STOP")
    assert DEFAULT_VOCABULARY.path == (
        "STRAIGHT",
        "LEFT_TURN",
        "RIGHT_TURN",
        "LEFT_CHANGE",
        "RIGHT_CHANGE",
    )


def test_head_of():
    for action in SPEEDS:
        assert DEFAULT_VOCABULARY.head_of(action) == "speed"
    for action in PATHS:
        assert DEFAULT_VOCABULARY.head_of(action) == "path"


@pytest.mark.parametrize("action", ["FLY", "keep", "LEFT TURN", ""])
def test_head_of_unknown_action_raises_value_error_naming_it(action):
    with pytest.raises(ValueError, match="unknown action") as excinfo:
        DEFAULT_VOCABULARY.head_of(action)
    assert repr(action) in str(excinfo.value)


def test_dict_round_trip():
    data = DEFAULT_VOCABULARY.to_dict()
    assert data == {"speed": list(SPEEDS), "path": list(PATHS)}
    assert ActionVocabulary.from_dict(data) == DEFAULT_VOCABULARY


def test_lists_are_stored_as_tuples():
    vocabulary = ActionVocabulary(speed=["FAST", "SLOW"], path=["LANE_1"])
    assert vocabulary.speed == ("FAST", "SLOW")
    assert vocabulary.path == ("LANE_1",)
    hash(vocabulary)


@pytest.mark.parametrize(
    "data",
    [{"speed": ["KEEP"]}, {"speed": ["KEEP"], "path": ["STRAIGHT"], "steer": ["X"]}, {}],
)
def test_from_dict_requires_exactly_speed_and_path(data):
    with pytest.raises(ValueError, match="speed"):
        ActionVocabulary.from_dict(data)


@pytest.mark.parametrize(
    ("speed", "path", "message"),
    [
        ((), ("STRAIGHT",), "speed head"),
        (("KEEP",), (), "path head"),
        (("keep",), ("STRAIGHT",), "'keep'"),
        (("1ST",), ("STRAIGHT",), "'1ST'"),
        (("_KEEP",), ("STRAIGHT",), "'_KEEP'"),
        (("KEEP",), ("LEFT-TURN",), "'LEFT-TURN'"),
        (("KEEP",), ("LEFT TURN",), "'LEFT TURN'"),
        (("KEEP",), (3,), "3"),
        (("KEEP", "KEEP"), ("STRAIGHT",), "duplicate action 'KEEP'"),
        (("KEEP",), ("STRAIGHT", "KEEP"), "duplicate action 'KEEP'"),
        (("KEEP",), ("LEFT", "LEFT_TURN"), "'LEFT' is a whole-word part of 'LEFT_TURN'"),
        (("TURN",), ("LEFT_TURN",), "'TURN' is a whole-word part of 'LEFT_TURN'"),
        (("KEEP",), ("A_B_C", "B"), "'B' is a whole-word part of 'A_B_C'"),
        (("KEEP",), ("LEFT_TURN", "LEFT__TURN"), "ambiguous"),
        (("AND",), ("STRAIGHT",), "separator"),
        ("KEEP", ("STRAIGHT",), "not a string"),
    ],
)
def test_invalid_vocabulary_is_refused(speed, path, message):
    with pytest.raises(ValueError) as excinfo:
        ActionVocabulary(speed=speed, path=path)
    assert message in str(excinfo.value)


def test_overlapping_but_unambiguous_actions_are_accepted():
    vocabulary = ActionVocabulary(speed=("GO_ON", "STOP_AND_GO"), path=("LEFT_TURN", "TURN_LEFT"))
    assert parse_answer("<answer>turn left</answer>", vocabulary).path == {"TURN_LEFT"}
    assert parse_answer("<answer>stop and go</answer>", vocabulary).speed == {"STOP_AND_GO"}


names = st.from_regex(r"[A-Z][A-Z0-9]{0,5}", fullmatch=True).filter(lambda w: w != "AND")


@PROPERTY
@given(
    core=st.lists(names, min_size=1, max_size=3),
    before=st.lists(names, max_size=2),
    after=st.lists(names, max_size=2),
)
def test_sub_phrase_of_another_action_is_refused(core, before, after):
    if not before and not after:
        after = ["X"]
    short, long = "_".join(core), "_".join(before + core + after)
    with pytest.raises(ValueError, match="ambiguous"):
        ActionVocabulary(speed=(short,), path=(long,))
    with pytest.raises(ValueError, match="ambiguous"):
        ActionVocabulary(speed=("KEEP", long), path=("STRAIGHT", short))


# --- parsing: hand-written cases ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "plan"),
    [
        ("<think>ok</think><answer>KEEP, STRAIGHT</answer>", ("KEEP", "STRAIGHT")),
        ("<answer>keep, straight</answer>", ("KEEP", "STRAIGHT")),
        ("<answer>Decelerate;Left-Turn</answer>", ("DECELERATE", "LEFT_TURN")),
        ("<answer>  stop\t/\n right  _ turn </answer>", ("STOP", "RIGHT_TURN")),
        ("<answer>ACCELERATE and LEFT_CHANGE</answer>", ("ACCELERATE", "LEFT_CHANGE")),
        ("<answer>right change | keep</answer>", ("KEEP", "RIGHT_CHANGE")),
        ("<answer>KEEP+STRAIGHT</answer>", ("KEEP", "STRAIGHT")),
        ("<answer>KEEP&LEFT.TURN</answer>", ("KEEP", "LEFT_TURN")),
        ("<answer>KEEP STRAIGHT</answer>", ("KEEP", "STRAIGHT")),
        ("< Answer >keep , left turn</ ANSWER>", ("KEEP", "LEFT_TURN")),
        ("<\tanswer\n>STOP, STRAIGHT<  /  answer  >", ("STOP", "STRAIGHT")),
        ("<think>x</think><answer>KEEP, KEEP, STRAIGHT</answer>", ("KEEP", "STRAIGHT")),
    ],
)
def test_parse_hand_written(text, plan):
    parsed = parse_answer(text)
    assert parsed.plan == plan
    assert parsed.has_answer
    assert parsed.unrecognized == ()


def test_only_the_last_answer_counts():
    text = (
        "<think>maybe <answer>STOP, LEFT_TURN</answer></think>"
        "<answer>ACCELERATE, RIGHT_CHANGE</answer> then <answer>keep, straight</answer>"
    )
    assert parse_answer(text).plan == ("KEEP", "STRAIGHT")


def test_unclosed_earlier_answer_does_not_leak_into_the_last():
    text = "<answer>STOP, LEFT_TURN <answer>KEEP, STRAIGHT</answer>"
    parsed = parse_answer(text)
    assert parsed.speed == {"KEEP"} and parsed.path == {"STRAIGHT"}


def test_truncated_answer_reads_to_the_end():
    parsed = parse_answer("<think>a car ahead</think><answer>DECELERATE, STRAI")
    assert parsed.has_answer
    assert parsed.speed == {"DECELERATE"}
    assert parsed.path == frozenset()
    assert parsed.unrecognized == ("STRAI",)
    assert parsed.plan is None


def test_text_after_the_closing_tag_is_ignored():
    parsed = parse_answer("<answer>KEEP, STRAIGHT</answer> actually STOP, LEFT_TURN")
    assert parsed.plan == ("KEEP", "STRAIGHT")
    assert parsed.unrecognized == ()


@pytest.mark.parametrize(
    "text",
    [
        "KEEP, STRAIGHT",
        "KEEP, STRAIGHT</answer>",
        "<think>KEEP, STRAIGHT</think>",
        "answer: KEEP, STRAIGHT",
        "<answr>KEEP, STRAIGHT</answr>",
        "<anſwer>KEEP, STRAIGHT</answer>",
        "",
    ],
)
def test_no_opening_tag_means_no_answer(text):
    assert parse_answer(text) == ParsedAnswer(frozenset(), frozenset(), (), has_answer=False)


def test_empty_answer():
    parsed = parse_answer("<answer></answer>")
    assert parsed == ParsedAnswer(frozenset(), frozenset(), (), has_answer=True)
    assert parsed.plan is None


@pytest.mark.parametrize(
    ("answer", "speed", "path", "unrecognized"),
    [
        ("slow down, go straight", set(), {"STRAIGHT"}, ("SLOW", "DOWN", "GO")),
        ("decelerate and turn left", {"DECELERATE"}, set(), ("TURN", "LEFT")),
        ("KEEPING STRAIGHTEN", set(), set(), ("KEEPING", "STRAIGHTEN")),
        ("keep, left_turns", {"KEEP"}, set(), ("LEFT", "TURNS")),
        ("keep, lane change", {"KEEP"}, set(), ("LANE", "CHANGE")),
        ("ſtop, straight", set(), {"STRAIGHT"}, ("ſTOP",)),
        ("KEEP_STRAIGHT", {"KEEP"}, {"STRAIGHT"}, ()),
        ("KEEP, STRAIGHT and and", {"KEEP"}, {"STRAIGHT"}, ()),
        ("KEEP, STRAIGHT, band", {"KEEP"}, {"STRAIGHT"}, ("BAND",)),
    ],
)
def test_strict_vocabulary(answer, speed, path, unrecognized):
    parsed = parse_answer(f"<answer>{answer}</answer>")
    assert parsed.speed == speed
    assert parsed.path == path
    assert parsed.unrecognized == unrecognized


def test_hedged_answer_has_no_plan():
    parsed = parse_answer("<answer>KEEP, DECELERATE, STRAIGHT</answer>")
    assert parsed.speed == {"KEEP", "DECELERATE"}
    assert parsed.path == {"STRAIGHT"}
    assert parsed.plan is None


def test_plan_needs_exactly_one_of_each():
    one = ParsedAnswer(frozenset({"STOP"}), frozenset({"STRAIGHT"}), ("X",), True)
    assert one.plan == ("STOP", "STRAIGHT")
    assert ParsedAnswer(frozenset({"STOP"}), frozenset(), (), True).plan is None
    assert ParsedAnswer(frozenset(), frozenset({"STRAIGHT"}), (), True).plan is None
    two_paths = ParsedAnswer(frozenset({"STOP"}), frozenset({"STRAIGHT", "LEFT_TURN"}), (), True)
    assert two_paths.plan is None


CUSTOM = ActionVocabulary(speed=("FAST", "SLOW"), path=("LANE_1", "LANE_2", "EXIT"))


def test_custom_vocabulary():
    parsed = parse_answer("<answer>slow, lane 2</answer>", CUSTOM)
    assert parsed.plan == ("SLOW", "LANE_2")
    other = parse_answer("<answer>KEEP, STRAIGHT</answer>", CUSTOM)
    assert other.plan is None
    assert other.unrecognized == ("KEEP", "STRAIGHT")
    assert parse_answer("<answer>slow, lane 2</answer>").unrecognized == ("SLOW", "LANE", "2")


# --- parsing: properties --------------------------------------------------------


@COMPOSITE
@given(
    speed=st.sampled_from(SPEEDS),
    path=st.sampled_from(PATHS),
    data=st.data(),
)
def test_styled_answers_parse(speed, path, data):
    text = data.draw(open_tag()) + data.draw(styled_answer(speed, path)) + data.draw(close_tag())
    parsed = parse_answer(text)
    assert parsed.plan == (speed, path)
    assert parsed.unrecognized == ()
    assert parsed.has_answer


@COMPOSITE
@given(
    speed=st.sampled_from(SPEEDS),
    path=st.sampled_from(PATHS),
    before=tagless_text,
    after=tagless_text,
    data=st.data(),
)
def test_text_around_the_answer_is_ignored(speed, path, before, after, data):
    decoy = data.draw(st.sampled_from(SPEEDS)) + ", " + data.draw(st.sampled_from(PATHS))
    text = (
        f"{before}<think>{decoy}</think>{decoy}"
        + data.draw(open_tag())
        + data.draw(styled_answer(speed, path))
        + data.draw(close_tag())
        + f"{after}{decoy}"
    )
    parsed = parse_answer(text)
    assert parsed.plan == (speed, path)
    assert parsed.unrecognized == ()


@COMPOSITE
@given(
    speed=st.sampled_from(SPEEDS),
    path=st.sampled_from(PATHS),
    junk=st.lists(st.lists(junk_words, max_size=3), min_size=3, max_size=3),
    data=st.data(),
)
def test_junk_inside_the_answer_is_unrecognized(speed, path, junk, data):
    first, second = data.draw(st.permutations([speed, path]))
    tokens = [*junk[0], data.draw(styled_action(first)), *junk[1], data.draw(styled_action(second)), *junk[2]]
    body = tokens[0]
    for token in tokens[1:]:
        body += data.draw(between()) + token
    parsed = parse_answer(f"<answer>{body}</answer>")
    assert parsed.plan == (speed, path)
    assert parsed.unrecognized == tuple(word.upper() for word in junk[0] + junk[1] + junk[2])


@COMPOSITE
@given(junk=st.lists(junk_words, max_size=6), data=st.data())
def test_junk_alone_never_produces_an_action(junk, data):
    body = "".join(data.draw(between()) + word for word in junk)
    parsed = parse_answer(f"<answer>{body}</answer>")
    assert parsed.speed == frozenset() and parsed.path == frozenset()
    assert parsed.unrecognized == tuple(word.upper() for word in junk)


@COMPOSITE
@given(
    answers=st.lists(st.tuples(st.sampled_from(SPEEDS), st.sampled_from(PATHS)), min_size=2, max_size=4),
    fillers=st.lists(tagless_text, min_size=4, max_size=4),
    data=st.data(),
)
def test_last_of_several_answers_wins(answers, fillers, data):
    text = ""
    for (speed, path), filler in zip(answers, fillers, strict=False):
        text += filler + data.draw(open_tag()) + data.draw(styled_answer(speed, path))
        text += data.draw(close_tag())
    assert parse_answer(text).plan == answers[-1]


@COMPOSITE
@given(
    speed=st.sampled_from(SPEEDS),
    path=st.sampled_from(PATHS),
    reasoning=tagless_text,
    data=st.data(),
)
def test_missing_closing_tag_reads_to_the_end(speed, path, reasoning, data):
    text = f"<think>{reasoning}</think>" + data.draw(open_tag()) + data.draw(styled_answer(speed, path))
    parsed = parse_answer(text)
    assert parsed.has_answer
    assert parsed.plan == (speed, path)


@COMPOSITE
@given(
    speed=st.sampled_from(SPEEDS),
    path=st.sampled_from(PATHS),
    data=st.data(),
)
def test_missing_opening_tag_reads_nothing(speed, path, data):
    text = data.draw(styled_answer(speed, path)) + data.draw(close_tag())
    assert parse_answer(text) == ParsedAnswer(frozenset(), frozenset(), (), has_answer=False)


@COMPOSITE
@given(
    speeds=st.sets(st.sampled_from(SPEEDS), min_size=1),
    paths=st.sets(st.sampled_from(PATHS), min_size=1),
    data=st.data(),
)
def test_hedged_answers_keep_every_action(speeds, paths, data):
    actions = data.draw(st.permutations(sorted(speeds) + sorted(paths)))
    body = data.draw(styled_action(actions[0]))
    for action in actions[1:]:
        body += data.draw(between()) + data.draw(styled_action(action))
    parsed = parse_answer(f"<answer>{body}</answer>")
    assert parsed.speed == speeds
    assert parsed.path == paths
    hedged = len(speeds) > 1 or len(paths) > 1
    assert (parsed.plan is None) == hedged


fragments = st.one_of(
    st.text(),
    st.sampled_from(
        [
            "<answer>",
            "</answer>",
            "< ANSWER >",
            "</ answer",
            "<",
            ">",
            "/",
            "_",
            " and ",
            "KEEP",
            "left turn",
            "Right_Change",
            "stop",
            "\x00",
            "\ud800",
            "ſ",
            "İ",
            "ß",
        ]
    ),
)


@PROPERTY
@given(text=st.one_of(st.text(), st.lists(fragments, max_size=12).map("".join)))
def test_any_text_parses_without_raising(text):
    parsed = parse_answer(text)
    assert parsed.speed <= set(SPEEDS)
    assert parsed.path <= set(PATHS)
    for word in parsed.unrecognized:
        assert word and not any(c.isspace() or c == "_" for c in word)
        assert not any(c.islower() for c in word if c.isascii())
    if not parsed.has_answer:
        assert parsed == ParsedAnswer(frozenset(), frozenset(), (), has_answer=False)


# --- formatting and the format reward ----------------------------------------------


def test_format_answer_and_completion():
    assert format_answer("KEEP", "LEFT_TURN") == "KEEP, LEFT_TURN"
    assert format_completion("clear road", "ACCELERATE", "STRAIGHT") == (
        "<think>clear road</think><answer>ACCELERATE, STRAIGHT</answer>"
    )
    assert format_answer("FAST", "EXIT", CUSTOM) == "FAST, EXIT"


@pytest.mark.parametrize(
    ("speed", "path", "bad"),
    [
        ("STRAIGHT", "KEEP", "'STRAIGHT'"),
        ("KEEP", "STOP", "'STOP'"),
        ("keep", "STRAIGHT", "'keep'"),
        ("KEEP", "LEFT TURN", "'LEFT TURN'"),
        ("FAST", "STRAIGHT", "'FAST'"),
    ],
)
def test_format_answer_rejects_bad_actions(speed, path, bad):
    with pytest.raises(ValueError, match=bad):
        format_answer(speed, path)
    with pytest.raises(ValueError, match=bad):
        format_completion("why", speed, path)


def test_format_answer_uses_the_given_vocabulary():
    with pytest.raises(ValueError, match="'KEEP'"):
        format_answer("KEEP", "EXIT", CUSTOM)


@PROPERTY
@given(speed=st.sampled_from(SPEEDS), path=st.sampled_from(PATHS), reasoning=st.text())
def test_round_trip(speed, path, reasoning):
    completion = format_completion(reasoning, speed, path)
    assert matches_answer_format(completion)
    parsed = parse_answer(completion)
    assert parsed.plan == (speed, path)
    assert parsed.unrecognized == ()


@COMPOSITE
@given(
    words=st.lists(names, min_size=2, max_size=8, unique=True),
    split=st.integers(min_value=1, max_value=7),
    reasoning=st.text(),
    data=st.data(),
)
def test_round_trip_with_random_vocabulary(words, split, reasoning, data):
    split = min(split, len(words) - 1)
    vocabulary = ActionVocabulary(speed=tuple(words[:split]), path=tuple(words[split:]))
    assert ActionVocabulary.from_dict(vocabulary.to_dict()) == vocabulary
    speed = data.draw(st.sampled_from(vocabulary.speed))
    path = data.draw(st.sampled_from(vocabulary.path))
    assert parse_answer(format_completion(reasoning, speed, path, vocabulary), vocabulary).plan == (
        speed,
        path,
    )
    styled = data.draw(open_tag()) + data.draw(styled_answer(speed, path)) + data.draw(close_tag())
    assert parse_answer(styled, vocabulary).plan == (speed, path)


@pytest.mark.parametrize(
    "text",
    [
        "<think>x</think><answer>KEEP, STRAIGHT</answer>",
        "<think></think><answer></answer>",
        "<think>a\nb\n</think>\n\n<answer>KEEP, STRAIGHT</answer>",
        "  \n<think>x</think> <answer>KEEP, STRAIGHT</answer>\n  ",
        "<think>x</think><answer>anything at all</answer>",
    ],
)
def test_answer_format_positives(text):
    assert matches_answer_format(text)


@pytest.mark.parametrize(
    "text",
    [
        "<answer>KEEP, STRAIGHT</answer>",
        "<think>x</think><answer>KEEP, STRAIGHT</answer> done",
        "<answer>KEEP, STRAIGHT</answer><think>x</think>",
        "so <think>x</think><answer>KEEP, STRAIGHT</answer>",
        "<think>x</think> y <answer>KEEP, STRAIGHT</answer>",
        "<think>x</think><answer>KEEP, STRAIGHT",
        "<think>x<answer>KEEP, STRAIGHT</answer>",
        "<THINK>x</THINK><ANSWER>KEEP, STRAIGHT</ANSWER>",
        "<think>x</think>< answer >KEEP, STRAIGHT</answer>",
        "",
    ],
)
def test_answer_format_negatives(text):
    assert not matches_answer_format(text)


@PROPERTY
@given(
    speed=st.sampled_from(SPEEDS),
    path=st.sampled_from(PATHS),
    reasoning=st.text(),
    junk=junk_words,
    space=whitespace,
)
def test_answer_format_rejects_text_outside_the_tags(speed, path, reasoning, junk, space):
    completion = format_completion(reasoning, speed, path)
    assert matches_answer_format(space + completion + space)
    assert not matches_answer_format(completion + space + junk)
    assert not matches_answer_format(junk + space + completion)
