"""Qwen-VL processors, with an image-only variant for machines without torchvision.

transformers 5 builds a Qwen-VL processor only together with its video processor, which needs
torchvision; the CPU build of torch that alphadrive installs has no matching torchvision. alphadrive
never feeds video, so there it uses the same processor class minus the video part. It saves the
standard files plus Qwen-VL's default video settings, so a machine with torchvision loads them with
``AutoProcessor`` (checked on the GPU machine, see tests/test_gpu.py).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from transformers import AutoProcessor, ProcessorMixin, Qwen2_5_VLProcessor, Qwen2VLProcessor
from transformers.utils import is_torchvision_available

from alphadrive_cli.errors import BadInput

PROCESSOR_CLASSES: dict[str, type[ProcessorMixin]] = {
    "qwen2_vl": Qwen2VLProcessor,
    "qwen2_5_vl": Qwen2_5_VLProcessor,
}
SUPPORTED_FAMILIES = tuple(PROCESSOR_CLASSES)


@cache
def image_only_processor_class(base: type[ProcessorMixin]) -> type[ProcessorMixin]:
    """A subclass of a Qwen-VL processor class that needs no video processor (and no torchvision)."""

    def __init__(
        self: Any, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kwargs: Any
    ) -> None:
        base.__init__(
            self,
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=None,
            chat_template=chat_template,
            **kwargs,
        )
        self.video_processor = None

    def to_dict(self: Any) -> dict[str, Any]:
        return {**base.to_dict(self), "processor_class": base.__name__, "video_processor": _default_video_config(self)}

    return type(
        f"ImageOnly{base.__name__}", (base,), {"__init__": __init__, "to_dict": to_dict, "__doc__": base.__doc__}
    )


def _default_video_config(processor: Any) -> dict[str, Any]:
    """The video part a torchvision machine rebuilds on load: Qwen-VL's defaults, the image's patching."""
    image = processor.image_processor
    return {
        "video_processor_type": "Qwen2VLVideoProcessor",
        "patch_size": image.patch_size,
        "temporal_patch_size": image.temporal_patch_size,
        "merge_size": image.merge_size,
        "image_mean": list(image.image_mean),
        "image_std": list(image.image_std),
    }


def processor_class(family: str) -> type[ProcessorMixin]:
    """The processor class to use for a model family on this machine."""
    if family not in PROCESSOR_CLASSES:
        raise BadInput(f"unsupported model family {family!r}: alphadrive supports {', '.join(SUPPORTED_FAMILIES)}")
    base = PROCESSOR_CLASSES[family]
    return base if is_torchvision_available() else image_only_processor_class(base)


def video_processor_kwargs() -> dict[str, Any]:
    """Keyword arguments that give a freshly built processor its video part where torchvision allows."""
    if not is_torchvision_available():
        return {}
    from transformers import Qwen2VLVideoProcessor  # importable only with torchvision

    return {"video_processor": Qwen2VLVideoProcessor()}


def model_family(model_dir: Path) -> str:
    """The ``model_type`` recorded in a saved model's ``config.json``."""
    try:
        return json.loads((model_dir / "config.json").read_text())["model_type"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BadInput(f"{model_dir} has no readable config.json with a model_type: {exc}") from None


def load_processor(source: str | Path, family: str | None = None) -> ProcessorMixin:
    """Load a processor from a local directory or hub id; image-only where torchvision is missing."""
    if is_torchvision_available():
        return AutoProcessor.from_pretrained(str(source))
    family = family or model_family(Path(source))
    return processor_class(family).from_pretrained(str(source))
