"""Each distinct image of a batch through the vision tower once.

GRPO repeats every frame ``num_generations`` times in a batch, so every forward (prefill, old and reference
log-probabilities, the training pass and its backward) encodes the same image that many times.
:func:`use_distinct_image_features` makes Qwen-VL's ``get_image_features`` encode the distinct images only
and hand each copy its image's features: the same values, and in training the same gradients (a feature
used k times collects k contributions), with 1/k of the vision work. Duplicates are found exactly: a
fingerprint of each image's patches proposes them, an element-wise comparison confirms them (one host sync
each), and a fingerprint collision falls back to encoding everything.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import accumulate
from typing import Any

import torch
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel
from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLModel


def distinct_images(pixel_values: torch.Tensor, sizes: list[int]) -> tuple[list[int], list[int]] | None:
    """(indices of the first copy of each distinct image, each image's index into those), or None when every
    image is distinct. Images are the consecutive blocks of ``sizes`` rows of ``pixel_values``."""
    if len(sizes) < 2:
        return None
    rows = pixel_values.detach().double().sum(dim=1)  # row reductions: the same bits for the same rows
    if len(set(sizes)) == 1:
        blocks = rows.view(len(sizes), sizes[0])
        fingerprint = torch.stack([blocks.sum(dim=1), (blocks * _wave(sizes[0], rows)).sum(dim=1)], dim=1)
    else:
        fingerprint = torch.stack(
            [torch.stack([block.sum(), (block * _wave(len(block), rows)).sum()]) for block in torch.split(rows, sizes)]
        )
    keys = [(size, *values) for size, values in zip(sizes, fingerprint.tolist(), strict=True)]
    first: dict[tuple[float, ...], int] = {}
    representative = [first.setdefault(key, index) for index, key in enumerate(keys)]
    if len(first) == len(sizes):
        return None
    copies = [index for index, rep in enumerate(representative) if rep != index]
    starts = [0, *accumulate(sizes)]

    def rows_of(images: list[int]) -> torch.Tensor:
        return torch.cat([torch.arange(starts[i], starts[i] + sizes[i]) for i in images]).to(pixel_values.device)

    if not torch.equal(pixel_values[rows_of(copies)], pixel_values[rows_of([representative[i] for i in copies])]):
        return None  # a fingerprint collision: encode every image
    kept = sorted(first.values())
    slot = {image: position for position, image in enumerate(kept)}
    return kept, [slot[rep] for rep in representative]


def _wave(length: int, like: torch.Tensor) -> torch.Tensor:
    """Position weights that make a fingerprint depend on the order of an image's patches."""
    return torch.cos(torch.arange(length, device=like.device, dtype=like.dtype) * 0.618)


def distinct_image_features(original: Callable[..., Any]) -> Callable[..., Any]:
    """``get_image_features`` (bound) made to encode each distinct image once; its ``pooler_output`` (one
    tensor of merged features per image) is what the model's forward reads."""

    def get_image_features(pixel_values: torch.Tensor, image_grid_thw: torch.Tensor, **kwargs: Any) -> Any:
        sizes = image_grid_thw.prod(-1).tolist()  # one host sync, for the search and the split
        found = distinct_images(pixel_values, sizes)
        if found is None:
            return original(pixel_values, image_grid_thw, **kwargs)
        kept, inverse = found
        blocks = torch.split(pixel_values, sizes)
        outputs = original(torch.cat([blocks[i] for i in kept]), image_grid_thw[kept], **kwargs)
        features = outputs.pooler_output
        outputs.pooler_output = tuple(features[slot] for slot in inverse)
        return outputs

    return get_image_features


def use_distinct_image_features(model: torch.nn.Module) -> int:
    """Give every Qwen-VL core (language model and vision tower) in ``model`` the deduplicating
    ``get_image_features``; returns how many."""
    cores = [module for module in model.modules() if isinstance(module, (Qwen2VLModel, Qwen2_5_VLModel))]
    for core in cores:
        if "get_image_features" not in core.__dict__:
            core.get_image_features = distinct_image_features(core.get_image_features)
    return len(cores)
