"""bench/grpo_profile.py: the phases it marks and what its summary counts (on the CPU: no GPU kernels)."""

import torch
from torch.profiler import ProfilerActivity, profile

from bench.grpo_profile import PHASES, mark, summarise


class FakeTrainer:
    def training_step(self, x: torch.Tensor) -> torch.Tensor:
        return x @ x


def test_summary_counts_each_marked_call_and_its_host_time():
    mark(FakeTrainer, "training_step", PHASES["training_step"])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            FakeTrainer().training_step(torch.ones(64, 64))
        torch.ones(8) + 1  # outside every phase
    result = summarise(prof, window_s=2.0, steps=3)
    phase = result["phases"][PHASES["training_step"]]
    assert phase["calls"] == 3
    assert phase["host_s"] > 0
    assert set(result["phases"]) == {PHASES["training_step"]}  # unmarked phases are left out, not zero
    assert (result["gpu_busy_s"], result["kernel_launches"], result["longest_kernels"]) == (0, 0, [])
    assert result["gpu_busy_share"] == 0


def test_marked_method_returns_what_it_returned():
    class Plain:
        def _generate_single_turn(self, value: int) -> int:
            return value * 2

    mark(Plain, "_generate_single_turn", PHASES["_generate_single_turn"])
    assert Plain()._generate_single_turn(21) == 42
    assert Plain._generate_single_turn.__name__ == "_generate_single_turn"
