"""Each distinct prompt of a GRPO rollout tokenized once, however often the rollout repeats it.

TRL's GRPOTrainer repeats every prompt ``num_generations`` times and runs the processor over the whole rollout
twice (for generation and for the scoring forwards), so the tokenizer reads ``2 x num_generations`` copies of each
prompt a rollout: at the `small` preset 1,024 texts of which 64 differ. :class:`DistinctTexts` wraps the processor's
tokenizer: a batch with repeated texts is tokenized once per distinct text and its rows gathered back in order,
which gives exactly what the tokenizer gives for the whole batch (padding to the longest text is padding to the
longest distinct one).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from transformers.tokenization_utils_base import BatchEncoding

from alphadrive_cli.models.stand_in import StandIn

ALONGSIDE = (  # given, the call goes to the tokenizer as it is: rows would not be one per text
    "text_pair",
    "text_target",
    "text_pair_target",
    "return_overflowing_tokens",
    "is_split_into_words",
    "tokenizer_kwargs",
)


class DistinctTexts(StandIn):
    """A tokenizer that tokenizes each distinct text of a batch once. Every other attribute, read or set, is the
    wrapped tokenizer's, and a copy or pickle of it is the wrapped tokenizer (:class:`StandIn`)."""

    def __init__(self, inner: Any) -> None:
        object.__setattr__(self, "inner", inner)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.inner, name, value)

    def __len__(self) -> int:
        return len(self.inner)

    def __call__(self, text: Any = None, *args: Any, **kwargs: Any) -> Any:
        alone = not args and not any(kwargs.get(key) for key in ALONGSIDE)  # a batch of texts and nothing beside it
        repeated = alone and isinstance(text, list) and all(isinstance(item, str) for item in text)
        rows = {item: row for row, item in enumerate(dict.fromkeys(text))} if repeated else {}
        if not repeated or len(rows) == len(text):
            return self.inner(text, *args, **kwargs)
        encoded = self.inner(list(rows), **kwargs)
        order = [rows[item] for item in text]
        return BatchEncoding(
            {key: gathered(value, order) for key, value in encoded.items()},
            encoding=[encoded.encodings[row] for row in order] if encoded.encodings else None,
            n_sequences=encoded.n_sequences,
        )


def gathered(value: Any, order: list[int]) -> Any:
    """Rows ``order`` of one tokenizer output: a tensor, an array or a list."""
    if isinstance(value, torch.Tensor):
        return value[torch.tensor(order, device=value.device)]
    if isinstance(value, np.ndarray):
        return value[np.asarray(order)]
    return [copy.copy(value[row]) for row in order]  # each row its own list, as the tokenizer returns them


def tokenize_distinct_texts(processor: Any) -> bool:
    """Have ``processor``'s tokenizer tokenize each distinct text of a batch once; False where it has none."""
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None or isinstance(tokenizer, DistinctTexts):
        return False
    processor.tokenizer = DistinctTexts(tokenizer)
    return True
