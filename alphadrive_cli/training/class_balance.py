"""Levers against a rare class in GRPO (docs/grpo.md#rare-classes): class-balanced prompts, inverse-frequency weights.

- ``prompt_sampling: balanced`` replaces the train split by a same-sized draw (with replacement, seeded)
  in which every joint (speed, path) class present is equally likely; each drawn copy of a frame gets its
  own group id (``<id>#<k>``), so two copies in one batch are never scored as one group.
- ``action_weighting: inverse_frequency`` sets each action's weight to ``n / (k · n_action)`` over its head's
  train labels (k: the head's classes present), clipped to [1/4, 4]: the mean weight over the split is
  about 1, a class half as frequent weighs twice as much. With ``scale_rewards: group`` a weight that depends
  only on the true action is divided out by the group's std, so this lever needs ``batch`` or ``none``.
  ``inverse_sqrt_frequency`` takes the square root of that weight (before clipping), a milder push: with
  ``inverse_frequency`` a class of 7% against a majority of 50% is worth 7 times as much, with the root 2.7 times.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from alphadrive_cli.actions import ActionVocabulary
from alphadrive_cli.data.records import Record

WEIGHT_RANGE = (0.25, 4.0)
WEIGHTING_POWERS = {"inverse_frequency": 1.0, "inverse_sqrt_frequency": 0.5}  # action_weighting -> the weight's power


def balanced_prompts(records: Sequence[Record], seed: int) -> list[Record]:
    """``len(records)`` records drawn with every joint (speed, path) class equally likely; copies renamed."""
    by_class: dict[tuple[str, str], list[Record]] = {}
    for record in records:
        by_class.setdefault((record.speed_action, record.path_action), []).append(record)
    classes = sorted(by_class)
    rng = random.Random(seed)
    copies: Counter[str] = Counter()
    drawn = []
    for _ in range(len(records)):
        record = rng.choice(by_class[rng.choice(classes)])
        copies[record.id] += 1
        drawn.append(record.model_copy(update={"id": f"{record.id}#{copies[record.id]}"}))
    return drawn


def inverse_frequency_weights(
    records: Sequence[Record], vocabulary: ActionVocabulary, power: float = 1.0
) -> dict[str, float]:
    """Each action's weight ``(n / (k · n_action)) ** power`` within its head, clipped to WEIGHT_RANGE (actions
    absent from the split: the largest)."""
    weights: dict[str, float] = {}
    low, high = WEIGHT_RANGE
    for actions, labels in (
        (vocabulary.speed, [record.speed_action for record in records]),
        (vocabulary.path, [record.path_action for record in records]),
    ):
        counts = Counter(labels)
        present = [action for action in actions if counts[action]]
        for action in actions:
            raw = (len(labels) / (len(present) * counts[action])) ** power if counts[action] else high
            weights[action] = round(min(high, max(low, raw)), 4)
    return weights
