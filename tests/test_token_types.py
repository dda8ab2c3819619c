"""``alphadrive_cli.models.token_types``: each batch's ``mm_token_type_ids`` built in one pass are the values
transformers builds row by row, as a tensor for a tensor batch and as lists for a ragged one."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from transformers import ProcessorMixin

from alphadrive_cli.models.token_types import ModalityTypes, type_tokens_per_batch
from tests.support.tiny_inputs import image, prompt, tiny

TEXTS = [prompt("Go?"), prompt("Stop now, the road is blocked"), prompt("Go?"), prompt("Turn")]
IDS = {"image_token_ids": [7, 9], "video_token_ids": [11], "audio_token_ids": [None]}


@pytest.fixture(scope="module")
def processor():
    return tiny()[1]


def row_by_row(input_ids):
    """What transformers' processors give: a stand-in holding the same token ids, their own method."""
    holder = type("Holder", (), dict(IDS))()
    return ProcessorMixin.create_mm_token_type_ids(holder, input_ids)


def equal(a, b) -> bool:
    if isinstance(a, torch.Tensor | np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return type(a) is type(b) and a == b


def test_ragged_lists_and_padded_tensors_give_transformers_values() -> None:
    ragged = [[1, 7, 9, 7, 2], [11, 11, 3], [], [9]]
    assert ModalityTypes(IDS)(ragged) == row_by_row(ragged) == [[0, 1, 1, 1, 0], [2, 2, 0], [], [1]]
    padded = torch.tensor([[0, 0, 7, 9, 11, 5], [4, 7, 7, 7, 7, 0]])
    got = ModalityTypes(IDS)(padded)
    assert isinstance(got, torch.Tensor) and got.dtype == padded.dtype
    assert got.tolist() == row_by_row(padded)
    assert ModalityTypes(IDS)(list(padded)) == row_by_row(padded)  # a list of tensor rows


def test_inside_the_processor_the_batch_is_the_same_and_the_saved_files_too(processor, tmp_path) -> None:
    typed = copy.copy(processor)
    assert type_tokens_per_batch(typed) and isinstance(typed.create_mm_token_type_ids, ModalityTypes)
    assert not isinstance(processor.create_mm_token_type_ids, ModalityTypes)  # the copy's own, not the original's
    images = [image((index * 40, 10, 200)) for index in range(len(TEXTS))]
    for tensors in ("pt", None):
        kwargs = {"padding": tensors is not None, "return_tensors": tensors, "return_mm_token_type_ids": True}
        got = typed(text=TEXTS, images=images, **kwargs)
        want = processor(text=TEXTS, images=images, **kwargs)
        assert set(got) == set(want) and "mm_token_type_ids" in got
        assert all(equal(got[key], want[key]) for key in want)
        assert isinstance(got["mm_token_type_ids"], torch.Tensor if tensors else list)
    assert 1 in got["mm_token_type_ids"][0]  # the image's tokens are typed as such
    processor.save_pretrained(tmp_path / "plain")
    typed.save_pretrained(tmp_path / "typed")
    plain = sorted(path.name for path in (tmp_path / "plain").iterdir())
    assert plain == sorted(path.name for path in (tmp_path / "typed").iterdir())
    assert all((tmp_path / "plain" / n).read_bytes() == (tmp_path / "typed" / n).read_bytes() for n in plain)
    assert type(copy.deepcopy(typed)) is type(processor)


def test_a_processor_without_media_tokens_is_left_alone() -> None:
    assert not type_tokens_per_batch(object())
