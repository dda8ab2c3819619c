"""``alphadrive data audit``: the impossible labels of a data artifact, checked against each record's own facts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from alphadrive_cli.artifacts.store import Artifact, lineage, open_artifact
from alphadrive_cli.config.schemas import LabelRules
from alphadrive_cli.data.audit import audit_records, audit_summary
from alphadrive_cli.data.records import SPLITS, dataset_vocabulary, iter_split


def recorded_rules(artifact: Artifact) -> LabelRules:
    """The label rules of the nearest artifact in the lineage that records them (distill copies its data's
    labels and records none); the defaults where none does."""
    frontier = [lineage(artifact)]
    while frontier:
        node = frontier.pop(0)
        if node.artifact is not None:
            manifest = node.artifact.manifest
            recorded = manifest.get("label_rules") or (manifest.get("config") or {}).get("labels")
            if recorded:
                return LabelRules.model_validate(recorded)
            frontier.extend(node.parents)
    return LabelRules()


def audit_dataset(path: Path) -> dict[str, Any]:
    """The audit summary of every split of a ``data`` or ``distill`` artifact, with the rules it used."""
    artifact = open_artifact(path, stage=("data", "distill"))
    vocabulary = dataset_vocabulary(artifact)
    rules = recorded_rules(artifact)
    records = {
        split: list(iter_split(artifact, split, vocabulary))
        for split in SPLITS
        if (artifact.path / f"{split}.jsonl").is_file()
    }
    findings = audit_records(records, rules)
    summary = audit_summary(records, findings)
    return {"artifact": artifact.label, "label_rules": rules.model_dump(), **summary}


def examples_table(summary: dict[str, Any]) -> Table | None:
    """The first impossible records (with their source line where they were imported); None when there are none."""
    if not summary["examples"]:
        return None
    table = Table(title="first impossible records")
    for column in ("split", "record", "line", "check", "detail"):
        table.add_column(column)
    for example in summary["examples"]:
        table.add_row(
            example["split"],
            Text(example["record_id"]),
            str(example.get("line", "")),
            example["check"],
            Text(example["detail"]),
        )
    return table
