"""The transformers ``TrainerCallback``s every training run gets: the training clock, the non-finite gradient
guard, the console logger (stdout stays reserved for the artifact path) and TensorBoard."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Sequence
from typing import Any

from alphadrive_cli.artifacts.store import ArtifactWriter
from alphadrive_cli.config.schemas import TrainingConfig
from alphadrive_cli.training.distributed import is_main_process
from alphadrive_cli.training.numerics import NonFiniteGradientGuard
from alphadrive_cli.ui import console

TENSORBOARD_DIR = "tensorboard"

CLOCK_KEY = "train_elapsed_s"  # stamped on every log entry: training seconds so far, over all sessions of a run

# Extra transformers TrainerCallbacks for every run (tests use it to interrupt a run after a checkpoint).
EXTRA_CALLBACKS: list[Any] = []


def console_logger(fields: Sequence[tuple[str, str]]) -> Any:
    """A callback printing each training step's ``fields`` ((log key, label) pairs) to the console (stderr)."""
    from transformers import TrainerCallback

    class ConsoleLogger(TrainerCallback):
        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
        ) -> None:
            if not logs or "loss" not in logs:
                return
            parts = [f"{label} {logs[key]:.4g}" for key, label in fields if isinstance(logs.get(key), (int, float))]
            console.print(
                f"step {state.global_step}/{state.max_steps}: " + ", ".join(parts), highlight=False, soft_wrap=True
            )

    return ConsoleLogger()


def training_clock() -> Any:
    """A callback stamping each new log entry with ``train_elapsed_s``: training seconds so far, counted on from
    the last stamp of the restored history when a run resumes (time lost after the checkpoint is not counted,
    like the steps redone)."""
    from transformers import TrainerCallback

    class TrainingClock(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.before = max((entry.get(CLOCK_KEY, 0.0) for entry in state.log_history), default=0.0)
            self.started = time.perf_counter()

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
        ) -> None:
            if state.log_history:
                state.log_history[-1][CLOCK_KEY] = round(self.before + time.perf_counter() - self.started, 3)

    return TrainingClock()


def trainer_callbacks(
    writer: ArtifactWriter, fields: Sequence[tuple[str, str]], config: TrainingConfig
) -> tuple[list[Any], str]:
    """The training clock, the non-finite gradient guard, the console logger, :data:`EXTRA_CALLBACKS` and TensorBoard
    (where installed; written by the main process only); and what the manifest says about TensorBoard."""
    callbacks = [
        training_clock(),
        NonFiniteGradientGuard(config.max_nonfinite_steps),
        console_logger(fields),
        *EXTRA_CALLBACKS,
    ]
    if importlib.util.find_spec("tensorboard") is None:
        return callbacks, "skipped: the tensorboard package is not installed (pip install tensorboard)"
    if not is_main_process():
        return callbacks, f"{TENSORBOARD_DIR}/"
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    callbacks.append(TensorBoardCallback(SummaryWriter(log_dir=str(writer.dir / TENSORBOARD_DIR))))
    return callbacks, f"{TENSORBOARD_DIR}/"


def silence_stdout_callbacks(trainer: Any) -> None:
    """Remove the trainer's printers: they write to stdout, which carries only the artifact path."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)


def close_tensorboard(callbacks: Sequence[Any]) -> None:
    """Flush and close TensorBoard event files (before the artifact's files are hashed)."""
    for callback in callbacks:
        tb_writer = getattr(callback, "tb_writer", None)
        if tb_writer is not None:
            tb_writer.close()
