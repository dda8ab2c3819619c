"""Where a GRPO rollout cycle makes the host wait for the device: each synchronising call, by call site.

`bench.small_preset_speed --sync-sites` installs it in a grpo row's process: over one more rollout cycle (after the
timed steps and any profiled cycle) every call that makes the host wait for a CUDA tensor's value (:data:`SYNCING`:
`.item()`, `.tolist()`, `.cpu()`, `bool()` of a tensor, `nonzero`, boolean-mask indexing and the other operations
that size their output by the data) is counted by the first Python frame outside torch that made it (TRL,
transformers, this repository) and by TRL's phase (bench/grpo_profile.py's labels). On CUDA only calls on a GPU
tensor count. On a CPU every such call counts, those on tensors that stay on the host in a GPU run too: there the
sites are candidates, read against the code. Every torch call in the window passes through the counter, which
slows the host and so gives the device more time to catch up: the counts are exact, the waits lower bounds. Not
seen: calls inside compiled code and CUDA graph replays, and synchronisations below Python (a library calling
``torch.cuda.synchronize``, a copy from pageable host memory).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from bench.grpo_profile import PHASES, StepWindow

Tensor = torch.Tensor
SYNCING = {  # functions and methods that return a tensor's values, or a shape that depends on them, to the host
    Tensor.item: "item",
    Tensor.tolist: "tolist",
    Tensor.cpu: "cpu",
    Tensor.numpy: "numpy",
    Tensor.__bool__: "bool",
    Tensor.__int__: "int",
    Tensor.__float__: "float",
    Tensor.__index__: "index",
    Tensor.nonzero: "nonzero",
    torch.nonzero: "nonzero",
    Tensor.unique: "unique",
    torch.unique: "unique",
    torch.unique_consecutive: "unique_consecutive",
    Tensor.masked_select: "masked_select",
    torch.masked_select: "masked_select",
    Tensor.equal: "equal",
    torch.equal: "equal",
    Tensor.bincount: "bincount",
    torch.bincount: "bincount",
}
DATA_SIZED = {Tensor.repeat_interleave, torch.repeat_interleave}  # sync unless given output_size
MOVES = {Tensor.to}  # sync when they move a GPU tensor to the host (on a CPU every move is to the host: not counted)
WATCHED = {*SYNCING, *DATA_SIZED, *MOVES, Tensor.__getitem__}
TOP_SITES = 30
TORCH_DIR = str(Path(torch.__file__).parent)


def synchronising(func: Any, args: tuple, kwargs: dict, on_cuda: bool) -> str | None:
    """The name under which the call ``func(*args, **kwargs)`` is counted, or None where it does not make the
    host wait (on CUDA: where its tensor is not on a GPU)."""
    if func not in WATCHED:  # most calls: answered before looking at their arguments
        return None
    tensor = next((a for a in args if isinstance(a, Tensor)), None)
    if tensor is None or (on_cuda and not tensor.is_cuda):
        return None
    if func in SYNCING:
        return SYNCING[func]
    if func in DATA_SIZED and len(args) > 1 and isinstance(args[1], Tensor) and kwargs.get("output_size") is None:
        return "repeat_interleave"
    if func is Tensor.__getitem__ and any(
        isinstance(i, Tensor) and i.dtype == torch.bool for i in (args[1] if isinstance(args[1], tuple) else (args[1],))
    ):
        return "boolean mask"
    if (
        on_cuda
        and func in MOVES
        and any(str(a).startswith("cpu") for a in (*args[1:], kwargs.get("device")) if a is not None)
    ):
        return "to cpu"
    return None


def call_site(frame: FrameType | None) -> tuple[str, str]:
    """The first frame outside torch and this module (``package/file.py:line function``) and the innermost TRL
    phase on the stack (``-`` where none is)."""
    site, phase = "", "-"
    while frame is not None:
        filename = frame.f_code.co_filename
        if not site and not filename.startswith(TORCH_DIR) and filename != __file__:
            site = f"{short_path(filename)}:{frame.f_lineno} {frame.f_code.co_name}"
        if phase == "-" and frame.f_code.co_name in PHASES and "trl" in Path(filename).parts:
            phase = PHASES[frame.f_code.co_name]
        if site and phase != "-":
            break
        frame = frame.f_back
    return site, phase


def short_path(filename: str) -> str:
    """A path from its package on: ``trl/trainer/grpo_trainer.py``, ``alphadrive_cli/models/x.py``."""
    parts = Path(filename).parts
    for anchor in ("site-packages", "dist-packages"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) + 1 :])
    for package in ("alphadrive_cli", "bench", "tests"):
        if package in parts:
            return "/".join(parts[parts.index(package) :])
    return Path(filename).name


class SyncCounter(TorchFunctionMode):
    """Counts every synchronising call made inside it, and the host time it took (on CUDA mostly the wait), by
    (call site, phase, call)."""

    def __init__(self) -> None:
        super().__init__()
        self.sites: Counter[tuple[str, str, str]] = Counter()
        self.waited: Counter[tuple[str, str, str]] = Counter()
        self.on_cuda = torch.cuda.is_available()

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if not (name := synchronising(func, args, kwargs, self.on_cuda)):
            return func(*args, **kwargs)
        key = (*call_site(sys._getframe(1)), name)
        began = time.perf_counter()
        result = func(*args, **kwargs)
        self.waited[key] += time.perf_counter() - began  # on CUDA: mostly the wait for the device
        self.sites[key] += 1
        return result

    def summary(self, steps: int) -> dict[str, Any]:
        """The window's synchronisations: in all, by phase and by call, their host time, and the sites whose calls
        took the longest."""
        by_phase: Counter[str] = Counter()
        by_call: Counter[str] = Counter()
        for (_, phase, call), calls in self.sites.items():
            by_phase[phase] += calls
            by_call[call] += calls
        longest = sorted(self.sites, key=lambda key: self.waited[key], reverse=True)[:TOP_SITES]
        return {
            "steps": steps,
            "syncs": sum(self.sites.values()),
            "by_phase": dict(by_phase.most_common()),
            "by_call": dict(by_call.most_common()),
            "device": "cuda" if self.on_cuda else "cpu: host tensors counted too",
            "host_s": round(sum(self.waited.values()), 3),
            "sites": [  # the longest host time first
                dict(
                    zip(("site", "phase", "call"), key, strict=True),
                    calls=self.sites[key],
                    ms=round(self.waited[key] * 1e3, 2),
                )
                for key in longest
            ],
        }


class SyncSites(StepWindow):
    """Count the synchronisations of optimiser steps ``start + 1`` to ``start + steps`` of a GRPO run."""

    def __init__(self, start: int, steps: int) -> None:
        super().__init__(start, steps)
        self.counter = SyncCounter()

    def begin(self) -> None:
        self.counter.__enter__()

    def end(self, steps: int, window_s: float) -> dict[str, Any]:
        self.counter.__exit__(None, None, None)
        return {**self.counter.summary(steps), "window_s": round(window_s, 3)}
