"""``alphadrive eval compare``: eval artifacts side by side, with deltas against the first."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from alphadrive_cli.actions import ActionVocabulary
from alphadrive_cli.artifacts import Artifact, open_artifact
from alphadrive_cli.errors import BadInput


def _columns(vocabulary: ActionVocabulary) -> list[tuple[str, tuple[str, ...]]]:
    """(column title, path into metrics.json) for every compared number."""
    columns = [(f"{head} {action} F1", (head, "per_class", action, "f1"))
               for head, actions in (("speed", vocabulary.speed), ("path", vocabulary.path)) for action in actions]
    return columns + [("speed macro F1", ("speed", "macro_f1")), ("path macro F1", ("path", "macro_f1")),
                      ("planning accuracy", ("planning_accuracy",)), ("format valid", ("format_valid_rate",))]


def _value(metrics: dict, path: tuple[str, ...]) -> float | None:
    for key in path:
        if not isinstance(metrics, dict) or key not in metrics:
            return None
        metrics = metrics[key]
    return float(metrics)


def comparison(paths: Sequence[Path]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (one per artifact, first one absolute, the others with deltas)."""
    if len(paths) < 2:
        raise BadInput("compare needs at least two eval artifacts")
    artifacts: list[Artifact] = [open_artifact(path, stage="eval") for path in paths]
    vocabulary = ActionVocabulary.from_dict(artifacts[0].manifest["vocabulary"])
    columns = _columns(vocabulary)
    metrics = [json.loads((artifact.path / "metrics.json").read_text()) for artifact in artifacts]
    header = ["artifact", "frames", *(title for title, _ in columns)]
    rows = []
    for index, (artifact, values) in enumerate(zip(artifacts, metrics)):
        cells = [artifact.label, str(artifact.manifest["counts"]["frames"])]
        for _, path in columns:
            value, base = _value(values, path), _value(metrics[0], path)
            if value is None:
                cells.append("–")
            elif index == 0 or base is None:
                cells.append(f"{value:.3f}")
            else:
                cells.append(f"{value:.3f} ({value - base:+.3f})")
        rows.append(cells)
    return header, rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def rich_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    """The same as a rich table (artifacts as columns, metrics as rows, so it fits a terminal)."""
    table = Table(title="eval comparison (deltas against the first)")
    table.add_column("metric")
    for row in rows:
        table.add_column(row[0], justify="right")
    for position, title in enumerate(header[1:], start=1):
        table.add_row(title, *(row[position] for row in rows))
    return table
