"""The speed caches of GRPO's frames (``alphadrive_cli.models.frame_cache``) and Qwen2-VL's batched rope index
(``alphadrive_cli.models.rope_index``) give exactly what the uncached / per-sequence code gives."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLModel

from alphadrive_cli.models.frame_cache import FRAME_KEY, DecodedFrames, PatchedImages, assemble_on, frame_key
from alphadrive_cli.models.rope_index import batched_rope_index, use_batched_rope_index
from tests.support.tiny_inputs import IMAGE_BLOCK, image, prompt, tiny


@pytest.fixture(scope="module")
def model_and_processor():
    return tiny()


def test_decoded_frames_are_decoded_once_and_keyed_by_path(tmp_path):
    paths = []
    for index, color in enumerate([(1, 2, 3), (90, 10, 200), (5, 5, 5)]):
        path = tmp_path / f"f{index}.png"
        image(color).save(path)
        paths.append(str(path))
    frames = DecodedFrames(capacity=2)
    first = frames(paths[0])
    assert frames(paths[0]) is first  # a hit
    assert first.info[FRAME_KEY] == paths[0] and frame_key(copy.deepcopy(first)) == paths[0]
    assert np.array_equal(np.asarray(first), np.asarray(image((1, 2, 3))))
    frames(paths[1]), frames(paths[2])  # capacity 2: the least recently used one goes
    assert frames(paths[0]) is not first


def test_frame_key_of_undecorated_images_is_their_content():
    assert frame_key(image((1, 2, 3))) == frame_key(image((1, 2, 3)))
    assert frame_key(image((1, 2, 3))) != frame_key(image((1, 2, 4)))
    assert frame_key(image(size=56)) != frame_key(image())


@pytest.mark.parametrize("return_tensors", ["pt", None])
def test_patched_images_equal_the_processor_and_patch_each_image_once(model_and_processor, return_tensors):
    _, processor = model_and_processor
    inner = processor.image_processor
    calls = []

    class Counting:
        def __call__(self, images, **kwargs):
            calls.append(len(images))
            return inner(images, **kwargs)

        def __getattr__(self, name):
            return getattr(inner, name)

    cached = PatchedImages(Counting(), capacity=8)
    a, b, c = image((1, 2, 3)), image((90, 10, 200), size=84), image((5, 5, 5))
    batch = [[a], [copy.deepcopy(b)], [a], [b], [c], [a]]  # nested per sample, as TRL passes them
    expected = inner(batch, return_tensors=return_tensors)
    got = cached(batch, return_tensors=return_tensors)
    assert calls == [3]
    again = cached([[c], [a]], return_tensors=return_tensors)
    assert calls == [3]  # nothing new to patch
    for key in ("pixel_values", "image_grid_thw"):
        assert type(got[key]) is type(expected[key])
        assert np.array_equal(np.asarray(got[key]), np.asarray(expected[key]))
    assert np.array_equal(np.asarray(again["pixel_values"]), np.asarray(inner([c, a])["pixel_values"]))
    assert cached.merge_size == inner.merge_size  # every other attribute is the wrapped processor's


def test_the_same_batch_twice_in_a_row_is_assembled_once(model_and_processor):
    """TRL asks for a rollout's images twice in a row (without tensors, then as PyTorch tensors): the second call
    gets the first call's patches, not another copy, and still equals the processor; another batch is assembled
    anew, and the one before it is left as it was."""
    _, processor = model_and_processor
    inner = processor.image_processor
    cached = PatchedImages(inner, capacity=8)
    a, b = image((1, 2, 3)), image((90, 10, 200), size=84)
    batch = [[a], [a], [b], [b]]
    first = cached(batch)
    second = cached(batch, return_tensors="pt")
    assert np.shares_memory(second["pixel_values"].numpy(), first["pixel_values"])
    assert np.array_equal(second["pixel_values"].numpy(), np.asarray(inner(batch)["pixel_values"]))
    before = first["pixel_values"].copy()
    other = cached([[b], [a]], return_tensors="pt")
    assert not np.shares_memory(other["pixel_values"].numpy(), first["pixel_values"])
    assert np.array_equal(other["pixel_values"].numpy(), np.asarray(inner([b, a])["pixel_values"]))
    assert np.array_equal(first["pixel_values"], before)


def _moved(cached: PatchedImages) -> set[str]:
    """The images whose cached patches are tensors on the device."""
    return {key for (key, _), (pixels, _) in cached._patches.items() if isinstance(pixels, torch.Tensor)}


@pytest.mark.parametrize("return_tensors", [None, "pt"])
def test_batches_assembled_on_the_device_equal_the_processor_and_move_each_image_once(
    model_and_processor, return_tensors
):
    """Assembled on the training device, the pixel values are a tensor there whatever the caller asks for (TRL uses a
    tensor as it is and copies anything else twice on the host), equal to the processor's; each distinct image is
    copied there once, the same batch again is the same tensor, and images that leave the cache leave the device."""
    _, processor = model_and_processor
    inner = processor.image_processor
    wrapped = copy.copy(processor)
    wrapped.image_processor = cached = PatchedImages(inner, capacity=2)
    assert assemble_on(wrapped, torch.device("cpu"))
    a, b, c = image((1, 2, 3)), image((90, 10, 200), size=84), image((5, 5, 5))
    batch = [[a], [a], [b], [b], [a]]
    got = cached(batch, return_tensors=return_tensors)
    assert isinstance(got["pixel_values"], torch.Tensor) and got["pixel_values"].device == torch.device("cpu")
    assert np.array_equal(got["pixel_values"].numpy(), np.asarray(inner(batch)["pixel_values"]))
    assert np.array_equal(np.asarray(got["image_grid_thw"]), np.asarray(inner(batch)["image_grid_thw"]))
    assert _moved(cached) == {frame_key(a), frame_key(b)}  # once each
    assert cached(batch, return_tensors="pt")["pixel_values"] is got["pixel_values"]
    cached([[c], [c]], return_tensors=return_tensors)
    assert _moved(cached) == {frame_key(a), frame_key(c)}  # capacity 2: b, the least recently used, went
    assert not assemble_on(processor.tokenizer, torch.device("cpu"))  # nothing to assemble there


def test_patched_images_inside_the_processor(model_and_processor):
    _, processor = model_and_processor
    texts, images = [prompt("Go?"), prompt("Stop now")], [image(), image((5, 90, 200))]
    expected = processor(text=texts, images=images, return_tensors="pt", padding=True)
    wrapped = copy.copy(processor)
    wrapped.image_processor = PatchedImages(processor.image_processor, capacity=4)
    got = wrapped(text=texts, images=images, return_tensors="pt", padding=True)
    assert set(got) == set(expected)
    for key in expected:
        assert torch.equal(got[key], expected[key])


def _types_and_masks(processor, texts, images, padding_side):
    processor.tokenizer.padding_side = padding_side
    try:
        batch = processor(text=texts, images=images, return_tensors="pt", padding=True)
    finally:
        processor.tokenizer.padding_side = "left"
    return batch


@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("with_mask", [True, False])
def test_batched_rope_index_equals_transformers(model_and_processor, padding_side, with_mask):
    model, processor = model_and_processor
    core = model.model
    two_images = f"<|im_start|>user\n{IMAGE_BLOCK}front, then top-down {IMAGE_BLOCK}go?<|im_end|>\n"
    texts = [prompt("Go?"), two_images, prompt("The lead vehicle is close and slower; what now?")]
    images = [[image()], [image((5, 90, 200), size=84), image((50, 50, 50))], [image((1, 2, 3), size=56)]]
    batch = _types_and_masks(processor, texts, images, padding_side)
    completion = torch.randint(10, 100, (3, 7))
    input_ids = torch.cat([batch["input_ids"], completion], dim=1)
    types = torch.cat([batch["mm_token_type_ids"], torch.zeros_like(completion)], dim=1)
    mask = torch.cat([batch["attention_mask"], torch.ones_like(completion)], dim=1) if with_mask else None
    if not with_mask:  # without a mask every position counts: only unpadded batches make sense
        input_ids, types = input_ids[1:2], types[1:2]
    kwargs = dict(mm_token_type_ids=types, image_grid_thw=batch["image_grid_thw"], attention_mask=mask)
    if not with_mask:
        kwargs["image_grid_thw"] = batch["image_grid_thw"][1:3]
    expected = Qwen2VLModel.get_rope_index(core, input_ids, **kwargs)
    got = batched_rope_index(core, input_ids, **kwargs)
    for ours, theirs in zip(got, expected, strict=True):
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        assert torch.equal(ours, theirs)


def test_batched_rope_index_equals_transformers_on_a_ragged_batch(model_and_processor):
    """Eight rows of zero to three images of different sizes, prompts padded on the left and completions of
    different lengths padded on the right, as GRPO's scoring forwards see them."""
    model, processor = model_and_processor
    generator = torch.Generator().manual_seed(0)
    texts, images = [], []
    for row in range(8):
        count = row % 4
        sizes = [28 * int(torch.randint(1, 5, (1,), generator=generator)) for _ in range(count)]
        texts.append(f"<|im_start|>user\n{IMAGE_BLOCK * count}row {row}{' go' * row}?<|im_end|>\n")
        images.append([image((row, 20 * index, 90), size=size) for index, size in enumerate(sizes)])
    with_images = [index for index, row in enumerate(images) if row]
    batch = _types_and_masks(processor, [texts[i] for i in with_images], [images[i] for i in with_images], "left")
    text_only = _types_and_masks(processor, [t for i, t in enumerate(texts) if i not in with_images], None, "left")
    width = max(batch["input_ids"].shape[1], text_only["input_ids"].shape[1])

    def left_padded(tensor):
        return torch.nn.functional.pad(tensor, (width - tensor.shape[1], 0))

    prompts = {
        key: torch.cat([left_padded(batch[key]), left_padded(text_only[key])])
        for key in ("input_ids", "attention_mask", "mm_token_type_ids")
    }
    lengths = torch.randint(1, 9, (8,), generator=generator)
    completion_mask = (torch.arange(8)[None] < lengths[:, None]).long()
    input_ids = torch.cat([prompts["input_ids"], torch.randint(10, 100, (8, 8), generator=generator)], dim=1)
    types = torch.cat([prompts["mm_token_type_ids"], torch.zeros(8, 8, dtype=torch.long)], dim=1)
    mask = torch.cat([prompts["attention_mask"], completion_mask], dim=1)
    assert batch["image_grid_thw"].shape[0] == sum(len(row) for row in images) == 12
    kwargs = dict(mm_token_type_ids=types, image_grid_thw=batch["image_grid_thw"], attention_mask=mask)
    expected = Qwen2VLModel.get_rope_index(model.model, input_ids, **kwargs)
    got = batched_rope_index(model.model, input_ids, **kwargs)
    assert all(torch.equal(ours, theirs) for ours, theirs in zip(got, expected, strict=True))


