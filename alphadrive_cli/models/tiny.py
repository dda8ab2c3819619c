"""Build a tiny random-weight Qwen-VL model with a real processor, fully offline."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import PreTrainedModel, ProcessorMixin
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from alphadrive_cli.errors import BadInput
from alphadrive_cli.models.loading import build_random_model, config_from_file
from alphadrive_cli.models.processor import processor_class, video_processor_kwargs
from alphadrive_cli.models.tokenizer import (
    END_OF_TURN,
    IMAGE_TOKEN,
    PAD_TOKEN,
    VIDEO_TOKEN,
    VISION_END,
    VISION_START,
    build_tokenizer,
)
from alphadrive_cli.resources import CONFIG_DIR

TINY_CONFIG_FILES = {
    "qwen2_vl": CONFIG_DIR / "models" / "tiny-qwen2-vl.json",
    "qwen2_5_vl": CONFIG_DIR / "models" / "tiny-qwen2.5-vl.json",
}
CHAT_TEMPLATE_FILE = CONFIG_DIR / "models" / "qwen-vl-chat-template.jinja"


def build_tiny_model(
    family: str,
    seed: int,
    vocab_size: int,
    min_pixels: int,
    max_pixels: int,
    dimensions: Path | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """A random-weight model of ``family`` and its processor (tokenizer, image processor, chat template).

    ``dimensions`` (default: the family's tiny file) may be a real architecture's, e.g. Qwen2-VL-2B:
    its vocabulary size is kept (the offline tokenizer uses the first ids) and its special-token ids
    are replaced by the offline tokenizer's, so the processor and the model agree.
    """
    tokenizer = build_tokenizer(vocab_size)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)
    processor = processor_class(family)(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE_FILE.read_text(),
        **video_processor_kwargs(),
    )
    token_id = tokenizer.convert_tokens_to_ids
    source = dimensions or TINY_CONFIG_FILES[family]
    declared = config_from_file(source)
    if declared.model_type != family:
        raise BadInput(
            f"{source} describes a {declared.model_type} model, not {family}: pass --family {declared.model_type}"
        )
    config = config_from_file(
        source,
        text_config={
            "vocab_size": max(len(tokenizer), declared.text_config.vocab_size if dimensions else 0),
            "bos_token_id": None,
            "eos_token_id": token_id(END_OF_TURN),
            "pad_token_id": token_id(PAD_TOKEN),
        },
        image_token_id=token_id(IMAGE_TOKEN),
        video_token_id=token_id(VIDEO_TOKEN),
        vision_start_token_id=token_id(VISION_START),
        vision_end_token_id=token_id(VISION_END),
    )
    torch.manual_seed(seed)
    model = build_random_model(config, dtype=dtype)
    model.generation_config.eos_token_id = token_id(END_OF_TURN)
    model.generation_config.pad_token_id = token_id(PAD_TOKEN)
    model.generation_config.bos_token_id = None
    return model, processor
