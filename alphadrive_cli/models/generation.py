"""Batched generation for a Qwen-VL student: left padding, greedy or K samples per prompt, on CUDA through graph
decoding (a static KV cache, every decoding step one CUDA graph: :mod:`~alphadrive_cli.models.graph_decoding`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from PIL import Image
from transformers import PreTrainedModel, ProcessorMixin

from alphadrive_cli.actions import ActionVocabulary
from alphadrive_cli.models.graph_decoding import generate_with_graphs, use_graph_decoding
from alphadrive_cli.models.loading import ModelSource, load_model_and_processor
from alphadrive_cli.models.lora import is_quantized
from alphadrive_cli.prompts import PromptTemplate, StudentFrame, student_messages
from alphadrive_cli.ui import console


@dataclass(frozen=True)
class GenerationSettings:
    """Greedy decoding when ``samples`` is 1, else ``samples`` completions sampled at ``temperature``."""

    max_new_tokens: int
    samples: int = 1
    temperature: float = 1.0


def unwrapped(model: PreTrainedModel | PeftModel) -> PreTrainedModel:
    """The model a PEFT wrapper holds (the model itself when it has none)."""
    return model.get_base_model() if isinstance(model, PeftModel) else model


def graph_decoding_blocker(model: PreTrainedModel) -> str | None:
    """Why graph decoding cannot run ``model`` (None when it can): it needs every weight on one CUDA device,
    unquantized."""
    devices = {str(device) for device in (getattr(model, "hf_device_map", None) or {}).values()}
    if model.device.type != "cuda":
        return "the model is not on a CUDA device"
    if len(devices) > 1:
        return f"the model is split over {len(devices)} devices"
    if is_quantized(model):
        return "quantized weights cannot be compiled"
    return None


def decodes_with_graphs(model: PreTrainedModel | PeftModel) -> bool:
    """Whether ``model`` (or the model a PEFT wrapper holds) was set up for graph decoding (by
    :func:`load_for_generation`, or by ``grpo`` for its rollouts): :func:`generate` then gives it a static cache."""
    return getattr(unwrapped(model).__dict__.get("generate"), "__func__", None) is generate_with_graphs


def load_for_generation(source: ModelSource, compile_generation: bool) -> tuple[PreTrainedModel, ProcessorMixin, bool]:
    """The model of ``source`` (eval mode) and its processor, and whether it decodes with graphs: with
    ``compile_generation`` where :func:`graph_decoding_blocker` finds nothing against it, :func:`generate` decodes
    it through :func:`~alphadrive_cli.models.graph_decoding.use_graph_decoding`; on a CUDA device the console says
    why it does not."""
    model, processor = load_model_and_processor(source, dtype="auto", device_map="auto")
    model.eval()
    if not compile_generation:
        return model, processor, False
    blocker = graph_decoding_blocker(model)
    if blocker is None:
        use_graph_decoding(unwrapped(model))
    elif model.device.type == "cuda":
        console.print(f"[yellow]note:[/] graph decoding is off: {blocker}")
    return model, processor, blocker is None


def decoding_summary(compiled: bool) -> dict[str, bool | str]:
    """How a stage decoded, for its manifest: with graphs over a static KV cache, or transformers' own loop."""
    return {"compiled": compiled, "cache": "static" if compiled else "dynamic"}


def generate(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    prompts: Sequence[str],
    images: Sequence[Sequence[Image.Image]],
    settings: GenerationSettings,
) -> list[list[str]]:
    """Complete a batch of chat-formatted prompts (with their images); ``samples`` texts per prompt (over a static
    KV cache where the model decodes with graphs)."""
    processor.tokenizer.padding_side = "left"  # generation continues every row from its real last token
    flat_images = [image for row in images for image in row]
    inputs = processor(text=list(prompts), images=flat_images or None, padding=True, return_tensors="pt").to(
        model.device
    )
    sampling = settings.samples > 1
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            max_new_tokens=settings.max_new_tokens,
            do_sample=sampling,
            temperature=settings.temperature if sampling else None,
            top_p=None,
            top_k=None,
            num_return_sequences=settings.samples,
            pad_token_id=processor.tokenizer.pad_token_id,
            **({"cache_implementation": "static"} if decodes_with_graphs(model) else {}),
        )
    texts = processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return [texts[i * settings.samples : (i + 1) * settings.samples] for i in range(len(prompts))]


def complete_records(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    template: PromptTemplate,
    records: Sequence[StudentFrame],
    vocabulary: ActionVocabulary,
    data_root: Path,
    settings: GenerationSettings,
) -> list[list[str]]:
    """:func:`generate` for one batch of records (or unlabelled frames): their student prompts and images (relative
    to ``data_root``, or absolute)."""
    conversations = [student_messages(template, record, vocabulary) for record in records]
    return complete_conversations(
        model, processor, conversations, [record.images for record in records], data_root, settings
    )


def complete_conversations(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    conversations: Sequence[list[dict[str, Any]]],
    image_paths: Sequence[Sequence[str]],
    data_root: Path,
    settings: GenerationSettings,
) -> list[list[str]]:
    """:func:`generate` for chat messages, each with the paths of its images (relative to ``data_root``, or
    absolute)."""
    prompts = [
        processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        for messages in conversations
    ]
    images = [[Image.open(data_root / image).convert("RGB") for image in paths] for paths in image_paths]
    return generate(model, processor, prompts, images, settings)
