"""Curves of a trainer's ``log_history`` as a PNG (matplotlib): one panel per quantity group."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# (panel title, log keys drawn in it)
Panels = Sequence[tuple[str, Sequence[str]]]
MAX_COLUMNS = 3


def curve(log_history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one logged quantity."""
    points = [
        (int(entry["step"]), float(entry[key]))
        for entry in log_history
        if key in entry and "step" in entry and entry[key] is not None
    ]
    return [step for step, _ in points], [value for _, value in points]


def curves_png(log_history: Sequence[Mapping[str, Any]], panels: Panels, title: str, path: Path) -> list[str]:
    """One panel per entry of ``panels`` that has anything logged (a legend where it has several
    curves); returns the keys drawn."""
    drawn = [(label, [key for key in keys if curve(log_history, key)[0]]) for label, keys in panels]
    drawn = [(label, keys) for label, keys in drawn if keys]
    columns = min(max(len(drawn), 1), MAX_COLUMNS)
    rows = max(math.ceil(len(drawn) / columns), 1)
    figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.4 * rows), squeeze=False)
    for axis in axes.flat[len(drawn) :]:
        axis.axis("off")
    for axis, (label, keys) in zip(axes.flat, drawn, strict=False):
        for key in keys:
            steps, values = curve(log_history, key)
            axis.plot(
                steps,
                values,
                marker="." if len(steps) < 50 else None,
                label=key.split("/")[-2] if key.count("/") >= 2 else key,
            )
        if len(keys) > 1:
            axis.legend(fontsize=7)
        axis.set_xlabel("step")
        axis.set_title(label)
        axis.grid(alpha=0.3)
    if not drawn:
        axes[0][0].axis("on")
        axes[0][0].text(0.5, 0.5, "nothing logged", ha="center", va="center")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return [key for _, keys in drawn for key in keys]
