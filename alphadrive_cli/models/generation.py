"""Batched generation for a Qwen-VL student: left padding, greedy or K samples per prompt, on CUDA through graph
decoding (a static KV cache, every decoding step one CUDA graph: :mod:`~alphadrive_cli.models.graph_decoding`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel
from PIL import Image
from transformers import PreTrainedModel, ProcessorMixin

from alphadrive_cli.actions import ActionVocabulary
from alphadrive_cli.models.graph_decoding import generate_with_graphs, use_graph_decoding
from alphadrive_cli.models.loading import ModelSource, load_model_and_processor
from alphadrive_cli.prompts import PromptTemplate, StudentFrame, student_messages


@dataclass(frozen=True)
class GenerationSettings:
    """Greedy decoding when ``samples`` is 1, else ``samples`` completions sampled at ``temperature``."""

    max_new_tokens: int
    samples: int = 1
    temperature: float = 1.0


def graphs_apply(model: PreTrainedModel) -> bool:
    """Whether graph decoding can speed ``model`` up: its weights are on a CUDA device and not 4-bit."""
    return model.device.type == "cuda" and not getattr(model, "is_loaded_in_4bit", False)


def decodes_with_graphs(model: PreTrainedModel) -> bool:
    """Whether ``model`` (or the model a PEFT wrapper holds) was set up for graph decoding (by
    :func:`load_for_generation`, or by ``grpo`` for its rollouts): :func:`generate` then gives it a static cache."""
    inner = model.get_base_model() if isinstance(model, PeftModel) else model
    return getattr(inner.__dict__.get("generate"), "__func__", None) is generate_with_graphs


def load_for_generation(source: ModelSource, compile_generation: bool) -> tuple[PreTrainedModel, ProcessorMixin, bool]:
    """The model of ``source`` (eval mode) and its processor, and whether it decodes with graphs: with
    ``compile_generation`` on a CUDA device (and weights that are not 4-bit), :func:`generate` decodes it through
    :func:`~alphadrive_cli.models.graph_decoding.use_graph_decoding`."""
    model, processor = load_model_and_processor(source, dtype="auto", device_map="auto")
    model.eval()
    compiled = compile_generation and graphs_apply(model)
    if compiled:
        use_graph_decoding(model.get_base_model() if isinstance(model, PeftModel) else model)
    return model, processor, compiled


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
            cache_implementation="static" if decodes_with_graphs(model) else None,
            pad_token_id=processor.tokenizer.pad_token_id,
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
    prompts = [
        processor.apply_chat_template(
            student_messages(template, record, vocabulary), add_generation_prompt=True, tokenize=False
        )
        for record in records
    ]
    images = [[Image.open(data_root / image).convert("RGB") for image in record.images] for record in records]
    return generate(model, processor, prompts, images, settings)
