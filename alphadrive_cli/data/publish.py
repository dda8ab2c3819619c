"""Finish a data artifact: split files, contact sheet, class counts (manifest + table on stderr)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from alphadrive_cli.actions import ActionVocabulary
from alphadrive_cli.artifacts.store import Artifact, ArtifactWriter
from alphadrive_cli.data.contact_sheet import contact_sheet
from alphadrive_cli.data.records import SPLITS, Record, write_split
from alphadrive_cli.data.summary import class_counts, class_table
from alphadrive_cli.ui import console

CONTACT_SHEET = "contact_sheet.png"


def publish_dataset(
    writer: ArtifactWriter,
    records_by_split: Mapping[str, Sequence[Record]],
    vocabulary: ActionVocabulary,
    seed: int,
    extra: Mapping[str, Any] | None = None,
    counts: Mapping[str, Any] | None = None,
) -> Artifact:
    """Write ``<split>.jsonl`` for every split, the contact sheet and the manifest; print the class table."""
    for split in SPLITS:
        write_split(writer.path(f"{split}.jsonl"), records_by_split.get(split, ()))
    every = [record for split in SPLITS for record in records_by_split.get(split, ())]
    contact_sheet(writer.dir, every, writer.path(CONTACT_SHEET), seed=seed)
    per_split = class_counts({split: records_by_split.get(split, ()) for split in SPLITS}, vocabulary)
    console.print(class_table(per_split, f"{writer.stage} {writer.name}: frames per class and split"))
    return writer.publish(
        counts={"frames": len(every), **{split: per_split[split]["frames"] for split in SPLITS}, **dict(counts or {})},
        extra={"vocabulary": vocabulary.to_dict(), "classes": per_split, **dict(extra or {})},
    )
