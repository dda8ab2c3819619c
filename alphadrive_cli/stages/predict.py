"""``alphadrive predict``: plans for frames nobody labelled, one JSON line per record of the frames file.

The frames file is read as ``data import`` reads labelled frames (JSONL or CSV, images relative to the file's
folder or ``--images-root``), without labels. Every record is checked (image present and decodable, navigation,
speed) before the model loads; a bad one becomes a line ``{"line", "error"}`` in its place in the output and a
``warning:`` line on stderr, and the command exits 2 once every good frame is planned. Good frames are planned in
batches and written as ``{"id", "line", "text", "plan", "parsed"}``, the ``id`` and ``text`` that ``eval
--predictions`` reads.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from alphadrive_cli.actions import DEFAULT_VOCABULARY, parse_answer
from alphadrive_cli.config.schemas import ImportConfig
from alphadrive_cli.data.importers import (
    ImageRoot,
    ProblemLog,
    Source,
    UnlabelledFrame,
    accept_rows,
    check_source,
    read_rows,
    unlabelled_frame_from_row,
)
from alphadrive_cli.errors import BadInput
from alphadrive_cli.models.generation import GenerationSettings, complete_records, load_for_generation
from alphadrive_cli.models.loading import ModelSource, resolve_model_source
from alphadrive_cli.prompts import PromptTemplate
from alphadrive_cli.ui import console, progress_bar, user_text

MAX_IMAGE_MEGAPIXELS = ImportConfig.model_fields["max_image_megapixels"].default  # data import's default


@dataclass(frozen=True)
class PredictSettings:
    """How ``predict`` reads the frames and generates: batch size, answer length, where images are, whether CUDA
    decoding runs through graphs (as eval's ``compile_generation``)."""

    batch_size: int
    max_new_tokens: int
    images_root: Path | None = None
    compile_generation: bool = False


def read_frames(path: Path, images_root: Path | None) -> tuple[list[UnlabelledFrame], ProblemLog]:
    """The good frames of ``path`` in file order, and the bad records (line, reason, detail) in a log."""
    check_source(path)
    folder = images_root if images_root is not None else path.parent
    if not folder.is_dir():
        raise BadInput(f"--images-root {folder} is not a folder")
    source = Source(path, ImageRoot(folder.resolve(), round(MAX_IMAGE_MEGAPIXELS * 1e6)), DEFAULT_VOCABULARY)
    log = ProblemLog(str(path), strict=False)
    frames = accept_rows(read_rows(path), lambda row: unlabelled_frame_from_row(row, source), log)
    return frames, log


def _prediction(frame: UnlabelledFrame, text: str) -> dict[str, Any]:
    parsed = parse_answer(text, DEFAULT_VOCABULARY)
    plan = parsed.plan
    return {
        "id": frame.id,
        "line": frame.line,
        "text": text,
        "plan": None if plan is None else {"speed": plan[0], "path": plan[1]},
        "parsed": parsed.to_dict(),
    }


def _planned(
    source: ModelSource, template: PromptTemplate, frames: Sequence[UnlabelledFrame], settings: PredictSettings
) -> Iterator[dict[str, Any]]:
    """The prediction of every frame, in order, generated a batch at a time (greedy)."""
    model, processor, _ = load_for_generation(source, settings.compile_generation)
    generation = GenerationSettings(settings.max_new_tokens)
    with progress_bar("frames") as progress:
        task = progress.add_task("planning", total=len(frames), note="")
        for start in range(0, len(frames), settings.batch_size):
            batch = frames[start : start + settings.batch_size]
            completions = complete_records(  # the frames' image paths are absolute: any root will do
                model, processor, template, batch, DEFAULT_VOCABULARY, Path("/"), generation
            )
            for frame, texts in zip(batch, completions, strict=True):
                yield _prediction(frame, texts[0])
            progress.update(task, advance=len(batch))


def _write_lines(handle: IO[str], rows: Iterator[dict[str, Any]], problems: list[dict[str, Any]]) -> None:
    """Predictions and bad records as JSON lines, in the frames file's line order, flushed as they come."""
    pending = sorted(problems, key=lambda problem: problem["line"])
    for row in rows:
        while pending and pending[0]["line"] < row["line"]:
            handle.write(json.dumps(_error_line(pending.pop(0))) + "\n")
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()
    for problem in pending:
        handle.write(json.dumps(_error_line(problem)) + "\n")


def _error_line(problem: dict[str, Any]) -> dict[str, Any]:
    return {"line": problem["line"], "error": f"{problem['reason']}: {problem['detail']}"}


def run(model: str, frames_file: Path, settings: PredictSettings, out: Path | None = None) -> int:
    """Plan every good frame of ``frames_file`` with ``model``; returns how many records were bad (each reported)."""
    if out is not None and out.exists():
        raise BadInput(f"{out} exists: choose a new file name (nothing was written)")
    source = resolve_model_source(model)  # a bad --model is one line before anything else happens
    if (template := source.student_prompt()).states_scene:
        raise BadInput(
            f"model {model} plans from a prompt that states each frame's scene facts ({template.id}), which a "
            "frames file does not hold: score it with eval on a data set"
        )
    frames, log = read_frames(frames_file, settings.images_root)
    for problem in log.ordered():  # one line each, never wrapped: grep-able by file and line
        console.print(
            f"[yellow]warning:[/] {user_text(log.file)} line {problem['line']}: "
            f"{problem['reason']}: {user_text(problem['detail'])}",
            soft_wrap=True,
        )
    rows = _planned(source, template, frames, settings) if frames else (row for row in ())
    if out is None:
        try:
            _write_lines(sys.stdout, rows, log.problems)
        except BrokenPipeError:  # the reader had enough (`| head`): stop planning, quietly
            rows.close()  # ends the planning generator and its progress bar
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
            return 0
    else:
        temporary = out.with_name(f".{out.name}.partial")  # the file appears whole or not at all
        try:
            with temporary.open("w", encoding="utf-8") as handle:
                _write_lines(handle, rows, log.problems)
            os.replace(temporary, out)
        except OSError as exc:
            if exc.filename not in (str(temporary), str(out)):
                raise  # not the output file's fault (a model that does not load, say)
            raise BadInput(f"cannot write {out}: {exc.strerror or exc}") from None
        finally:
            temporary.unlink(missing_ok=True)
    if frames:
        console.print(f"planned {len(frames)} frame(s){f' to {out}' if out else ''}")
    return len(log.problems)
