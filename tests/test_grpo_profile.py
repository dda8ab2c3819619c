"""bench/grpo_profile.py: the phases it marks and what its summary counts (on the CPU: no GPU kernels)."""

import time

import torch
from torch.profiler import ProfilerActivity, profile

from bench.grpo_profile import BACKWARD, OPTIMISER, PHASES, mark, summarise


class FakeTrainer:
    def training_step(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.01)  # host time the summary must see
        return x @ x


def test_summary_counts_each_marked_call_and_its_host_time():
    mark(FakeTrainer, "training_step", PHASES["training_step"])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            FakeTrainer().training_step(torch.ones(64, 64))
        torch.ones(8) + 1  # outside every phase
    result = summarise(prof, window_s=2.0, steps=3)
    assert result["phases"][PHASES["training_step"]]["calls"] == 3
    assert result["phases"][PHASES["training_step"]]["host_s"] >= 0.03
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


def test_gpu_side_annotations_are_not_counted_as_kernels():
    """On CUDA each record_function range (a phase, the optimiser's step) is also a GPU-side annotation whose span
    covers kernels: only the kernels count."""
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    def event(key, device_type, gpu_us, annotation=False, count=1):
        return SimpleNamespace(
            key=key,
            device_type=device_type,
            is_user_annotation=annotation,
            count=count,
            cpu_time_total=0 if device_type == DeviceType.CUDA else 500_000,
            self_device_time_total=gpu_us,
        )

    events = [
        event(PHASES["_generate_single_turn"], DeviceType.CPU, 0),
        event(PHASES["_generate_single_turn"], DeviceType.CUDA, 900_000, annotation=True),
        event("Optimizer.step#AdamW.step", DeviceType.CUDA, 300_000, annotation=True),
        event("fmha_cutlassF_f32", DeviceType.CUDA, 400_000, count=6),
        event("gemm", DeviceType.CUDA, 100_000, count=4),
    ]
    result = summarise(SimpleNamespace(key_averages=lambda: events), window_s=1.0, steps=8)
    assert result["gpu_busy_s"] == 0.5 and result["gpu_busy_share"] == 0.5 and result["kernel_launches"] == 10
    assert [kernel["kernel"] for kernel in result["longest_kernels"]] == ["fmha_cutlassF_f32", "gemm"]
    assert result["phases"] == {PHASES["_generate_single_turn"]: {"calls": 1, "host_s": 0.5}}


def test_the_optimisers_ranges_form_one_phase_and_the_longest_host_ops_leave_the_phases_out():
    """torch names its range around an optimiser step after the optimiser's class: every class is one phase. The
    host operations are ranked by their own time, so a wait on the GPU ranks above the phase that holds it."""
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    def host(key, total_us, self_us, count=1):
        return SimpleNamespace(
            key=key,
            device_type=DeviceType.CPU,
            count=count,
            cpu_time_total=total_us,
            self_cpu_time_total=self_us,
            self_device_time_total=0,
        )

    events = [
        host("Optimizer.step#AdamW.step", 200_000, 10_000, count=7),
        host("Optimizer.step#SGD.step", 100_000, 5_000),
        host(BACKWARD, 900_000, 1_000, count=8),
        host("cudaStreamSynchronize", 700_000, 700_000, count=30),
        host("aten::copy_", 50_000, 40_000, count=12),
    ]
    result = summarise(SimpleNamespace(key_averages=lambda: events), window_s=2.0, steps=8)
    assert result["phases"] == {OPTIMISER: {"calls": 8, "host_s": 0.3}, BACKWARD: {"calls": 8, "host_s": 0.9}}
    assert result["longest_host_ops"] == [
        {"op": "cudaStreamSynchronize", "calls": 30, "host_ms": 700.0},
        {"op": "aten::copy_", "calls": 12, "host_ms": 40.0},
    ]