def test_batched_rope_index_refuses_media_runs_that_do_not_match_their_grids(model_and_processor):
    """Two images with no token between them read as one run: the positions would be silently wrong."""
    model, _ = model_and_processor
    types = torch.tensor([[0, 1, 1, 1, 1, 0]])
    grids = torch.tensor([[1, 2, 4], [1, 2, 4]])  # two images of 2 tokens each after the 2 x 2 merge
    with pytest.raises(ValueError, match="does not match its grid"):
        batched_rope_index(model.model, torch.zeros_like(types), types, image_grid_thw=grids)
    with pytest.raises(ValueError, match="2 runs of media tokens of type 1, 1 grids"):
        batched_rope_index(
            model.model,
            torch.zeros(1, 7, dtype=torch.long),
            torch.tensor([[0, 1, 1, 0, 1, 1, 0]]),
            image_grid_thw=grids[:1],
        )


def test_text_only_rows_and_install(model_and_processor):
    model, _ = model_and_processor
    input_ids = torch.randint(10, 100, (2, 9))
    types = torch.zeros_like(input_ids)
    mask = torch.ones_like(input_ids)
    mask[0, :3] = 0
    expected = Qwen2VLModel.get_rope_index(model.model, input_ids, types, attention_mask=mask)
    got = batched_rope_index(model.model, input_ids, types, attention_mask=mask)
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    patched = copy.deepcopy(model)
    assert use_batched_rope_index(patched) == 1
    assert patched.model.get_rope_index.__func__ is batched_rope_index
    assert use_batched_rope_index(tiny("qwen2_5_vl")[0]) == 0  # other families keep their own


