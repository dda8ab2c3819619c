"""Qwen-VL's vision attention over every image of a batch in one call.

Outside flash attention, transformers' Qwen2-VL and Qwen2.5-VL vision blocks split the patches of a batch by
image (``cu_seqlens``, read back to the host in every block) and run one attention call per image per block:
64 frames through a 32-block tower are 2,048 small calls and 32 host syncs per forward. Our frames all have
one size, so the images of a batch are equally long: :func:`use_batched_vision_attention` makes those blocks
stack the images as a batch and run one ``scaled_dot_product_attention`` per block (the same values; the
lengths read from the device once per forward). Batches of unequal images, and any other attention
implementation, go through transformers' own code.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MethodType
from typing import Any

import torch
from torch.nn import functional
from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen2_5_vl
from transformers.models.qwen2_vl import modeling_qwen2_vl as qwen2_vl

# Vision attention class -> its model file's rotary embedding, applied exactly as its own forward applies it
ROTARY: dict[type, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {
    qwen2_vl.VisionAttention: qwen2_vl.apply_rotary_pos_emb_vision,
    qwen2_5_vl.Qwen2_5_VLVisionAttention: qwen2_5_vl.apply_rotary_pos_emb_vision,
}


class CommonLength:
    """The length shared by every sequence of a ``cu_seqlens`` tensor (None when they differ), read from the
    device once per tensor: a tower hands the same tensor to each of its blocks (Qwen2.5-VL: two, one for its
    window blocks)."""

    def __init__(self) -> None:
        self._seen: list[tuple[torch.Tensor, int | None]] = []

    def __call__(self, cu_seqlens: torch.Tensor) -> int | None:
        for tensor, length in self._seen:
            if tensor is cu_seqlens:
                return length
        lengths = set((cu_seqlens[1:] - cu_seqlens[:-1]).tolist())
        length = lengths.pop() if len(lengths) == 1 else None
        self._seen = [*self._seen[-1:], (cu_seqlens, length)]  # this forward's tensors only
        return length


def batched_forward(
    self: torch.nn.Module,
    hidden_states: torch.Tensor,
    cu_seqlens: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """A vision attention block's forward (bound to the block), attending over equally long images in one call;
    anything else goes through the block's own forward."""
    length = self.common_length(cu_seqlens) if self.config._attn_implementation == "sdpa" else None
    if length is None or position_embeddings is None or (self.training and self.attention_dropout):
        return type(self).forward(self, hidden_states, cu_seqlens, position_embeddings=position_embeddings, **kwargs)
    patches, heads = hidden_states.shape[0], self.num_heads
    query, key, value = self.qkv(hidden_states).reshape(patches, 3, heads, -1).permute(1, 0, 2, 3).unbind(0)
    query, key = ROTARY[type(self)](query, key, *position_embeddings)
    images = patches // length
    query, key, value = (part.reshape(images, length, heads, -1).transpose(1, 2) for part in (query, key, value))
    output = functional.scaled_dot_product_attention(query, key, value, scale=self.scaling)
    return self.proj(output.transpose(1, 2).reshape(patches, -1))


def use_batched_vision_attention(model: torch.nn.Module) -> int:
    """Give every Qwen-VL vision attention block in ``model`` the batched forward; returns how many. Bound as a
    method and holding its length cache, a block keeps it through ``copy.deepcopy``."""
    blocks = [module for module in model.modules() if type(module) in ROTARY and "forward" not in module.__dict__]
    common_length = CommonLength()
    for block in blocks:
        block.common_length = common_length
        block.forward = MethodType(batched_forward, block)
    return len(blocks)
