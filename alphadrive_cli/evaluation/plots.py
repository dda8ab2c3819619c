"""Pictures of an evaluation: confusion matrices and per-class F1 bars (matplotlib, written as PNG)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def confusion_png(matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str, path: Path) -> None:
    """A confusion matrix (rows: truth, columns: prediction, last column: no valid answer) with counts."""
    columns = [*classes, "invalid"]
    figure, axes = plt.subplots(figsize=(1.1 * len(columns) + 2.5, 0.9 * len(classes) + 2))
    image = axes.imshow(matrix, cmap="Blues", aspect="auto")
    peak = max((max(row) for row in matrix), default=0) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            axes.text(j, i, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black")
    axes.set_xticks(range(len(columns)), columns, rotation=35, ha="right")
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("ground truth")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, fraction=0.04)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def f1_bars_png(per_head: Mapping[str, Mapping[str, Mapping[str, float]]], title: str, path: Path) -> None:
    """Per-class F1 for every head side by side (``per_head[head][class]["f1"]``)."""
    f1_comparison_png(
        {"": {head: {name: scores["f1"] for name, scores in classes.items()} for head, classes in per_head.items()}},
        title,
        path,
    )


def f1_comparison_png(runs: Mapping[str, Mapping[str, Mapping[str, float]]], title: str, path: Path) -> None:
    """Per-class F1 of one or more runs (``runs[label][head][class]``), one panel per head, the runs' bars side
    by side within each class (a single run's bars carry their values)."""
    labels = list(runs)
    heads = list(runs[labels[0]])
    width = 0.8 / len(labels)
    widest = max(len(runs[labels[0]][head]) for head in heads)
    figure, axes = plt.subplots(
        1, len(heads), figsize=(max(5.0, 0.15 * widest * len(labels) + 2) * len(heads), 4.5), squeeze=False
    )
    for axis, head in zip(axes[0], heads, strict=False):
        classes = list(runs[labels[0]][head])
        for index, label in enumerate(labels):
            values = [runs[label][head][name] for name in classes]
            offset = (index - (len(labels) - 1) / 2) * width
            bars = axis.bar(
                [position + offset for position in range(len(classes))],
                values,
                width,
                label=label or None,
                color="#3b7dd8" if len(labels) == 1 else None,
            )
            if len(labels) == 1:
                axis.bar_label(bars, labels=[f"{value:.2f}" for value in values], fontsize=8)
        axis.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
        axis.set_ylim(0, 1.08)
        axis.set_ylabel("F1")
        axis.set_title(f"{head} F1")
    if len(labels) > 1:
        axes[0][-1].legend(fontsize=8, loc="upper right")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
