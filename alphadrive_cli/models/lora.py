"""LoRA / QLoRA for a Qwen-VL student: 4-bit NF4 quantisation (CUDA only), adapters on the language model.

``quantization: 4bit`` loads the base model in NF4 with double quantisation and bf16 compute
(QLoRA); without CUDA :func:`quantization_config` gives ``None`` and training falls back to plain
LoRA in full precision. Adapters go on the language model's attention and MLP projections named by
``lora.target_modules``; with ``freeze_vision`` (the default) a regex over the language model's
module names keeps the vision tower (and its merger) untouched and frozen.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model
from transformers import BitsAndBytesConfig, PreTrainedModel

from alphadrive_cli.config.schemas import TrainingConfig

VISION_ATTRIBUTES = ("visual", "vision_tower", "vision_model")


def quantization_config(config: TrainingConfig) -> BitsAndBytesConfig | None:
    """QLoRA's 4-bit NF4 + double quantisation, bf16 compute; ``None`` without CUDA or with ``quantization: none``."""
    if config.quantization == "none" or not torch.cuda.is_available():
        return None
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def _module_name(model: torch.nn.Module, target: torch.nn.Module | None) -> str | None:
    if target is None:
        return None
    for name, module in model.named_modules():
        if module is target:
            return name
    return None


def _find_submodule(model: torch.nn.Module, attributes: tuple[str, ...]) -> torch.nn.Module | None:
    """``model.<attr>`` or ``model.model.<attr>`` (transformers moved the parts of VLMs between versions)."""
    for owner in (model, getattr(model, "model", None)):
        for attribute in attributes:
            found = getattr(owner, attribute, None) if owner is not None else None
            if isinstance(found, torch.nn.Module):
                return found
    return None


def vision_tower(model: torch.nn.Module) -> torch.nn.Module | None:
    """The vision encoder (with its patch merger) of a Qwen-VL model, if it has one."""
    return _find_submodule(model, VISION_ATTRIBUTES)


def lora_target_regex(model: torch.nn.Module, config: TrainingConfig) -> str:
    """A PEFT ``target_modules`` regex (full match on module names) for the configured projections.

    With ``freeze_vision`` only modules inside the language model match (``model.language_model``
    in transformers 5; where no such submodule exists, anything outside the vision tower).
    """
    names = "|".join(re.escape(name) for name in config.lora.target_modules)
    if not config.freeze_vision:
        return rf"^(?:.*\.)?(?:{names})$"
    language = _module_name(model, _find_submodule(model, ("language_model",)))
    if language:
        return rf"^{re.escape(language)}\..*\.(?:{names})$"
    vision = _module_name(model, vision_tower(model))
    if vision:
        return rf"^(?!{re.escape(vision)}\.).*\.(?:{names})$"
    return rf"^(?:.*\.)?(?:{names})$"


def is_quantized(model: Any) -> bool:
    return bool(
        getattr(model, "is_loaded_in_4bit", False)
        or getattr(model, "is_loaded_in_8bit", False)
        or getattr(model, "quantization_method", None)
    )


def prepare_for_training(model: PreTrainedModel | PeftModel, config: TrainingConfig) -> None:
    """Gradient checkpointing and vision freezing as configured (for fresh and for continued adapters).

    A 4-bit model is not passed through PEFT's ``prepare_model_for_kbit_training``: it upcasts every
    weight that is not quantized to fp32, which for Qwen2-VL-2B is the 233 M-parameter embedding
    (0.9 GB) and cost QLoRA most of its memory advantage (docs/benchmarks.md). Those weights stay
    frozen in bf16; LoRA weights train in fp32 as usual.
    """
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()  # the frozen embeddings must pass gradients through checkpoints
    tower = vision_tower(model)
    if config.freeze_vision and tower is not None:
        tower.requires_grad_(False)


def apply_lora(model: PreTrainedModel, config: TrainingConfig) -> PeftModel:
    """Wrap ``model`` with fresh LoRA adapters (vision freezing and checkpointing as configured)."""
    prepare_for_training(model, config)
    regex = lora_target_regex(model, config)
    matched = [name for name, _ in model.named_modules() if re.fullmatch(regex, name)]
    if not matched:
        raise ValueError(f"no module of the model matches the LoRA targets {config.lora.target_modules}")
    peft_config = PeftLoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=regex,
        task_type="CAUSAL_LM",
        bias="none",
    )
    return get_peft_model(model, peft_config)


def trainable_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
