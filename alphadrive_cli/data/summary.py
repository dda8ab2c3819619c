"""Per-split class counts of a data set: for the manifest and as a rich table on stderr."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from alphadrive_cli.actions import ActionVocabulary
from alphadrive_cli.data.records import Record


def class_counts(records_by_split: Mapping[str, Sequence[Record]], vocabulary: ActionVocabulary) -> dict[str, Any]:
    """``{split: {"frames": n, "speed": {action: n}, "path": {action: n}, "scenario": {name: n}}}``."""
    counts: dict[str, Any] = {}
    for split, records in records_by_split.items():
        speed = Counter(record.speed_action for record in records)
        path = Counter(record.path_action for record in records)
        scenario = Counter(str(record.source.get("scenario", record.source.get("origin", "?"))) for record in records)
        counts[split] = {
            "frames": len(records),
            "speed": {action: speed.get(action, 0) for action in vocabulary.speed},
            "path": {action: path.get(action, 0) for action in vocabulary.path},
            "scenario": dict(sorted(scenario.items())),
        }
    return counts


def class_table(counts: Mapping[str, Any], title: str) -> Table:
    """A table with one row per action and scenario and one column per split."""
    splits = list(counts)
    table = Table(title=title)
    table.add_column("")
    table.add_column("class")
    for split in splits:
        table.add_column(split, justify="right")
    table.add_row("", "frames", *(str(counts[split]["frames"]) for split in splits), end_section=True)
    for group in ("speed", "path", "scenario"):
        names = list(dict.fromkeys(name for split in splits for name in counts[split][group]))
        for position, name in enumerate(names):
            cells = []
            for split in splits:
                total = counts[split]["frames"] or 1
                value = counts[split][group].get(name, 0)
                cells.append(f"{value} ({100 * value / total:.0f}%)")
            table.add_row(group if position == 0 else "", name, *cells, end_section=position == len(names) - 1)
    return table
