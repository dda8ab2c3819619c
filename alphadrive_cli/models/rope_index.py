"""Qwen2-VL's 3-D rotary positions for a whole batch in one host pass.

transformers' ``Qwen2VLModel.get_rope_index`` walks every sequence in Python with a handful of device ops and
host syncs each (``tolist``, ``item``): on a GPU about a millisecond a sequence, at every prefill and every
scoring or training forward, which at GRPO's batches of hundreds of sequences costs more than the small
model's forward itself. :func:`batched_rope_index` computes the same positions with numpy on the host (one
copy of the token types and mask to the host, one copy of the result back); ``tests/test_rope_index.py``
checks it equals the original on padded, multi-image and image-less batches.
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
    computed on the host."""
    merge = self.config.vision_config.spatial_merge_size
    types = mm_token_type_ids.detach().cpu().numpy()
    keep = attention_mask.detach().cpu().numpy().astype(bool) if attention_mask is not None else None
    grids = {
        1: iter(image_grid_thw.tolist()) if image_grid_thw is not None else None,
        2: iter(video_grid_thw.tolist()) if video_grid_thw is not None else None,
    }
    positions = np.zeros((3, *types.shape), dtype=np.int64)
    deltas = []
    for row in range(types.shape[0]):
        valid = np.flatnonzero(keep[row]) if keep is not None else np.arange(types.shape[1])
        row_types = types[row, valid]
        bounds = [0, *(np.flatnonzero(np.diff(row_types)) + 1).tolist(), len(row_types)]
        pieces, current = [], 0
        for start, end in zip(bounds, bounds[1:], strict=False):
            if row_types[start] == 0:
                pieces.append(np.broadcast_to(np.arange(current, current + end - start), (3, end - start)))
                current += end - start
            else:
                t, h, w = next(grids[int(row_types[start])])
                grid = np.stack(np.meshgrid(np.arange(t), np.arange(h // merge), np.arange(w // merge), indexing="ij"))
                pieces.append(grid.reshape(3, -1) + current)
                current += max(h, w) // merge
        row_positions = np.concatenate(pieces, axis=1) if pieces else np.zeros((3, 0), dtype=np.int64)
        positions[:, row, valid] = row_positions
        deltas.append(int(row_positions.max()) + 1 - len(valid) if len(valid) else 0)
    device = input_ids.device
    return (
        torch.from_numpy(positions).to(device=device, dtype=input_ids.dtype),
        torch.tensor(deltas, device=device).unsqueeze(1),
    )


def use_batched_rope_index(model: torch.nn.Module) -> int:
    """Give every Qwen2-VL language-and-vision core in ``model`` :func:`batched_rope_index`; returns how many.
    Other families (Qwen2.5-VL computes time positions differently) keep their own."""
    cores = [module for module in model.modules() if type(module) is Qwen2VLModel]
    for core in cores:
        core.get_rope_index = MethodType(batched_rope_index, core)
    return len(cores)
