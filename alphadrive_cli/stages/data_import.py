"""``alphadrive data import``: a ``data`` artifact from the user's own frames or ego poses."""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table
from rich.text import Text

from alphadrive_cli.actions import DEFAULT_VOCABULARY
from alphadrive_cli.artifacts.store import (
    VERSIONED_NAME,
    Artifact,
    ArtifactWriter,
    OutputSpec,
    sha256_file,
    validate_name,
)
from alphadrive_cli.config.schemas import ImportConfig
from alphadrive_cli.data.audit import audit_records
from alphadrive_cli.data.importers import (
    ImageRoot,
    Imported,
    ProblemLog,
    Source,
    assign_split,
    check_source,
    import_frames,
    import_poses,
    read_rows,
)
from alphadrive_cli.data.publish import publish_dataset
from alphadrive_cli.data.records import IMAGE_DIR, SPLITS, Record
from alphadrive_cli.errors import BadInput
from alphadrive_cli.ui import console

PROBLEMS_SHOWN = 20
LABEL_FIELDS = ("speed_action", "path_action")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_import_name(source: Path) -> str:
    """The artifact name when ``--name`` is not given: the source file's stem, made a valid name."""
    name = _NAME_UNSAFE.sub("-", source.stem).strip("._-")[:100]
    match = VERSIONED_NAME.match(name)
    if match:  # "drive-v3" would read as version 3 of "drive"
        name = f"{match['name']}_v{match['version']}"
    return validate_name(name or "import")


def run(config: ImportConfig, output: OutputSpec, *, source: Path) -> Artifact:
    """Check every row of ``source``, copy the good rows' images and publish them as a ``data`` artifact."""
    check_source(source)
    name = validate_name(output.name) if output.name else default_import_name(source)
    log = ProblemLog(str(source), config.strict)
    frames = _read(source, config, log)
    report_problems(log)
    check_labels_possible(frames, config, source)
    if not frames:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(log.skipped.items()))
        unlabelled = log.problems and all(problem["detail"] in LABEL_FIELDS for problem in log.problems)
        hint = "; to plan on frames without labels, use alphadrive predict --frames" if unlabelled else ""
        raise BadInput(f"no record of {source} could be imported ({reasons or 'the file has no rows'}){hint}")
    settings = config.model_dump(mode="json")
    digest = sha256_file(source)
    with output.begin("data", name, settings, identity={"config": settings, "source_sha256": digest}) as writer:
        _copy_images(writer, frames)
        return publish_dataset(
            writer,
            _by_split(frames, config),
            DEFAULT_VOCABULARY,
            seed=config.seed,
            extra={"source": {"file": source.name, "kind": config.kind, "sha256": digest}, **log.manifest_entry()},
            counts={"skipped": sum(log.skipped.values())},
            label_rules=config.labels,
        )


def _images_root(source: Path, config: ImportConfig) -> ImageRoot:
    folder = Path(config.images_root) if config.images_root else source.parent
    if not folder.is_dir():
        raise BadInput(f"images_root {folder} is not a folder")
    return ImageRoot(folder.resolve(), max_pixels=round(config.max_image_megapixels * 1e6))


def _read(source: Path, config: ImportConfig, log: ProblemLog) -> list[Imported]:
    context = Source(source, _images_root(source, config), DEFAULT_VOCABULARY)
    rows = read_rows(source)
    if config.kind == "poses":
        return import_poses(rows, context, config.labels, log)
    return import_frames(rows, context, log)


def _copy_images(writer: ArtifactWriter, frames: Sequence[Imported]) -> None:
    shutil.rmtree(writer.dir / IMAGE_DIR, ignore_errors=True)  # images of an interrupted earlier attempt
    for frame in frames:
        for file, target in zip(frame.files, frame.record.images, strict=False):
            shutil.copyfile(file, writer.path(target))


def _by_split(frames: Sequence[Imported], config: ImportConfig) -> dict[str, list[Record]]:
    """Explicit splits win; otherwise frames sharing a split key (episode, scene or id) share a split."""
    splits: dict[str, list[Record]] = {split: [] for split in SPLITS}
    for frame in frames:
        splits[frame.split or assign_split(frame.split_key, config.seed, config.split)].append(frame.record)
    return splits


def lines_table(title: str, kind: str, rows: Sequence[tuple[int | None, str, str]]) -> Table:
    """The first :data:`PROBLEMS_SHOWN` ``(line, kind, detail)`` rows of a source file, and how many more."""
    table = Table(title=title)
    for column in ("line", kind, "detail"):
        table.add_column(column, justify="right" if column == "line" else "left")
    for line, what, detail in rows[:PROBLEMS_SHOWN]:
        table.add_row(str(line), what, Text(detail))
    if len(rows) > PROBLEMS_SHOWN:
        table.caption = f"and {len(rows) - PROBLEMS_SHOWN} more"
    return table


def check_labels_possible(frames: Sequence[Imported], config: ImportConfig, source: Path) -> None:
    """Audit the labels: list impossible ones by line and keep them (they are the user's); ``strict`` fails on one."""
    findings = audit_records({"import": [frame.record for frame in frames]}, config.labels)
    if findings and config.strict:
        first = findings[0]
        raise BadInput(f"{source} line {first.line}: impossible label: {first.check}: {first.detail}")
    if findings:
        title = f"impossible labels in {source.name} (kept; --strict refuses them)"
        console.print(lines_table(title, "check", [(f.line, f.check, f.detail) for f in findings]))


def report_problems(log: ProblemLog) -> None:
    """On stderr: the first bad rows with their line numbers, then how many rows were skipped and why."""
    if log.problems:
        rows = [(problem["line"], problem["reason"], problem["detail"]) for problem in log.ordered()]
        console.print(lines_table(f"skipped rows of {log.file}", "reason", rows))
    for reason, count in sorted(log.skipped.items()):
        console.print(Text(f"skipped {count} row(s): {reason}"))
