"""Qwen2's real tokenizer, converted offline from the BPE table the dashscope package ships (``models tiny
--tokenizer qwen2``): its ids, the conversion, Qwen2-VL's special tokens and chat template."""

from __future__ import annotations

import importlib.metadata
import json

import pytest
from tokenizers import pre_tokenizers

from alphadrive_cli.errors import BadInput
from alphadrive_cli.models.qwen2_tokenizer import (
    QWEN2_VL_SPECIAL_TOKENS,
    build_qwen2_tokenizer,
    byte_alphabet,
    merge_parts,
    read_ranks,
    vocabulary_and_merges,
)
from alphadrive_cli.models.tiny import QWEN2_CHAT_TEMPLATE_FILE, build_processor
from alphadrive_cli.resources import CONFIG_DIR
from tests.support.cli_checks import assert_one_line_error, hide_distribution
from tests.support.tiny_inputs import assistant_marked_text


def _installed(package: str) -> bool:
    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_dashscope = pytest.mark.skipif(
    not _installed("dashscope"), reason="dashscope is not installed (make install installs it, --no-deps)"
)


@pytest.fixture(scope="module")
def qwen2():
    return build_qwen2_tokenizer()


@pytest.fixture(scope="module")
def processor(qwen2):
    return build_processor("qwen2_vl", qwen2, QWEN2_CHAT_TEMPLATE_FILE.read_text(), 56 * 56, 112 * 112)


# --------------------------------------------------------------------------------------------------
# The conversion, on hand-made tables


def test_merge_parts_is_the_last_merge_bpe_makes_with_lower_ranks() -> None:
    ranks = {b"a": 0, b"b": 1, b"c": 2, b"ab": 3, b"abc": 4, b"bc": 5}
    assert merge_parts(b"ab", ranks) == (b"a", b"b")
    # "bc" ranks above "abc", so BPE never reaches it on the way to "abc"
    assert merge_parts(b"abc", ranks) == (b"ab", b"c")
    ranks = {b"a": 0, b"b": 1, b"c": 2, b"bc": 3, b"ab": 4, b"abc": 5}
    assert merge_parts(b"abc", ranks) == (b"a", b"bc")


def test_a_token_no_merges_reach_is_bad_input() -> None:
    with pytest.raises(BadInput, match="not a merge of two lower-ranked tokens"):
        merge_parts(b"abc", {b"a": 0, b"b": 1, b"c": 2, b"abc": 3})


def test_vocabulary_spells_bytes_in_the_byte_level_alphabet() -> None:
    vocab, merges = vocabulary_and_merges({b" ": 0, b"a": 1, b"\n": 2, b" a": 3, b"\xe4": 4, b"\xe4a": 5})
    assert vocab == {"Ġ": 0, "a": 1, "Ċ": 2, "Ġa": 3, "ä": 4, "äa": 5}
    assert merges == [("Ġ", "a"), ("ä", "a")]
    assert set(byte_alphabet()) == set(pre_tokenizers.ByteLevel.alphabet()) and len(byte_alphabet()) == 256


@pytest.mark.parametrize(
    ("table", "message"),
    [(b"IQ== 0\nnot-base64 1\n", "line 2"), (b"IQ== 0\nIg==\n", "line 2"), (b"IQ== 0\nIg== 5\n", "0..n-1")],
)
def test_unreadable_tables_are_bad_input(table: bytes, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        read_ranks(table)


# --------------------------------------------------------------------------------------------------
# The real table


@needs_dashscope
def test_special_tokens_sit_at_qwen2_vl_ids(qwen2) -> None:
    assert [qwen2.convert_tokens_to_ids(token) for token in QWEN2_VL_SPECIAL_TOKENS] == list(range(151643, 151657))
    assert len(qwen2) == 151657
    real = json.loads((CONFIG_DIR / "models" / "qwen2-vl-2b.json").read_text())
    token_id = qwen2.convert_tokens_to_ids
    assert token_id("<|image_pad|>") == real["image_token_id"] == 151655
    assert token_id("<|video_pad|>") == real["video_token_id"]
    assert token_id("<|vision_start|>") == real["vision_start_token_id"]
    assert token_id("<|vision_end|>") == real["vision_end_token_id"]
    assert qwen2.eos_token == "<|im_end|>" and qwen2.eos_token_id == real["eos_token_id"]
    assert qwen2.pad_token == "<|endoftext|>" and qwen2.pad_token_id == 151643
    assert qwen2.padding_side == "left"


@needs_dashscope
@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("Hello world", [9707, 1879]),
        ("<|im_start|>user\nHi<|im_end|>", [151644, 872, 198, 13048, 151645]),
        ("你好", [108386]),
        (" 2024", [220, 17, 15, 17, 19]),  # Qwen2 splits numbers into single digits
    ],
)
def test_known_qwen2_ids(qwen2, text: str, ids: list[int]) -> None:
    assert qwen2(text, add_special_tokens=False)["input_ids"] == ids


@needs_dashscope
@pytest.mark.parametrize(
    "text",
    [
        "<think>The lead vehicle is slow.</think><answer>DECELERATE, LEFT_CHANGE</answer>",
        "  two  spaces,\ttabs\r\nand lines\n\n",
        "naïve café — 速度 30 km/h 🚗",
        "don't we'll they're",
    ],
)
def test_text_round_trips(qwen2, text: str) -> None:
    ids = qwen2(text, add_special_tokens=False)["input_ids"]
    assert qwen2.decode(ids) == text
    assert max(ids) < 151643 or "<|" in text


@needs_dashscope
def test_chat_template_has_a_system_turn_images_and_marked_assistant_turns(processor) -> None:
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What now?"}]},
        {"role": "assistant", "content": "<answer>KEEP, STRAIGHT</answer>"},
    ]
    text = processor.apply_chat_template(messages, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What now?<|im_end|>\n"
        "<|im_start|>assistant\n<answer>KEEP, STRAIGHT</answer><|im_end|>\n"
    )
    own_system = [{"role": "system", "content": "Drive."}, *messages[:1]]
    prompt = processor.apply_chat_template(own_system, tokenize=False, add_generation_prompt=True, add_vision_id=True)
    assert prompt.startswith("<|im_start|>system\nDrive.<|im_end|>\n") and "helpful" not in prompt
    assert "Picture 1: <|vision_start|>" in prompt and prompt.endswith("<|im_start|>assistant\n")
    assert assistant_marked_text(processor, messages) == "<answer>KEEP, STRAIGHT</answer><|im_end|>"


def test_missing_dashscope_is_one_line_naming_the_install(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    hide_distribution(monkeypatch, "dashscope")
    result = cli("models", "tiny", "--tokenizer", "qwen2")
    assert_one_line_error(result, 2, "dashscope is not installed", "pip install --no-deps dashscope==2.0.2")