def test_a_processor_holding_patched_images_saves_what_it_would_without(model_and_processor, tmp_path):
    _, processor = model_and_processor
    processor.save_pretrained(tmp_path / "plain")
    wrapped = copy.copy(processor)
    wrapped.image_processor = PatchedImages(processor.image_processor, capacity=4)
    wrapped.save_pretrained(tmp_path / "wrapped")
    plain = sorted(path.name for path in (tmp_path / "plain").iterdir())
    assert plain == sorted(path.name for path in (tmp_path / "wrapped").iterdir())
    for name in plain:
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "wrapped" / name).read_bytes()


def test_grpo_prompt_rows_decode_each_frame_once(tmp_path):
    from alphadrive_cli.actions import DEFAULT_VOCABULARY
    from alphadrive_cli.artifacts.store import open_artifact
    from alphadrive_cli.data.records import iter_split
    from alphadrive_cli.prompts import load_prompt
    from alphadrive_cli.stages.grpo import prompt_rows
    from tests.support.labelled_data import make_labelled_data

    data = open_artifact(make_labelled_data(tmp_path, [("KEEP", "STRAIGHT"), ("STOP", "STRAIGHT")], {"train": [0, 1]}))
    records = list(iter_split(data, "train", DEFAULT_VOCABULARY))
    rows = prompt_rows(records, data.path, load_prompt("student-v1"), DEFAULT_VOCABULARY, DecodedFrames(capacity=4))
    first = rows[[0, 1, 0, 1]]["images"]  # TRL's sampler repeats each frame; its loader re-reads each batch
    again = rows[[1, 0]]["images"]
    assert first[0][0] is first[2][0] is again[1][0] and first[1][0] is again[0][0]
    assert first[0][0].info[FRAME_KEY] == str(data.path / records[0].images[0])
    assert np.array_equal(np.asarray(first[1][0]), np.full((32, 32, 3), 30, dtype=np.uint8))
