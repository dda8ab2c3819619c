"""Each frame decoded once and patched once, however often GRPO's trainer asks for it.

TRL's GRPOTrainer repeats every prompt ``num_generations`` times, re-fetches a rollout's whole batch at each
of the rollout's optimiser steps, and runs the processor over the batch twice per rollout (for generation and
for the scoring forwards). Without these caches a frame is decoded ``steps_per_generation x num_generations``
times and patched ``2 x num_generations`` times per rollout; with them, once each. Both are bounded (least
recently used entries go first) and give exactly what the uncached code gives.

Where a batch's patches are assembled matters too: at 512 completions a rollout's pixel values are about 600 MB.
Assembled as a NumPy array, TRL copies them twice on the host before generation and then to the GPU twice a
rollout; assembled on the training device (:func:`assemble_on`), each distinct image goes there once and TRL uses
the tensor as it is.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_utils import make_flat_list_of_images

from alphadrive_cli.models.stand_in import StandIn

FRAME_KEY = "alphadrive_frame"  # set in a decoded frame's PIL ``info``, which copies keep
CACHED_OUTPUTS = frozenset({"pixel_values", "image_grid_thw"})


class DecodedFrames:
    """Decoded frames by path, the ``capacity`` most recently used kept; each carries its path as a key."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._frames: OrderedDict[str, Image.Image] = OrderedDict()

    def __call__(self, path: str) -> Image.Image:
        frame = self._frames.get(path)
        if frame is None:
            frame = Image.open(path)
            frame.load()  # as `datasets.Image` decodes: the file's own mode, the file closed
            frame.info[FRAME_KEY] = path
            self._frames[path] = frame
            if len(self._frames) > self.capacity:
                self._frames.popitem(last=False)
        else:
            self._frames.move_to_end(path)
        return frame


def frame_key(image: Any) -> str:
    """The path a :class:`DecodedFrames` frame came from, else a digest of the pixels."""
    if isinstance(image, Image.Image):
        key = image.info.get(FRAME_KEY)
        if isinstance(key, str):
            return key
        return f"{image.mode}{image.size}:" + hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest()
    array = np.ascontiguousarray(np.asarray(image))
    return f"{array.dtype}{array.shape}:" + hashlib.blake2b(array.tobytes(), digest_size=16).hexdigest()


class PatchedImages(StandIn):
    """A Qwen-VL image processor that patches each distinct image once: the ``capacity`` most recently used
    images' patches are kept, and a batch is assembled from them in order. The last batch assembled is kept too:
    TRL asks for the same rollout's images twice in a row, and the second time gets the same arrays instead of
    another copy of every completion's patches (hundreds of MB at 512 completions). Every other attribute is the
    wrapped processor's, and a copy or pickle of it is the wrapped processor (:class:`StandIn`)."""

    OWN = ("inner", "capacity", "device", "_patches", "_last")

    def __init__(self, inner: Any, capacity: int) -> None:
        self.inner = inner
        self.capacity = capacity
        self.device: torch.device | None = None  # where batches are assembled; None: NumPy arrays on the host
        self._patches: OrderedDict[tuple[str, str], tuple[np.ndarray | torch.Tensor, np.ndarray]] = OrderedDict()
        self._last: tuple[list[tuple[str, str]], dict[str, Any]] | None = None

    def __call__(self, images: Any, **kwargs: Any) -> BatchFeature:
        return_tensors = kwargs.pop("return_tensors", None)
        flat = make_flat_list_of_images(images)
        settings = repr(sorted(kwargs.items()))
        keys = [(frame_key(image), settings) for image in flat]
        missing = {key: image for key, image in zip(keys, flat, strict=True) if key not in self._patches}
        if missing:
            processed = self.inner(list(missing.values()), **kwargs)
            if set(processed) != CACHED_OUTPUTS:  # another processor family: nothing to cache by
                return self.inner(images, return_tensors=return_tensors, **kwargs)
            pixels, grids = np.asarray(processed["pixel_values"]), np.asarray(processed["image_grid_thw"])
            ends = np.cumsum(grids.prod(axis=1))
            for key, grid, start, end in zip(missing, grids, ends - grids.prod(axis=1), ends, strict=True):
                self._patches[key] = (pixels[start:end], grid)
        entries = [self._patches[key] for key in keys]
        for key in keys:
            self._patches.move_to_end(key)
        while len(self._patches) > max(self.capacity, len(set(keys))):
            self._patches.popitem(last=False)
        if self._last is None or self._last[0] != keys:
            assembled = {
                "pixel_values": self._assemble(keys),
                "image_grid_thw": np.stack([grid for _, grid in entries]),
            }
            self._last = (keys, assembled)
        return BatchFeature(data=dict(self._last[1]), tensor_type=return_tensors)

    def _assemble(self, keys: list[tuple[str, str]]) -> np.ndarray | torch.Tensor:
        """One batch's pixel values: on the host, or on :attr:`device`, where each distinct image's cached patches
        are moved once (the cache then holds them there)."""
        if self.device is None:
            return np.concatenate([self._patches[key][0] for key in keys])
        for key in dict.fromkeys(keys):
            pixels, grid = self._patches[key]
            if not isinstance(pixels, torch.Tensor):
                self._patches[key] = (torch.from_numpy(pixels).to(self.device), grid)
        return torch.cat([self._patches[key][0] for key in keys])


def assemble_on(processor: Any, device: torch.device) -> bool:
    """Have the :class:`PatchedImages` of ``processor`` (GRPO's) assemble every batch's pixel values on ``device``,
    the training device, as a tensor whatever tensors the caller asks for; False where it holds none."""
    patched = getattr(processor, "image_processor", None)
    if not isinstance(patched, PatchedImages):
        return False
    patched.device = device
    return True
