"""Finish a data artifact: split files, contact sheets, class counts, label audit (manifest + tables on stderr)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alphadrive_cli.actions import ActionVocabulary
from alphadrive_cli.artifacts.store import Artifact, ArtifactWriter
from alphadrive_cli.config.schemas import LabelRules
from alphadrive_cli.data.audit import audit_records, audit_summary, audit_table
from alphadrive_cli.data.contact_sheet import contact_sheet
from alphadrive_cli.data.records import SPLITS, Record, write_split
from alphadrive_cli.data.summary import class_counts, class_table
from alphadrive_cli.ui import console

CONTACT_SHEET = "contact_sheet.png"
CLASS_SHEETS = "sheets"  # sheets/<speed|path>-<ACTION>.png: frames of one class
CLASS_SHEET_GRID = (4, 3)  # columns, rows


def class_sheets(writer: ArtifactWriter, records: Sequence[Record], vocabulary: ActionVocabulary, seed: int) -> None:
    """One contact sheet per speed and path class that has frames, so a person can check each label by eye."""
    columns, rows = CLASS_SHEET_GRID
    for axis, actions in (("speed", vocabulary.speed), ("path", vocabulary.path)):
        for action in actions:
            members = [record for record in records if getattr(record, f"{axis}_action") == action]
            if members:
                path = writer.path(f"{CLASS_SHEETS}/{axis}-{action}.png")
                contact_sheet(writer.dir, members, path, columns=columns, rows=rows, seed=seed)


def publish_dataset(
    writer: ArtifactWriter,
    records_by_split: Mapping[str, Sequence[Record]],
    vocabulary: ActionVocabulary,
    seed: int,
    extra: Mapping[str, Any] | None = None,
    counts: Mapping[str, Any] | None = None,
    label_rules: LabelRules | None = None,
) -> Artifact:
    """Write ``<split>.jsonl`` for every split, the contact sheets and the manifest; print the class table.

    With ``label_rules`` (the data set's own labels, not a copy of another's) the labels are audited
    against each record's facts: the summary goes into the manifest's ``audit`` and onto stderr."""
    for split in SPLITS:
        write_split(writer.path(f"{split}.jsonl"), records_by_split.get(split, ()))
    every = [record for split in SPLITS for record in records_by_split.get(split, ())]
    contact_sheet(writer.dir, every, writer.path(CONTACT_SHEET), seed=seed)
    class_sheets(writer, every, vocabulary, seed)
    per_split = class_counts({split: records_by_split.get(split, ()) for split in SPLITS}, vocabulary)
    console.print(class_table(per_split, f"{writer.stage} {writer.name}: frames per class and split"))
    audit: dict[str, Any] = {}
    if label_rules is not None:
        audit = {"audit": audit_summary(records_by_split, audit_records(records_by_split, label_rules))}
        console.print(audit_table(audit["audit"], f"{writer.stage} {writer.name}: label audit"))
    return writer.publish(
        counts={"frames": len(every), **{split: per_split[split]["frames"] for split in SPLITS}, **dict(counts or {})},
        extra={"vocabulary": vocabulary.to_dict(), "classes": per_split, **audit, **dict(extra or {})},
    )


def link_image(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (a copy where links fail), making its folder; an existing target stays."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
