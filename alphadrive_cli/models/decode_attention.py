"""Decode attention for grouped-query models that reads the KV cache once per KV head ("folded GQA").

transformers' SDPA path expands grouped keys and values to every query head whenever there is a mask
(always, with a static cache), which for Qwen2-VL-2B (12 query heads, 2 KV heads) moves 6x the cache per
decoding step. :func:`folded_gqa_attention` instead treats the query heads of a KV head as that many query
positions of one head: the same result, no copy. Only single-token steps take it; prefill and training
(several query tokens) run transformers' SDPA function unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

FOLDED_GQA = "sdpa_folded_gqa"


def folded_gqa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """SDPA for one query token without repeating keys and values per query head; else transformers' SDPA.

    ``query`` is (batch, heads, length, dim), ``key``/``value`` (batch, kv_heads, kv_length, dim) and the mask
    (batch, 1, length, kv_length) or None; returns (batch, length, heads, dim) like ``sdpa_attention_forward``.
    """
    batch, heads, length, dim = query.shape
    groups = key.shape[1]
    if length != 1 or groups == heads:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    out = torch.nn.functional.scaled_dot_product_attention(
        query.reshape(batch, groups, heads // groups, dim),
        key,
        value,
        attn_mask=attention_mask,
        scale=scaling,
        dropout_p=dropout if module.training else 0.0,
    )
    return out.reshape(batch, 1, heads, dim), None


def use_folded_gqa(model: PreTrainedModel) -> None:
    """Switch the language model's attention to :func:`folded_gqa_attention`.

    The name is registered with SDPA's mask function too: transformers builds no mask at all for an attention
    name without one, and a static cache would then attend to its empty slots.
    """
    AttentionInterface.register(FOLDED_GQA, folded_gqa_attention)
    AttentionMaskInterface.register(FOLDED_GQA, sdpa_mask)
    model.set_attn_implementation({"text_config": FOLDED_GQA})
