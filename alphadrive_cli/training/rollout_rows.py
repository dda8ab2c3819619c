"""GRPO's prompt rows, read from their table once a rollout.

TRL's loader batch is a whole rollout's prompt rows (``per_device_batch_size x steps_per_generation``), and its
sampler yields each rollout's indices ``steps_per_generation x num_iterations`` times in a row, one batch per
optimiser step; TRL uses the batch only at the rollout's first step. :class:`RolloutRows` reads such a batch from
its table once and gives the same rows back for the repeats that follow, instead of reading and formatting every
row again at every step.
"""

from __future__ import annotations

from typing import Any

import datasets


class RolloutRows(datasets.Dataset):
    """A ``datasets.Dataset`` whose batch asked for again with the same indices, right after it was read, is
    the rows read the first time, at most ``repeats - 1`` times in a row (``repeats`` 1: every batch is read)."""

    repeats: int = 1
    _last: tuple[list[Any], list[dict[str, Any]]] | None = None
    _served: int = 0

    def __getitems__(self, keys: list[Any]) -> list[dict[str, Any]]:
        if self._last is not None and self._last[0] == list(keys) and self._served < self.repeats - 1:
            self._served += 1
            return self._last[1]
        rows = super().__getitems__(keys)
        self._last, self._served = (list(keys), rows), 0
        return rows
