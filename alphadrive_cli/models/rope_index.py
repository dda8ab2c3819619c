"""Qwen2-VL's 3-D rotary positions for a whole batch in one host pass.

transformers' ``Qwen2VLModel.get_rope_index`` walks every sequence in Python with a handful of device ops and
host syncs each (``tolist``, ``item``): on a GPU about a millisecond a sequence, at every prefill and every
scoring or training forward, which at GRPO's batches of hundreds of sequences costs more than the small
model's forward itself. :func:`batched_rope_index` computes the same positions with numpy on the host (one
copy of the token types and mask to the host, one copy of the result back), for every token of the batch in
array operations rather than a loop over its rows (about twice as fast as a row loop in numpy on the CPU,
``python -m bench.rope_index_speed`` against transformers' own). ``tests/test_frame_cache.py`` checks it equals
the original on padded, ragged, multi-image and image-less batches.
"""

from __future__ import annotations

from types import MethodType
from typing import Any

import numpy as np
import torch
from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLModel


def batched_rope_index(
    self: Qwen2VLModel,
    input_ids: torch.LongTensor,
    mm_token_type_ids: torch.IntTensor,
    image_grid_thw: torch.LongTensor | None = None,
    video_grid_thw: torch.LongTensor | None = None,
    attention_mask: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``Qwen2VLModel.get_rope_index``'s result (position ids ``(3, batch, length)`` and deltas ``(batch, 1)``),
    computed on the host for every token of the batch at once."""
    merge = self.config.vision_config.spatial_merge_size
    types = mm_token_type_ids.detach().cpu().numpy()
    keep = (
        attention_mask.detach().cpu().numpy().astype(bool)
        if attention_mask is not None
        else np.ones(types.shape, dtype=bool)
    )
    rows = np.nonzero(keep)[0]
    kinds = types[keep]  # every row's counted tokens, row after row: 0 text, 1 image, 2 video
    first = np.ones(len(kinds), dtype=bool)  # the first counted token of its row
    first[1:] = rows[1:] != rows[:-1]
    last = np.roll(first, -1)  # the last counted token of its row
    changes = np.ones(len(kinds), dtype=bool)
    changes[1:] = kinds[1:] != kinds[:-1]
    media = kinds != 0
    opens = media & (first | changes)  # the first token of an image or a video
    closes = media & (last | np.roll(changes, -1))  # its last token
    segment = np.cumsum(opens) - 1  # which image or video a token belongs to, in order of appearance
    grids = np.zeros((int(opens.sum()), 3), dtype=np.int64)
    for kind, thw in ((1, image_grid_thw), (2, video_grid_thw)):
        of_kind = kinds[opens] == kind
        if of_kind.any():
            given = thw.detach().cpu().numpy() if thw is not None else np.zeros((0, 3), dtype=np.int64)
            if len(given) < of_kind.sum():
                raise ValueError(f"{int(of_kind.sum())} runs of media tokens of type {kind}, {len(given)} grids")
            grids[of_kind] = given[: int(of_kind.sum())]
    of_media = segment[media]  # each media token's image or video
    if (np.bincount(of_media, minlength=len(grids)) != grids.prod(axis=1) // merge**2).any():
        raise ValueError("a run of media tokens does not match its grid (adjacent images, or one cut short)")
    # each token advances the next one's position by 1 if it is text, by the larger side of its image if it closes one
    advance = (~media).astype(np.int64)
    advance[closes] = grids[segment[closes], 1:].max(axis=1) // merge
    before = np.cumsum(advance) - advance
    before -= before[first][np.cumsum(first) - 1]  # counted from the start of each row
    flat = np.repeat(before[None], 3, axis=0)
    within = np.flatnonzero(media) - np.flatnonzero(opens)[of_media]
    _, height, width = (grids[of_media] // [1, merge, merge]).T
    flat[:, media] += np.stack([within // (height * width), within // width % height, within % width])
    positions = np.zeros((3, *types.shape), dtype=np.int64)
    positions[:, keep] = flat
    deltas = np.zeros(types.shape[0], dtype=np.int64)
    if len(kinds):
        deltas[rows[first]] = (
            np.maximum.reduceat(flat.max(axis=0), np.flatnonzero(first)) + 1 - keep.sum(axis=1)[rows[first]]
        )
    device = input_ids.device
    return (
        torch.from_numpy(positions).to(device=device, dtype=input_ids.dtype),
        torch.from_numpy(deltas).to(device).unsqueeze(1),
    )


def use_batched_rope_index(model: torch.nn.Module) -> int:
    """Give every Qwen2-VL language-and-vision core in ``model`` :func:`batched_rope_index`; returns how many.
    Other families (Qwen2.5-VL computes time positions differently) keep their own."""
    cores = [module for module in model.modules() if type(module) is Qwen2VLModel]
    for core in cores:
        core.get_rope_index = MethodType(batched_rope_index, core)
    return len(cores)
