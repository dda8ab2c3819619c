"""How much of a data set's plans can a small image network, trained from random weights on its train split, read
from each frame's images and the prompt?

Usage: python -m bench.view_probe DATA [DATA ...] [--label plan|speed|path] [--size 112] [--epochs 30]
       [--seeds 0 1 2] [--out FILE]

A probe of perception at the student's scale, not a planner. For each data artifact (the same episodes drawn with
other views, say `render.views: [front]` against `[bev]`), a four-layer CNN over the record's images (their channels
stacked, each resized to ``--size`` pixels) joined with what the student's prompt states (the ego speed and the
navigation instruction) is fit on the train split, its epoch chosen on the validation split, and the test split
scored once, per seed; beside it the prompt alone (`bench.label_ceiling`'s MLP of the same numbers). A view whose
probe plans more test frames right shows more of what the labels depend on to a network that learns to see from
this many frames, which is what the student's vision tower, trained from random weights too, has to do.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from alphadrive_cli.artifacts.store import open_artifact
from bench.common import run_facts
from bench.entry import run_main
from bench.label_ceiling import (
    ACTIONS,
    FOLLOWED,
    PROMPT_INPUT,
    BestOnValidation,
    categories,
    column_scale,
    fit_and_score,
    input_features,
    scored,
    seed_cells,
)
from bench.reasoning_facts import split_records
from bench.report import report

Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # images (uint8), prompt numbers, targets


def frame_pixels(artifact: Path, record: dict[str, Any], size: int) -> np.ndarray:
    """The record's images resized to ``size`` pixels, their RGB channels stacked in the record's view order."""
    views = [
        np.asarray(Image.open(artifact / image).convert("RGB").resize((size, size), Image.BILINEAR))
        for image in record["images"]
    ]
    return np.concatenate(views, axis=-1).transpose(2, 0, 1)


def split_tensors(
    artifact: Path, records: dict[str, dict[str, Any]], vocab: dict[str, list[str]], size: int, label: str
) -> Split:
    """A split's images, prompt numbers and ``label``-action targets."""
    images = torch.from_numpy(np.stack([frame_pixels(artifact, record, size) for record in records.values()]))
    return images, *input_features(records, vocab, PROMPT_INPUT, label)


class ImageProbe(torch.nn.Module):
    """Four strided convolutions over the images, flattened (where a vehicle is stays in the features), joined with
    the prompt's numbers, then one hidden layer."""

    def __init__(self, channels: int, size: int, numbers: int, classes: int) -> None:
        super().__init__()
        widths = [channels, 16, 32, 32, 32]
        layers: list[torch.nn.Module] = []
        for index, (inputs, outputs) in enumerate(zip(widths, widths[1:], strict=False)):
            kernel = 5 if index == 0 else 3
            layers += [torch.nn.Conv2d(inputs, outputs, kernel, stride=2, padding=kernel // 2), torch.nn.ReLU()]
        self.convolutions = torch.nn.Sequential(*layers, torch.nn.Flatten())
        with torch.no_grad():
            flat = self.convolutions(torch.zeros(1, channels, size, size)).shape[1]
        self.head = torch.nn.Sequential(
            torch.nn.Linear(flat + numbers, 128), torch.nn.ReLU(), torch.nn.Linear(128, classes)
        )

    def forward(self, images: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.convolutions(images.float() / 255.0), numbers], dim=1))


def fit_probe(
    train: Split, val: Split, seed: int, epochs: int, label: str, batch: int = 64
) -> tuple[Callable[[Split], torch.Tensor], float, int]:
    """Train an :class:`ImageProbe` on ``train`` and keep the epoch best on ``val``: its predictor (a split to action
    indices), that validation accuracy and the epoch."""
    torch.manual_seed(seed)
    mean, std = column_scale(train[1])
    model = ImageProbe(train[0].shape[1], train[0].shape[2], train[1].shape[1], len(ACTIONS[label]))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)

    def predict(split: Split) -> torch.Tensor:
        model.eval()
        with torch.no_grad():
            chunks = [
                model(split[0][start : start + 256], (split[1][start : start + 256] - mean) / std).argmax(-1)
                for start in range(0, len(split[2]), 256)
            ]
        return torch.cat(chunks)

    best = BestOnValidation(model)
    for epoch in range(1, epochs + 1):
        model.train()
        for indices in torch.randperm(len(train[2])).split(batch):
            optimizer.zero_grad()
            logits = model(train[0][indices], (train[1][indices] - mean) / std)
            torch.nn.functional.cross_entropy(logits, train[2][indices]).backward()
            optimizer.step()
        best.offer((predict(val) == val[2]).float().mean().item(), epoch)
    return predict, *best.restore()


def probe(data: Path, seeds: Sequence[int], label: str, size: int, epochs: int) -> dict[str, Any]:
    """Both inputs' scores on one data set, once per seed."""
    artifact = open_artifact(data, ("data",), check=False).path
    splits = {name: split_records(data, name) for name in ("train", "val", "test")}
    vocab = categories(list(splits["train"].values()))
    train, val, test = (split_tensors(artifact, splits[name], vocab, size, label) for name in splits)
    result: dict[str, Any] = {
        "data": str(data),
        "views": [Path(image).stem.rsplit("_", 1)[-1] for image in next(iter(splits["test"].values()))["images"]],
        "frames": {name: len(records) for name, records in splits.items()},
        "images + prompt": [],
        PROMPT_INPUT: [],
    }
    for seed in seeds:
        predict, best_val, best_epoch = fit_probe(train, val, seed, epochs, label)
        result["images + prompt"].append(
            {"val_accuracy": best_val, "epoch": best_epoch, **scored(predict(test), test[2], label)}
        )
        result[PROMPT_INPUT].append(fit_and_score(train[1:], val[1:], test[1:], seed, label=label))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, nargs="+", help="data artifacts (`data sim`), each probed on its own")
    parser.add_argument("--label", choices=sorted(ACTIONS), default="plan", help="the action the probe predicts")
    parser.add_argument("--size", type=int, default=112, help="pixels a side each image is resized to")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    results = [probe(data, args.seeds, args.label, args.size, args.epochs) for data in args.data]
    accuracy, followed = f"test {args.label} accuracy", FOLLOWED[args.label]
    rows = [
        {
            "data": result["data"],
            "views": ", ".join(result["views"]),
            "input": f"{name} ({len(runs)} seeds)",
            **seed_cells(runs, args.label),
            "epochs chosen": ", ".join(str(run["epoch"]) for run in runs),
        }
        for result in results
        for name, runs in (("images + prompt", result["images + prompt"]), (PROMPT_INPUT, result[PROMPT_INPUT]))
    ]
    report(
        ["data", "views", "input", accuracy, *(f"{action} recall" for action in followed), "epochs chosen"],
        rows,
        args.out,
        **run_facts("bench.view_probe", started),
        label=args.label,
        size=args.size,
        epochs=args.epochs,
        seeds=args.seeds,
        results=results,
    )


if __name__ == "__main__":
    run_main(main)
