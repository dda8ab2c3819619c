"""Several processes training one run (``accelerate launch``, ``torchrun``): the main one owns the artifact.

Every process trains (the ``Trainer`` shards the data and synchronises gradients itself); only the main
process locks and writes the artifact, publishes it and speaks on the console and stdout. The others
learn its partial directory, its checkpoint to resume from and the published artifact from it. In a
single process every function here is a plain call.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from alphadrive_cli.errors import AlphaDriveError

T = TypeVar("T")
ITEM = TypeVar("ITEM")


def launch_rank() -> int:
    """This process's rank as the launcher set it (``RANK``; torchrun and ``accelerate launch`` do), 0 alone."""
    return int(os.environ.get("RANK", "0"))


def launch_world_size() -> int:
    """How many processes the launcher started (``WORLD_SIZE``), 1 alone."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Whether this process writes the artifact and speaks for the run."""
    return launch_rank() == 0


def _state() -> Any:
    """accelerate's process state, set up for the device training uses (gloo on the CPU, NCCL on GPUs).

    The first call joins the launcher's process group; the ``Trainer`` later reuses it.
    """
    import torch
    from accelerate import PartialState

    cpu = not torch.cuda.is_available()
    if cpu:
        _load_onto_indexed_cpu()
    return PartialState(cpu=cpu)


def end_process(code: object) -> None:
    """End a launched process with ``code`` (a ``SystemExit`` code): leave the process group, flush the
    standard streams and exit at once, without the interpreter's teardown. Left to that teardown, the process
    group's threads (gloo's) outlive it and abort a process whose work is done ("terminate called without
    an active exception", exit -6), now and then."""
    import torch.distributed as dist

    if isinstance(code, str):
        print(code, file=sys.stderr)
    if dist.is_initialized():
        dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


@functools.cache
def _load_onto_indexed_cpu() -> None:
    """Let ``torch.load`` map tensors to ``cpu:0``: accelerate gives each CPU process that device, the
    ``Trainer`` loads a resumed optimizer state onto it, and torch only knows the location ``cpu``."""
    import torch.serialization

    torch.serialization.register_package(
        11, lambda storage: None, lambda storage, location: storage if location.startswith("cpu:") else None
    )


def on_main(task: Callable[[], T]) -> T:
    """Run ``task`` on the main process and return its result on every process.

    An :class:`AlphaDriveError` it raises is raised on every process, so none waits for a result that
    never comes; any other failure ends the main process, and the launcher stops the others.
    """
    if launch_world_size() == 1:
        return task()
    from accelerate.utils import broadcast_object_list

    _state()
    outcome: list[Any] = [None]
    if is_main_process():
        try:
            outcome[0] = (task(), None)
        except AlphaDriveError as exc:
            outcome[0] = (None, exc)
    broadcast_object_list(outcome, from_process=0)
    result, error = outcome[0]
    if error is not None:
        raise error
    return result


def after_everyone(task: Callable[[], T]) -> T:
    """Wait until every process got here (training finished everywhere), then :func:`on_main` ``task``."""
    if launch_world_size() > 1:
        _state().wait_for_everyone()
    return on_main(task)


def gather(items: list[ITEM]) -> list[ITEM]:
    """Every process's ``items``, concatenated in process order; every process must call it."""
    if launch_world_size() == 1:
        return items
    from accelerate.utils import gather_object

    _state()
    return gather_object(items)
