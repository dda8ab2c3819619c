"""Training curves of a trainer's ``log_history``: loss, learning rate and gradient norm (matplotlib, PNG)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CURVES = (("loss", "training loss"), ("learning_rate", "learning rate"), ("grad_norm", "gradient norm"))


def curve(log_history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one logged quantity."""
    points = [(int(entry["step"]), float(entry[key])) for entry in log_history
              if key in entry and "step" in entry and entry[key] is not None]
    return [step for step, _ in points], [value for _, value in points]


def training_curves_png(log_history: Sequence[Mapping[str, Any]], title: str, path: Path) -> list[str]:
    """One panel per logged curve (loss, learning rate, grad norm); returns the curves drawn."""
    drawn = [(key, label) for key, label in CURVES if curve(log_history, key)[0]]
    figure, axes = plt.subplots(1, max(len(drawn), 1), figsize=(4.5 * max(len(drawn), 1), 3.6), squeeze=False)
    for axis, (key, label) in zip(axes[0], drawn):
        steps, values = curve(log_history, key)
        axis.plot(steps, values, marker="." if len(steps) < 50 else None, color="#3b7dd8")
        axis.set_xlabel("step")
        axis.set_title(label)
        axis.grid(alpha=0.3)
    if not drawn:
        axes[0][0].text(0.5, 0.5, "nothing logged", ha="center", va="center")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return [key for key, _ in drawn]
