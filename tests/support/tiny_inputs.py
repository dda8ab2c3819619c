"""Tiny in-memory models and hand-written inputs for the model tests (the same sizes as ``TinyModelConfig()``)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from alphadrive_cli.models.tiny import build_tiny_model
from alphadrive_cli.models.tokenizer import IMAGE_TOKEN, VISION_END, VISION_START

SEED = 0
VOCAB = 1024
MIN_PIXELS = 56 * 56
MAX_PIXELS = 112 * 112
IMAGE_BLOCK = f"{VISION_START}{IMAGE_TOKEN}{VISION_END}"
ASSISTANT_HEADER = "<|im_start|>assistant\n"


def tiny(family: str = "qwen2_vl", seed: int = SEED):
    """A tiny random-weight model of ``family`` and its processor, built in memory."""
    return build_tiny_model(family, seed, vocab_size=VOCAB, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)


def spread_language_weights(model, seed: int = SEED) -> None:
    """Redraw a tiny model's language weight matrices with a larger spread (in place), so that its greedy
    completions vary from token to token and between prompts (the untrained tiny model repeats one token)."""
    import torch

    torch.manual_seed(seed)
    with torch.no_grad():
        for weight in model.model.language_model.parameters():
            if weight.dim() == 2:
                weight.normal_(0, 0.3)


def varied_copy(model_dir: Path, destination: Path) -> Path:
    """A plain model directory holding the model of ``model_dir`` with spread-out language weights, and its
    processor files."""
    import shutil

    from transformers import AutoModelForImageTextToText

    shutil.copytree(model_dir, destination, ignore=shutil.ignore_patterns("manifest.json", "*.safetensors"))
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    spread_language_weights(model)
    model.save_pretrained(destination)
    return destination


def image(color: tuple[int, int, int] = (30, 160, 90), size: int = 112) -> Image.Image:
    """A deterministic, non-constant RGB image (a gradient plus a colour), so patches differ."""
    pixels = bytes(
        (x * 2 + color[0]) % 256 if c == 0 else (y * 2 + color[1]) % 256 if c == 1 else (x + y + color[2]) % 256
        for y in range(size)
        for x in range(size)
        for c in range(3)
    )
    return Image.frombytes("RGB", (size, size), pixels)


def assistant_marked_text(processor, messages: list[dict]) -> str:
    """The text of the tokens the chat template marks as the assistant's (the tokens an assistant-only loss
    trains on), tokenized through the processor's own template."""
    out = processor.tokenizer.apply_chat_template(
        messages,
        chat_template=processor.chat_template,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    marked = [token for token, flag in zip(out["input_ids"], out["assistant_masks"], strict=True) if flag]
    return processor.tokenizer.decode(marked)


def prompt(text: str) -> str:
    """A single-turn prompt with one image, written out by hand (independent of the chat template)."""
    return f"<|im_start|>user\n{IMAGE_BLOCK}{text}<|im_end|>\n{ASSISTANT_HEADER}"


def outspoken_tiny_model(model_artifact: Path, target: Path) -> Path:
    """A copy of a tiny model artifact (as a plain directory) with every matrix drawn again at std 1 (norms 1, biases
    0). The tiny model's own small weights answer every prompt with the same newlines; these answer each frame with
    its own text, so a test can tell that two paths gave a model the same prompt and image."""
    import torch

    from alphadrive_cli.models.loading import load_model_and_processor, resolve_model_source

    model, processor = load_model_and_processor(resolve_model_source(str(model_artifact)))
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() > 1:
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
            else:
                parameter.fill_(1.0 if "norm" in name else 0.0)
    model.save_pretrained(target)
    processor.save_pretrained(target)
    return target
