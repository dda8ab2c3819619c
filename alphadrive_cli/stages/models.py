"""``alphadrive models tiny``: a tiny random-weight model artifact, built offline."""

from __future__ import annotations

from pathlib import Path

from alphadrive_cli.artifacts import Artifact, ResumePolicy, begin
from alphadrive_cli.models.tiny import TINY_CONFIG_FILES, build_tiny_model
from alphadrive_cli.schemas import TinyModelConfig


def default_tiny_name(config: TinyModelConfig) -> str:
    """``tiny-qwen2-vl`` or ``tiny-qwen2.5-vl``: the artifact name when ``--name`` is not given."""
    return TINY_CONFIG_FILES[config.family].stem


def build_tiny_model_artifact(
    config: TinyModelConfig, root: Path | None, name: str | None, resume: ResumePolicy
) -> Artifact:
    """Build the tiny model and publish it (``save_pretrained`` layout) as a ``model`` artifact."""
    with begin("model", name or default_tiny_name(config), config.model_dump(), root=root, resume=resume) as writer:
        model, processor = build_tiny_model(
            config.family, config.seed, config.vocab_size, config.min_pixels, config.max_pixels
        )
        model.save_pretrained(writer.dir)
        processor.save_pretrained(writer.dir)
        parameters = sum(parameter.numel() for parameter in model.parameters())
        return writer.publish(
            counts={"parameters": parameters, "vocab_size": len(processor.tokenizer)},
            extra={"model": {"family": config.family, "source": "tiny-offline-random-weights",
                             "dimensions": TINY_CONFIG_FILES[config.family].name}},
        )
