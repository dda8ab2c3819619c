"""The checkpoint an interrupted training run continues from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from alphadrive_cli.training.distributed import on_main
from alphadrive_cli.ui import console

CHECKPOINT_DIR = "checkpoints"


def last_checkpoint(directory: Path) -> tuple[str | None, int | None]:
    """The newest complete checkpoint under ``directory`` and its step, or (None, None); the console says so.

    The trainer writes ``trainer_state.json`` last, so a checkpoint without a readable one was cut off
    mid-write (Ctrl-C, a kill): it is removed, and the one before it is used. The main process decides
    for every process of a multi-process run.
    """
    return on_main(lambda: _last_complete_checkpoint(directory))


def _last_complete_checkpoint(directory: Path) -> tuple[str | None, int | None]:
    checkpoints = [path for path in directory.glob("checkpoint-*") if path.is_dir() and path.name[11:].isdigit()]
    for path in sorted(checkpoints, key=lambda path: int(path.name[11:]), reverse=True):
        try:
            step = int(json.loads((path / "trainer_state.json").read_text())["global_step"])
        except (OSError, ValueError, KeyError, TypeError):
            console.print(f"removing {path.name}: it was cut off while being written")
            shutil.rmtree(path, ignore_errors=True)
            continue
        console.print(f"resuming from checkpoint {path.name} (step {step})")
        return str(path), step
    return None, None
