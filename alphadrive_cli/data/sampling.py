"""Class-balanced sub-sampling, shared by re-balancing and by the contact sheet."""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

ItemT = TypeVar("ItemT")


def balanced_sample(items: Sequence[ItemT], key: Callable[[ItemT], Hashable], count: int, seed: int) -> list[ItemT]:
    """Up to ``count`` items taken round-robin over classes (rarest classes are kept whole first).

    Deterministic for a seed; the result keeps the items' original order.
    """
    by_class: dict[Hashable, list[int]] = {}
    for position, item in enumerate(items):
        by_class.setdefault(key(item), []).append(position)
    rng = random.Random(seed)
    pools = [rng.sample(members, len(members)) for _, members in sorted(by_class.items(), key=lambda kv: str(kv[0]))]
    keep: list[int] = []
    while len(keep) < count and any(pools):
        for pool in pools:
            if pool and len(keep) < count:
                keep.append(pool.pop())
    return [items[position] for position in sorted(keep)]
