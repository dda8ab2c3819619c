"""bench/pooled_gain.py: the mean gain of several RL runs over their SFT starts, frames resampled per frame set."""

from __future__ import annotations

import pytest

from alphadrive_cli.evaluation.metrics import paired_difference_ci
from bench.pooled_gain import pooled_gain


def outcomes(rights: str) -> dict[str, bool]:
    """Frame ``f<i>`` (zero-padded, so sorted ids keep the order) right where ``rights[i]`` is 1."""
    return {f"f{index:03d}": flag == "1" for index, flag in enumerate(rights)}


def test_the_pooled_gain_is_the_mean_of_the_runs_gains() -> None:
    first = (outcomes("0000011111"), outcomes("0001111111"))  # +0.2
    second = (outcomes("0000011111"), outcomes("0000001111"))  # -0.1, on the same frames
    other = (outcomes("00000"), outcomes("11111"))  # +1.0, on other frames
    pooled = pooled_gain([first, second, other])
    assert pooled["gain"] == pytest.approx((0.2 - 0.1 + 1.0) / 3, abs=1e-4)
    assert pooled["pairs"] == 3 and pooled["frame_sets"] == 2
    assert pooled["low"] <= pooled["gain"] <= pooled["high"]


def test_one_pair_pools_to_its_own_paired_interval() -> None:
    start, run = outcomes("0101010101" * 4), outcomes("1101110101" * 4)
    pooled = pooled_gain([(start, run)])
    single = paired_difference_ci(list(start.values()), list(run.values()))
    assert (pooled["gain"], pooled["low"], pooled["high"]) == (single["difference"], single["low"], single["high"])


def test_runs_on_the_same_frames_move_together() -> None:
    """Two copies of one run on the same frames are one sample of frames, not two: the interval stays as wide as
    one run's; the same two runs on distinct frame sets average out and narrow it."""
    start, run = outcomes("0101010101" * 4), outcomes("1101110100" * 4)
    shared = pooled_gain([(start, run), (start, run)])
    renamed = ({f"g{k}": v for k, v in start.items()}, {f"g{k}": v for k, v in run.items()})
    apart = pooled_gain([(start, run), renamed])
    assert shared["frame_sets"] == 1 and apart["frame_sets"] == 2
    assert apart["high"] - apart["low"] < 0.85 * (shared["high"] - shared["low"])


def test_pairs_on_different_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="different frames"):
        pooled_gain([(outcomes("01"), outcomes("011"))])
