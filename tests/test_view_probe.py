"""bench/view_probe.py: a small image network from random weights, fit on a split's frames and prompt numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.label_ceiling import ACTIONS
from bench.view_probe import ImageProbe, fit_probe, frame_pixels


def _frames(count: int, seed: int, size: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images whose label is DECELERATE exactly where a bright block sits in the top half (KEEP in the bottom
    half), with prompt numbers that say nothing about it."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.zeros(count, 3, size, size, dtype=torch.uint8)
    near = torch.rand(count, generator=generator) < 0.5
    for index, top in enumerate(near.tolist()):
        row = int(torch.randint(0, size // 2 - 4, (1,), generator=generator)) + (0 if top else size // 2)
        column = int(torch.randint(0, size - 4, (1,), generator=generator))
        images[index, :, row : row + 4, column : column + 4] = 255
    numbers = torch.rand(count, 3, generator=generator)
    speed = ACTIONS["speed"]
    targets = torch.tensor([speed.index("DECELERATE" if top else "KEEP") for top in near.tolist()])
    return images, numbers, targets


def test_the_probe_learns_what_only_the_image_shows() -> None:
    train, val, test = _frames(240, 0), _frames(80, 1), _frames(80, 2)
    predict, best_val, epoch = fit_probe(train, val, seed=0, epochs=12, label="speed")
    accuracy = (predict(test) == test[2]).float().mean().item()
    assert accuracy > 0.9 and best_val > 0.9 and 1 <= epoch <= 12  # the numbers alone are at chance, about 0.5


def test_the_probe_keeps_where_things_are_and_takes_the_prompt_numbers() -> None:
    probe = ImageProbe(channels=6, size=32, numbers=4, classes=9)
    logits = probe(torch.zeros(2, 6, 32, 32, dtype=torch.uint8), torch.zeros(2, 4))
    assert logits.shape == (2, 9)
    assert probe.head[0].in_features == 32 * 2 * 2 + 4  # four stride-2 layers: 32 px -> 2 x 2, flattened


def test_a_frame_s_views_stack_as_channels_in_the_record_s_order(tmp_path: Path) -> None:
    for name, value in (("front", 10), ("bev", 200)):
        Image.fromarray(np.full((40, 40, 3), value, dtype=np.uint8)).save(tmp_path / f"f_{name}.png")
    pixels = frame_pixels(tmp_path, {"images": ["f_front.png", "f_bev.png"]}, size=16)
    assert pixels.shape == (6, 16, 16)
    assert pixels[:3].max() == 10 and pixels[3:].min() == 200
