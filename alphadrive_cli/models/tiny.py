"""Build a tiny random-weight Qwen-VL model with a real processor, fully offline."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, ProcessorMixin
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from alphadrive_cli.models.loading import build_random_model, config_from_file
from alphadrive_cli.models.processor import processor_class, video_processor_kwargs
from alphadrive_cli.models.tokenizer import END_OF_TURN, IMAGE_TOKEN, PAD_TOKEN, VIDEO_TOKEN, VISION_END, VISION_START, build_tokenizer
from alphadrive_cli.resources import CONFIG_DIR

TINY_CONFIG_FILES = {
    "qwen2_vl": CONFIG_DIR / "models" / "tiny-qwen2-vl.json",
    "qwen2_5_vl": CONFIG_DIR / "models" / "tiny-qwen2.5-vl.json",
}
CHAT_TEMPLATE_FILE = CONFIG_DIR / "models" / "qwen-vl-chat-template.jinja"


def build_tiny_model(
    family: str, seed: int, vocab_size: int, min_pixels: int, max_pixels: int
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """A random-weight model of ``family`` and its processor (tokenizer, image processor, chat template)."""
    tokenizer = build_tokenizer(vocab_size)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)
    processor = processor_class(family)(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE_FILE.read_text(),
        **video_processor_kwargs(),
    )
    token_id = tokenizer.convert_tokens_to_ids
    config = config_from_file(
        TINY_CONFIG_FILES[family],
        text_config={"vocab_size": len(tokenizer), "bos_token_id": None,
                     "eos_token_id": token_id(END_OF_TURN), "pad_token_id": token_id(PAD_TOKEN)},
        image_token_id=token_id(IMAGE_TOKEN),
        video_token_id=token_id(VIDEO_TOKEN),
        vision_start_token_id=token_id(VISION_START),
        vision_end_token_id=token_id(VISION_END),
    )
    torch.manual_seed(seed)
    model = build_random_model(config)
    model.generation_config.eos_token_id = token_id(END_OF_TURN)
    model.generation_config.pad_token_id = token_id(PAD_TOKEN)
    model.generation_config.bos_token_id = None
    return model, processor
