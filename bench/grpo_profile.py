"""torch.profiler over one whole GRPO rollout cycle: where a `grpo` stage's time goes, on the host and on the GPU.

`bench.small_preset_speed --profile` installs it in a grpo row's process, after the row's timed steps. It records
the next ``steps`` optimiser steps (one rollout and the steps it feeds), with TRL's phases marked (:data:`PHASES`).
Its summary says, for that window, how long each phase held the host (the rollout, the loss forward, backward,
the optimiser step), how busy the GPU was, the kernels that took it longest, and the host operations that held the
host longest by their own time (waits on the GPU show there: synchronisations, copies, `.item()`). The profiler
slows the host, so the window's samples/s is not a speed figure; the shares are what it is for.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

from bench.grpo_speed import Timer

PHASES = {  # GRPOTrainer method: the label its calls get in the profile
    "training_step": "training step (the rollout when one is due, forward, backward)",
    "_generate_and_score_completions": "rollout: generation and scoring",
    "_generate_single_turn": "generation",
    "_get_per_token_logps_and_entropies": "log-probabilities: scoring and loss forwards",
    "compute_loss": "loss: forward and the loss's own bookkeeping",
}
BACKWARD = "backward (the host until autograd returns)"  # Accelerator.backward's label
OPTIMISER_RANGE = "Optimizer.step#"  # torch's own range around every optimiser step
OPTIMISER = "optimiser step"
TOP_KERNELS = 20
TOP_HOST_OPS = 20


def mark(cls: type, method: str, label: str) -> None:
    """Run every call of ``cls.method`` inside a profiler range named ``label``."""
    inner = getattr(cls, method)

    @functools.wraps(inner)
    def marked(*args: Any, **kwargs: Any) -> Any:
        with record_function(label):
            return inner(*args, **kwargs)

    setattr(cls, method, marked)


def phase_of(key: str) -> str:
    """The phase label of a profiled range: torch's range of every optimiser step (one per optimiser class) is one
    phase; any other range is its own key."""
    return OPTIMISER if key.startswith(OPTIMISER_RANGE) else key


def summarise(prof: profile, window_s: float, steps: int) -> dict[str, Any]:
    """The host time of each marked phase, the GPU's busy share, the longest kernels and the longest host operations
    (by self time, phases left out) of ``prof``.

    A phase's host time is inclusive (the rollout holds generation and scoring; ``training_step`` counts
    micro-batches and holds the rollout when one is due). Kernels are not split by phase: a CUDA-graph replay and
    the backward pass (on autograd's own thread) launch kernels that no marked range on the host owns. On CUDA,
    every ``record_function`` range (the phases, the optimiser's, compiled graphs') is also recorded as a GPU-side
    annotation: those spans are not kernels and are left out."""
    averages = prof.key_averages()
    labels = {*PHASES.values(), BACKWARD, OPTIMISER}
    on_host = [event for event in averages if event.device_type == DeviceType.CPU]
    phases: dict[str, dict[str, float]] = {}
    for event in on_host:
        if (label := phase_of(event.key)) in labels:
            phase = phases.setdefault(label, {"calls": 0, "host_s": 0.0})
            phase["calls"] += event.count
            phase["host_s"] = round(phase["host_s"] + event.cpu_time_total / 1e6, 3)
    host_ops = [event for event in on_host if phase_of(event.key) not in labels]
    longest_host = sorted(host_ops, key=lambda event: event.self_cpu_time_total, reverse=True)[:TOP_HOST_OPS]
    kernels = [
        event
        for event in averages
        if event.device_type == DeviceType.CUDA and not getattr(event, "is_user_annotation", False)
    ]
    busy_s = sum(event.self_device_time_total for event in kernels) / 1e6
    longest = sorted(kernels, key=lambda event: event.self_device_time_total, reverse=True)[:TOP_KERNELS]
    return {
        "steps": steps,
        "window_s": round(window_s, 3),
        "gpu_busy_s": round(busy_s, 3),
        "gpu_busy_share": round(busy_s / window_s, 3) if window_s else None,
        "kernel_launches": sum(event.count for event in kernels),
        "phases": phases,
        "longest_kernels": [
            {"kernel": event.key[:120], "calls": event.count, "gpu_ms": round(event.self_device_time_total / 1e3, 2)}
            for event in longest
        ],
        "longest_host_ops": [
            {"op": event.key[:120], "calls": event.count, "host_ms": round(event.self_cpu_time_total / 1e3, 2)}
            for event in longest_host
        ],
    }


class StepWindow:
    """Something recorded over optimiser steps ``start + 1`` to ``start + steps`` of a GRPO run: :meth:`begin` runs
    at the end of step ``start``, :meth:`end` at the end of the window's last step (or of training, if that comes
    first) and returns what :attr:`result` holds."""

    def __init__(self, start: int, steps: int) -> None:
        self.start, self.steps = start, steps
        self.began: float | None = None
        self.result: dict[str, Any] | None = None

    @property
    def is_open(self) -> bool:
        """Whether the window has begun and not yet ended."""
        return self.began is not None and self.result is None

    def begin(self) -> None:
        """Start recording."""
        raise NotImplementedError

    def end(self, steps: int, window_s: float) -> dict[str, Any]:
        """Stop recording and summarise the ``steps`` of the window, which took ``window_s`` seconds."""
        raise NotImplementedError

    def install(self) -> None:
        """Add the callback that opens and closes the window."""
        from transformers import TrainerCallback

        from alphadrive_cli.training import callbacks as training_callbacks

        window = self

        class Window(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if state.global_step == window.start:
                    window.open()
                elif state.global_step == window.start + window.steps:
                    window.stop(window.steps)

            def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                window.stop(state.global_step - window.start)  # a run that ended inside the window

        training_callbacks.EXTRA_CALLBACKS.append(Window())

    def open(self) -> None:
        """Begin recording, and the window's clock."""
        self.begin()
        self.began = Timer.now()

    def stop(self, steps: int) -> None:
        """Close the window, if open, and summarise the ``steps`` it held."""
        if self.is_open:
            self.result = self.end(steps, Timer.now() - self.began)


class RolloutProfile(StepWindow):
    """Profile optimiser steps ``start + 1`` to ``start + steps`` of a GRPO run (see the module docstring)."""

    def __init__(self, start: int, steps: int) -> None:
        super().__init__(start, steps)
        self.profiler: profile | None = None

    def install(self) -> None:
        """Mark TRL's phases and add the callback that starts and stops the profiler."""
        from accelerate import Accelerator
        from trl import GRPOTrainer

        for method, label in PHASES.items():
            mark(GRPOTrainer, method, label)
        mark(Accelerator, "backward", BACKWARD)
        super().install()

    def begin(self) -> None:
        activities = [ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(ProfilerActivity.CUDA)
        self.profiler = profile(activities=activities)
        self.profiler.start()

    def end(self, steps: int, window_s: float) -> dict[str, Any]:
        self.profiler.stop()
        return summarise(self.profiler, window_s, steps)
