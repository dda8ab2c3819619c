"""Build a tiny random-weight Qwen-VL model with a real processor, fully offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from alphadrive_cli.errors import BadInput
from alphadrive_cli.models.loading import build_random_model, config_from_file
from alphadrive_cli.models.processor import processor_class, video_processor_kwargs
from alphadrive_cli.models.tokenizer import (
    END_OF_TURN,
    IMAGE_TOKEN,
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
QWEN2_CHAT_TEMPLATE_FILE = CONFIG_DIR / "models" / "qwen2-vl-chat-template.jinja"
QWEN2_EMBEDDING_ROWS = 151936  # every Qwen2(-VL) checkpoint's vocab_size: the tokenizer's 151,657 ids, padded


def build_processor(
    family: str, tokenizer: PreTrainedTokenizerBase, chat_template: str, min_pixels: int, max_pixels: int
) -> ProcessorMixin:
    """A Qwen-VL processor of ``family``: the tokenizer, Qwen-VL's image processor and the chat template."""
    return processor_class(family)(
        image_processor=Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels),
        tokenizer=tokenizer,
        chat_template=chat_template,
        **video_processor_kwargs(),
    )


def special_token_config(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """Config keys that tie a model to its tokenizer's vision tokens (``config_from_file`` overrides)."""
    token_id = tokenizer.convert_tokens_to_ids
    return {
        "image_token_id": token_id(IMAGE_TOKEN),
        "video_token_id": token_id(VIDEO_TOKEN),
        "vision_start_token_id": token_id(VISION_START),
        "vision_end_token_id": token_id(VISION_END),
    }


def set_generation_tokens(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Generation stops at the end of turn and pads with the tokenizer's pad token; no BOS."""
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = None


def tiny_tokenizer(kind: str, vocab_size: int) -> tuple[PreTrainedTokenizerBase, str, int]:
    """The tokenizer of a tiny model (``offline``: trained on driving text; ``qwen2``: Qwen2's real one), its chat
    template and the embedding rows the model needs for it."""
    if kind == "qwen2":
        from alphadrive_cli.models.qwen2_tokenizer import build_qwen2_tokenizer

        return build_qwen2_tokenizer(), QWEN2_CHAT_TEMPLATE_FILE.read_text(), QWEN2_EMBEDDING_ROWS
    tokenizer = build_tokenizer(vocab_size)
    return tokenizer, CHAT_TEMPLATE_FILE.read_text(), len(tokenizer)


def build_tiny_model(
    family: str,
    seed: int,
    vocab_size: int,
    min_pixels: int,
    max_pixels: int,
    dimensions: Path | None = None,
    dtype: torch.dtype = torch.float32,
    tokenizer: str = "offline",
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """A random-weight model of ``family`` and its processor (tokenizer, image processor, chat template).

    ``tokenizer`` is ``offline`` (a ``vocab_size`` BPE trained on driving text) or ``qwen2`` (Qwen2's real
    151k-token tokenizer, Qwen2-VL's special tokens and chat template, 151,936 embedding rows as Qwen2-VL's).
    ``dimensions`` (default: the family's tiny file) may be a real architecture's, e.g. Qwen2-VL-2B:
    its vocabulary size is kept (the tokenizer uses the first ids) and its special-token ids
    are replaced by the tokenizer's, so the processor and the model agree.
    """
    text_tokenizer, chat_template, rows = tiny_tokenizer(tokenizer, vocab_size)
    processor = build_processor(family, text_tokenizer, chat_template, min_pixels, max_pixels)
    source = dimensions or TINY_CONFIG_FILES[family]
    declared = config_from_file(source)
    if declared.model_type != family:
        raise BadInput(
            f"{source} describes a {declared.model_type} model, not {family}: pass --family {declared.model_type}"
        )
    config = config_from_file(
        source,
        text_config={
            "vocab_size": max(rows, declared.text_config.vocab_size if dimensions else 0),
            "bos_token_id": None,
            "eos_token_id": text_tokenizer.convert_tokens_to_ids(END_OF_TURN),
            "pad_token_id": text_tokenizer.pad_token_id,
        },
        **special_token_config(text_tokenizer),
    )
    torch.manual_seed(seed)
    model = build_random_model(config, dtype=dtype)
    set_generation_tokens(model, text_tokenizer)
    return model, processor
