"""Runs ``alphadrive`` (the real CLI) with a probe: which frames each SFT batch held, per process.

    python -m torch.distributed.run --nproc_per_node 2 tests/support/rank_probe.py RECORD_DIR {run|interrupt} sft ...

Each process appends the frame ids of every batch its collator builds to ``RECORD_DIR/batches-rank<R>.jsonl``
(the data loader builds one batch ahead of training, so a run records one batch more than it trains on).
``interrupt`` crashes the run once every process has written the first checkpoint.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from transformers import TrainerCallback


def record_batches(directory: Path, rank: int = 0) -> None:
    """Make the SFT collator append each batch's frame ids to ``directory/batches-rank<rank>.jsonl``."""
    from alphadrive_cli.training.sft_data import VisionSFTCollator

    collate = VisionSFTCollator.__call__
    path = directory / f"batches-rank{rank}.jsonl"

    def recording(self, examples):
        with path.open("a") as handle:
            handle.write(json.dumps([example["id"] for example in examples]) + "\n")
        return collate(self, examples)

    VisionSFTCollator.__call__ = recording


def recorded_batches(directory: Path, rank: int = 0) -> list[list[str]]:
    """The batches :func:`record_batches` wrote, in order."""
    return [json.loads(line) for line in (directory / f"batches-rank{rank}.jsonl").read_text().splitlines()]


class InterruptAfterEverySave(TrainerCallback):
    """Crashes the run after its first checkpoint, once every process has finished writing its part of it."""

    def on_save(self, args, state, control, **kwargs):
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
        raise RuntimeError(f"probe: interrupted after the checkpoint of step {state.global_step}")


if __name__ == "__main__":
    from alphadrive_cli.cli import main
    from alphadrive_cli.training import callbacks as training_callbacks

    record_dir, mode, *arguments = sys.argv[1:]
    record_batches(Path(record_dir), int(os.environ.get("RANK", "0")))
    if mode == "interrupt":
        training_callbacks.EXTRA_CALLBACKS.append(InterruptAfterEverySave())
    sys.argv = [sys.argv[0], *arguments]
    main()
