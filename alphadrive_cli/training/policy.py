"""The trainable policy: device and precision, loading (fresh LoRA, a continued adapter, or every weight),
restoring a full model's weights on resume, and saving what was trained."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from alphadrive_cli.config.schemas import TrainingConfig
from alphadrive_cli.errors import BadInput
from alphadrive_cli.models.loading import ModelSource, load_model
from alphadrive_cli.ui import console


@dataclass(frozen=True)
class Precision:
    """Where training runs and in which floating-point type."""

    cuda: bool
    bf16: bool

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.bf16 else torch.float32

    @property
    def device(self) -> str:
        return "cuda" if self.cuda else "cpu"


def training_precision() -> Precision:
    """bf16 on a CUDA device that supports it, else fp32 (CPU)."""
    cuda = torch.cuda.is_available()
    return Precision(cuda=cuda, bf16=cuda and torch.cuda.is_bf16_supported())


def weight_dtype(config: TrainingConfig, precision: Precision) -> torch.dtype:
    """The dtype the policy's weights are loaded in: fp32 master weights for ``finetune: full`` (bf16 runs
    as autocast, so small updates are not rounded away), else the precision's dtype under frozen bases."""
    return torch.float32 if config.finetune == "full" else precision.dtype


def base_model_location(source: ModelSource) -> str:
    """What an adapter's ``base_model_name_or_path`` records: an absolute path, or the hub id."""
    weights = source.weights
    return weights.location if weights.kind == "hub" else str(Path(weights.location).resolve())


def load_policy(source: ModelSource, config: TrainingConfig, precision: Precision) -> tuple[Any, bool]:
    """The trainable model and whether its base is 4-bit quantised.

    ``finetune: lora`` puts fresh LoRA adapters on a full model, or continues a trained adapter (an
    ``sft`` or ``grpo`` artifact holding one), its LoRA shape taken from the adapter; ``finetune: full``
    trains every weight of a full model (the vision tower stays frozen with ``freeze_vision``).
    Peak GPU memory is counted from here. Without CUDA a 4-bit request falls back to full-precision LoRA, and the
    console says so.
    """
    from alphadrive_cli.models.lora import apply_lora, prepare_for_training, quantization_config

    if precision.cuda:
        torch.cuda.reset_peak_memory_stats()  # run_metrics' peak memory counts from the load on
    if config.finetune == "full" and source.base is not None:
        raise BadInput(
            f"{source.reference} is a LoRA adapter: full fine-tuning needs a full model "
            f"(merge it with `sft --merge`, or use finetune: lora to continue the adapter)"
        )
    quantization = quantization_config(config)
    if config.quantization == "4bit" and quantization is None:
        console.print("[yellow]note:[/] 4-bit quantization (QLoRA) needs CUDA; training plain LoRA in fp32 on the CPU")
    load_kwargs: dict[str, Any] = {"quantization_config": quantization} if quantization is not None else {}
    if precision.cuda:
        load_kwargs["device_map"] = {"": torch.cuda.current_device()}
    if source.base is not None:
        model = load_model(source, dtype=precision.dtype, trainable_adapter=True, **load_kwargs)
        prepare_for_training(model, config)
    elif config.finetune == "lora":
        model = apply_lora(load_model(source, dtype=precision.dtype, **load_kwargs), config)
        model.peft_config["default"].base_model_name_or_path = base_model_location(source)
    else:
        model = load_model(source, dtype=weight_dtype(config, precision), **load_kwargs)
        prepare_for_training(model, config)
    return model, quantization is not None


def restore_full_weights(model: Any, checkpoint: str | None) -> None:
    """Load a fully fine-tuned model's weights from the checkpoint a run resumes from (adapters need nothing).

    transformers 5.17 saves checkpoints with Qwen-VL's original key names and its resume reloads them
    without mapping the names back, so it restores no weight (huggingface/transformers#43701); its
    warnings about missing and unexpected keys that follow are about that and are harmless here.
    """
    from peft import PeftModel

    if checkpoint is None or isinstance(model, PeftModel):
        return
    model.load_state_dict(type(model).from_pretrained(checkpoint, dtype=model.dtype).state_dict())
    console.print(
        f"restored the model's weights from {Path(checkpoint).name} (transformers' warnings about its keys "
        f"that may follow are expected)"
    )


def save_policy(model: Any, directory: Path, weights: dict[str, Any] | None = None) -> None:
    """Save the trained adapter (only the policy's: not TRL's frozen KL reference copy) or the full model;
    ``weights``: the full state dict where training sharded it (see :func:`gathered_weights`)."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model.save_pretrained(str(directory), selected_adapters=["default"], state_dict=weights)
    else:
        model.save_pretrained(str(directory), state_dict=weights)


def gathered_weights(trainer: Any) -> dict[str, Any] | None:
    """The policy's full state dict where several processes each hold a shard of it (DeepSpeed ZeRO-3, FSDP),
    else None (every process holds it whole: one process, DDP, ZeRO-1/2). Every process must call it."""
    if trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
        return trainer.accelerator.get_state_dict(trainer.model_wrapped)
    return None


def model_summary(source: ModelSource, family: str, config_sha256: str) -> dict[str, Any]:
    """The manifest's ``model`` section: where the trained model came from."""
    return {
        "reference": source.reference,
        **source.describe(),
        "family": family,
        "base_model_name_or_path": base_model_location(source),
        "config_sha256": config_sha256,
    }
