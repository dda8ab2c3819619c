"""``alphadrive_cli.models.distinct_texts``: a batch with repeated prompts tokenized once per distinct prompt gives
exactly what the tokenizer gives for the whole batch, inside the processor too."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from alphadrive_cli.models.distinct_texts import DistinctTexts, tokenize_distinct_texts
from tests.support.tiny_inputs import image, prompt, tiny

TEXTS = [prompt("Go?"), prompt("Go?"), prompt("Stop now, the road is blocked"), prompt("Go?"), prompt("Turn")]


@pytest.fixture(scope="module")
def processor():
    return tiny()[1]


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    return type(a) is type(b) and a == b


class Counting:
    """A tokenizer stand-in that records the batches it tokenizes."""

    def __init__(self, inner) -> None:
        self.inner, self.batches = inner, []

    def __call__(self, text, *args, **kwargs):
        self.batches.append(list(text) if isinstance(text, list) else text)
        return self.inner(text, *args, **kwargs)


@pytest.mark.parametrize("return_tensors", ["pt", "np", None])
@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_repeated_texts_are_tokenized_once_and_give_the_same_batch(processor, return_tensors, padding_side):
    tokenizer = processor.tokenizer
    counting = Counting(tokenizer)
    wrapped = DistinctTexts(counting)
    kwargs = {"padding": True, "padding_side": padding_side, "return_tensors": return_tensors}
    got, want = wrapped(TEXTS, **kwargs), tokenizer(TEXTS, **kwargs)
    assert counting.batches == [list(dict.fromkeys(TEXTS))]  # 3 distinct of 5, in first-seen order
    assert set(got) == set(want)
    assert all(same(want[key], got[key]) for key in want)
    assert [encoding.ids for encoding in got.encodings] == [encoding.ids for encoding in want.encodings]
    if return_tensors is None:  # each row its own list, as the tokenizer gives them
        assert got["input_ids"][0] is not got["input_ids"][1]


def test_batches_without_repeats_and_other_calls_go_to_the_tokenizer_as_they_are(processor):
    counting = Counting(processor.tokenizer)
    wrapped = DistinctTexts(counting)
    wrapped(TEXTS[1:3])  # no repeat
    wrapped(TEXTS[0])  # one text
    wrapped(TEXTS, TEXTS)  # pairs
    wrapped(TEXTS, text_pair=TEXTS)
    wrapped(["go", "go"], is_split_into_words=True)  # the words of one text
    wrapped(TEXTS, tokenizer_kwargs={"return_overflowing_tokens": True})
    wrapped(TEXTS, return_overflowing_tokens=True, truncation=True, max_length=8)
    assert counting.batches == [TEXTS[1:3], TEXTS[0], TEXTS, TEXTS, ["go", "go"], TEXTS, TEXTS]


def test_inside_the_processor_text_and_images_give_the_same_inputs(processor):
    wrapped = copy.copy(processor)
    assert tokenize_distinct_texts(wrapped)
    assert not tokenize_distinct_texts(wrapped)  # wrapped once
    images = [image((index * 40, 10, 200)) for index in range(len(TEXTS))]
    got = wrapped(text=TEXTS, images=images, padding=True, return_tensors="pt")
    want = processor(text=TEXTS, images=images, padding=True, return_tensors="pt")
    assert set(got) == set(want)
    assert all(torch.equal(got[key], want[key]) for key in want)


def test_attributes_copies_and_saves_are_the_tokenizer_s(processor, tmp_path):
    tokenizer = copy.deepcopy(processor.tokenizer)
    wrapped = DistinctTexts(tokenizer)
    wrapped.padding_side = "left"  # set on the tokenizer, as the processor's users expect
    assert tokenizer.padding_side == "left" and wrapped.pad_token_id == tokenizer.pad_token_id
    assert type(copy.deepcopy(wrapped)) is type(tokenizer) and len(wrapped) == len(tokenizer)
    processor.save_pretrained(tmp_path / "plain")
    holder = copy.copy(processor)
    tokenize_distinct_texts(holder)
    holder.save_pretrained(tmp_path / "wrapped")
    plain = sorted(path.name for path in (tmp_path / "plain").iterdir())
    assert plain == sorted(path.name for path in (tmp_path / "wrapped").iterdir())
    for name in plain:
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "wrapped" / name).read_bytes()
