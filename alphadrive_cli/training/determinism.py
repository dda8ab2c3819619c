"""Training runs that repeat bit for bit on the same machine: the ``deterministic`` setting of ``sft`` and ``grpo``.

On a GPU, several kernels sum in an order that varies from run to run (atomic adds in backward passes, cuBLAS
split reductions), so one command on the same data, model and seed trains a slightly different model each time:
measured at the `small` preset (docs/results.md, the SFT repeats), three repeats of one reasoning SFT matched at
step 1 and scored 0.715–0.765 on the test split. :func:`deterministic_kernels` has torch use deterministic
kernels instead, and fail on an operation that has none, for the length of a run. transformers'
``full_determinism`` does the same but also sets ``CUDA_LAUNCH_BLOCKING=1`` in the environment, which serialises
every kernel launch of a process started after it, so the stages do not use it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

CUBLAS_WORKSPACE = ":4096:8"  # cuBLAS's deterministic workspace setting (read when torch first uses cuBLAS)


@contextmanager
def deterministic_kernels(enabled: bool) -> Iterator[None]:
    """While inside, with ``enabled``: deterministic torch and cuDNN kernels, an error on an operation that has
    none; the previous settings come back on leaving. Without ``enabled`` nothing changes."""
    if not enabled:
        yield
        return
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    workspace_was_set = "CUBLAS_WORKSPACE_CONFIG" in os.environ
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[2], previous[3]
        if not workspace_was_set:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
