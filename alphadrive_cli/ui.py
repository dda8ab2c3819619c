"""Terminal conventions shared by every command (docs/spec.md#command-line-contract).

stdout carries only the written artifact's path (or JSON with ``--json``); everything for people
goes to stderr. Failures are one line: exit 2 for bad input, 1 for runtime failures, 130 when
interrupted (the unfinished run is kept and the same command resumes it).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from alphadrive_cli.artifacts.redaction import redact, redact_text
from alphadrive_cli.artifacts.store import Artifact
from alphadrive_cli.errors import AlphaDriveError
from alphadrive_cli.training.distributed import is_main_process, launch_rank

console = Console(stderr=True)
stdout = Console()  # for commands whose product is a view (show, inspect); paths bypass rich
DEBUG_ENV = "ALPHADRIVE_DEBUG"
EXIT_INTERRUPTED = 130

CommandT = TypeVar("CommandT", bound=Callable[..., Any])


def user_text(value: object) -> str:
    """``value`` as text to put inside console markup: secrets redacted and ``[...]`` never read as markup."""
    return escape(redact_text(str(value)))


def fail(message: str, exit_code: int) -> typer.Exit:
    """Print ``error: message`` (secrets redacted, never read as markup) on stderr and return the Exit to raise.

    The other processes of a multi-process launch print only runtime failures (exit 1), which may be theirs
    alone, tagged with their rank; the main process reports bad input and interruptions for all of them.
    """
    if is_main_process():
        label, out = "error:", console
    elif exit_code == 1:
        label, out = f"error (rank {launch_rank()}):", Console(stderr=True)
    else:
        return typer.Exit(exit_code)
    out.print(f"[bold red]{label}[/] {user_text(message)}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(exit_code)


def quiet_other_processes() -> None:
    """In a multi-process launch (``accelerate launch``, ``torchrun``) only the main process speaks: the
    others' stdout goes nowhere and their console is quiet, so the launcher's output reads as one run's."""
    if is_main_process():
        return
    from transformers.utils import logging as transformers_logging

    sys.stdout = open(os.devnull, "w")  # for the rest of the process
    console.quiet = True
    warnings.filterwarnings("ignore")
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Inside: transformers' own progress bars and warnings are off (the stage shows its own progress)."""
    from transformers.utils import logging as transformers_logging

    verbosity, bars = transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars:
            transformers_logging.enable_progress_bar()


def reported(command: CommandT) -> CommandT:
    """Turn any failure of a command into one line on stderr and the contract's exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except AlphaDriveError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail(
                "interrupted; any unfinished run was kept, and re-running the same command resumes it", EXIT_INTERRUPTED
            ) from None
        except typer.Exit:
            raise
        except Exception as exc:  # the contract is one line, not a traceback
            if os.environ.get(DEBUG_ENV):
                traceback.print_exc()
            hint = "" if os.environ.get(DEBUG_ENV) else f" (set {DEBUG_ENV}=1 for the traceback)"
            raise fail(f"{type(exc).__name__}: {exc}".splitlines()[0] + hint, 1) from None

    return wrapper  # type: ignore[return-value]


def progress_bar(unit: str) -> Progress:
    """A progress bar on stderr: description, bar, done/total ``unit``, a free ``note`` field, times.

    Tasks must be added with ``note=""`` (and may update it, e.g. with a rate or a cost). The bar is gone once
    done: each stage prints its own summary after it, and a failure's one line stands alone.
    """
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def emit_artifact(artifact: Artifact, as_json: bool) -> None:
    """Write the artifact's path (or a JSON summary) to stdout: the only thing a stage prints there."""
    if as_json:
        summary = {
            key: artifact.manifest.get(key) for key in ("stage", "name", "version", "content_hash", "counts", "metrics")
        }
        emit_json({"path": str(artifact.path), **summary})
    else:
        sys.stdout.write(f"{artifact.path}\n")


def emit_json(value: Any) -> None:
    """Write JSON to stdout, secrets redacted."""
    sys.stdout.write(json.dumps(redact(value), indent=2, default=str) + "\n")


def raise_on_sigterm() -> None:
    """Make ``kill`` (SIGTERM) unwind like Ctrl-C, so locks are released and the exit line is printed."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
