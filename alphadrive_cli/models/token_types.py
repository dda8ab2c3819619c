"""Each token's modality (text, image, video, audio) for a whole batch at once.

transformers' processors build ``mm_token_type_ids`` row by row: a list per row, three ``np.isin`` on it, and
back to a list, which the batch then turns into a tensor again. GRPO's trainer runs the processor over each
rollout's 512 prompts twice, so that is about 3,000 small NumPy calls a rollout (23 ms a call of 512 rows on this
repository's CPU, 8 ms in one pass; docs/benchmarks.md, row 18). :class:`ModalityTypes` gives the same values from
one pass over the batch: a padded tensor batch stays a tensor, a ragged list batch comes back as lists.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

TYPE_CODES = (("image_token_ids", 1), ("video_token_ids", 2), ("audio_token_ids", 3))  # 0: text


class ModalityTypes:
    """``create_mm_token_type_ids`` for a processor whose media token ids are ``ids`` (name: list of ids)."""

    def __init__(self, ids: dict[str, list[int]]) -> None:
        # a processor without a modality's token lists None for it, which matches no token
        self.ids = {name: [int(t) for t in ids.get(name) or () if t is not None] for name, _ in TYPE_CODES}

    def __call__(self, input_ids: Any) -> Any:
        if isinstance(input_ids, torch.Tensor):
            return self._typed(input_ids, lambda tokens, ids: torch.isin(tokens, torch.tensor(ids).to(tokens)))
        rows = [row.tolist() if not isinstance(row, list) else row for row in input_ids]
        lengths = [len(row) for row in rows]
        flat = np.fromiter((token for row in rows for token in row), dtype=np.int64, count=sum(lengths))
        types = self._typed(flat, np.isin).tolist()
        ends = np.cumsum(lengths).tolist()
        return [types[end - length : end] for end, length in zip(ends, lengths, strict=True)]

    def _typed(self, tokens: Any, isin: Any) -> Any:
        types = tokens.new_zeros(tokens.shape) if isinstance(tokens, torch.Tensor) else np.zeros_like(tokens)
        for name, code in TYPE_CODES:
            if self.ids[name]:
                types[isin(tokens, self.ids[name])] = code
        return types


def type_tokens_per_batch(processor: Any) -> bool:
    """Have ``processor`` build each batch's ``mm_token_type_ids`` in one pass; False where it builds none.
    The processor saves as before: the replacement is not one of the settings it writes out."""
    if not callable(getattr(processor, "create_mm_token_type_ids", None)) or not hasattr(processor, "image_token_ids"):
        return False
    processor.create_mm_token_type_ids = ModalityTypes({name: getattr(processor, name, None) for name, _ in TYPE_CODES})
    return True
