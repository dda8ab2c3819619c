"""Where a GRPO rollout cycle makes the host wait for the device: each synchronising call, by call site.

`bench.small_preset_speed --sync-sites` installs it in a grpo row's process: over one more rollout cycle (after the
timed steps and any profiled cycle) every call that makes the host wait for the device (:data:`SYNCING`: `.item()`,
`.tolist()`, `.cpu()`, `bool()` of a tensor, `nonzero` and the other operations that size their output by the
data, boolean-mask indexing; and on CUDA every blocking copy between host and device, either way) is counted by
the first Python frame outside torch that made it (TRL, transformers, this repository) and by TRL's phase
(bench/grpo_profile.py's labels). On CUDA only calls on a GPU tensor count. On a CPU every such call counts, those
on tensors that stay on the host in a GPU run too, and copies not at all: there the sites are candidates, read
against the code. Every torch call in the window passes through the counter, which slows the host and so gives
the device more time to catch up: the counts are exact, the waits lower bounds. Not seen: the outermost torch call
is the one counted (what it calls inside is not), nor what autograd's backward runs, graph decoding's steps (kept
outside the count: they read nothing back) and synchronisations below Python (a library calling
``torch.cuda.synchronize``).
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from torch.overrides import TorchFunctionMode, _pop_mode_temporarily

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
    Tensor.__repr__: "repr",
    Tensor.__format__: "format",
    Tensor.nonzero: "nonzero",
    torch.nonzero: "nonzero",
    Tensor.argwhere: "argwhere",
    torch.argwhere: "argwhere",
    Tensor.unique: "unique",
    torch.unique: "unique",
    Tensor.unique_consecutive: "unique_consecutive",
    torch.unique_consecutive: "unique_consecutive",
    Tensor.masked_select: "masked_select",
    torch.masked_select: "masked_select",
    Tensor.equal: "equal",
    torch.equal: "equal",
    Tensor.allclose: "allclose",
    torch.allclose: "allclose",
    Tensor.bincount: "bincount",
    torch.bincount: "bincount",
}
DATA_SIZED = {Tensor.repeat_interleave, torch.repeat_interleave}  # sync unless given output_size
MASKED = {Tensor.__getitem__: "boolean mask", Tensor.__setitem__: "boolean mask set"}  # a bool index: its nonzero
MOVES = {Tensor.to, Tensor.cuda, Tensor.copy_}  # a blocking copy between host and device waits for the stream
WATCHED = {*SYNCING, *DATA_SIZED, *MASKED, *MOVES, torch.where}
TOP_SITES = 30
TORCH_DIR = str(Path(torch.__file__).parent) + os.sep


def device_type(value: Any) -> str | None:
    """The device type a ``.to(...)`` argument names (a tensor, a device, its name or index), else None."""
    if isinstance(value, Tensor):
        return value.device.type
    if isinstance(value, (str, torch.device)):
        try:
            return torch.device(value).type
        except RuntimeError:
            return None
    if isinstance(value, int) and not isinstance(value, bool):
        return "cuda"
    return None


def move(func: Any, args: tuple, kwargs: dict) -> tuple[str, str | None]:
    """Where a move's data comes from and goes to (device types; None where it does not move)."""
    if func is Tensor.copy_:
        return args[1].device.type, args[0].device.type
    if func is Tensor.cuda:
        return args[0].device.type, "cuda"
    targets = [device_type(value) for value in (*args[1:], kwargs.get("device"))]
    return args[0].device.type, next((target for target in targets if target), None)


def synchronising(func: Any, args: tuple, kwargs: dict, on_cuda: bool) -> str | None:
    """The name under which the call ``func(*args, **kwargs)`` is counted, or None where it does not make the
    host wait (on CUDA: where none of its tensors is on the device; a CPU counts host tensors as device ones)."""
    if func not in WATCHED:  # most calls: answered before looking at their arguments
        return None
    tensors = [a for a in args if isinstance(a, Tensor)]
    if not tensors:
        return None
    on_device = any(t.device.type != "cpu" for t in tensors) or not on_cuda
    if func in MOVES:
        if not on_cuda or kwargs.get("non_blocking") or (len(args) > 2 and args[2] is True and func is Tensor.copy_):
            return None  # on a CPU every copy is on the host
        source, target = move(func, args, kwargs)
        if target is None or (source == "cpu") == (target == "cpu"):
            return None
        return "to host" if target == "cpu" else "to device"
    if not on_device:
        return None
    if func in SYNCING:
        return SYNCING[func]
    if func in DATA_SIZED:
        sized = kwargs.get("output_size") is not None or len(args) < 2 or not isinstance(args[1], Tensor)
        return None if sized else "repeat_interleave"
    if func is torch.where:
        return "where (one argument)" if len(args) == 1 and not kwargs else None
    index = args[1] if isinstance(args[1], tuple) else (args[1],)
    return MASKED[func] if any(isinstance(i, Tensor) and i.dtype == torch.bool for i in index) else None


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

    def install(self) -> None:
        """Add the window's callback, and keep graph decoding's steps out of the count: compiled code guards on the
        torch-function modes, so a step run inside the counter would be compiled again (decoding steps read
        nothing back by design, models/graph_decoding.py)."""
        from alphadrive_cli.models import graph_decoding

        replay, window = graph_decoding.Replay.__call__, self

        @functools.wraps(replay)
        def outside_the_count(step: Any) -> None:
            if not window.is_open:
                return replay(step)
            with _pop_mode_temporarily():
                return replay(step)

        graph_decoding.Replay.__call__ = outside_the_count
        super().install()

    def begin(self) -> None:
        self.counter.__enter__()

    def end(self, steps: int, window_s: float) -> dict[str, Any]:
        self.counter.__exit__(None, None, None)
        return {**self.counter.summary(steps), "window_s": round(window_s, 3)}
