"""Where a GRPO rollout cycle's host time goes in Python: ``cProfile`` over one more cycle, by function.

`bench.small_preset_speed --python-profile` installs it in a grpo row's process: over one more rollout cycle (after
the timed steps and any profiled or counted cycle) every Python function the training process runs is timed, with
its own time and its cumulative time, each function named by its path from its package on (TRL, transformers,
torch, this repository). `torch.profiler` (`--profile`) times torch operations and the host's CUDA calls but not
the Python around them; this says which Python code holds the host, for instance in the optimiser steps' loss
forward and backward. cProfile slows Python-heavy code more than code that waits in C, so read the shares between
functions, not the totals, against the timed steps.
"""

from __future__ import annotations

import cProfile
import pstats
from typing import Any

from bench.grpo_profile import StepWindow
from bench.sync_sites import short_path

TOP = 40  # functions listed by each ordering


class PythonProfile(StepWindow):
    """cProfile of optimiser steps ``start + 1`` to ``start + steps`` of a GRPO run, summarised by function."""

    def __init__(self, start: int, steps: int) -> None:
        super().__init__(start, steps)
        self.profiler = cProfile.Profile()

    def begin(self) -> None:
        self.profiler.enable()

    def end(self, steps: int, window_s: float) -> dict[str, Any]:
        self.profiler.disable()
        return {"steps": steps, "window_s": round(window_s, 3), **summary(pstats.Stats(self.profiler))}


CALLERS = 3  # callers named for each function listed by its own time


def summary(stats: pstats.Stats, top: int = TOP) -> dict[str, Any]:
    """The ``top`` functions by their own time and by their cumulative time (calls, milliseconds); each function
    listed by its own time also names the ``CALLERS`` callers that called it most (a C function such as
    ``torch.tensor`` says nothing by itself about which code made its 2,000 calls)."""
    functions = [
        {
            "function": _named(function),
            "calls": calls,
            "own_ms": round(own * 1000, 2),
            "cumulative_ms": round(cumulative * 1000, 2),
            "callers": callers,
        }
        for function, (_, calls, own, cumulative, callers) in stats.stats.items()  # type: ignore[attr-defined]
    ]
    by_own_time = sorted(functions, key=lambda entry: -entry["own_ms"])[:top]
    for entry in by_own_time:
        callers = sorted(entry["callers"].items(), key=lambda item: -item[1][1])[:CALLERS]  # by calls made
        entry["callers"] = [{"function": _named(caller), "calls": timing[1]} for caller, timing in callers]
    return {
        "by_own_time": by_own_time,
        "by_cumulative_time": [
            {key: value for key, value in entry.items() if key != "callers"}
            for entry in sorted(functions, key=lambda entry: -entry["cumulative_ms"])[:top]
        ],
    }


def _named(function: tuple[str, int, str]) -> str:
    """A cProfile function key as ``path:line name`` (the path from its package on), or a built-in's name."""
    file, line, name = function
    return f"{short_path(file)}:{line} {name}" if line else name
