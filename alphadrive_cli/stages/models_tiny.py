"""``alphadrive models tiny``: a random-weight model artifact with a real processor, built offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from alphadrive_cli.artifacts.store import Artifact, OutputSpec
from alphadrive_cli.config.schemas import TinyModelConfig
from alphadrive_cli.models.tiny import TINY_CONFIG_FILES, build_tiny_model


def dimensions_file(config: TinyModelConfig) -> Path:
    """The JSON of model dimensions the artifact is built from."""
    return Path(config.dimensions) if config.dimensions else TINY_CONFIG_FILES[config.family]


def default_tiny_name(config: TinyModelConfig) -> str:
    """The dimensions file's stem (``tiny-qwen2-vl``, ``qwen2-vl-2b``…), ``-qwen2-tokenizer`` added with Qwen2's
    tokenizer: the name when ``--name`` is not given."""
    stem = dimensions_file(config).stem
    return f"{stem}-qwen2-tokenizer" if config.tokenizer == "qwen2" else stem


def tokenizer_provenance(kind: str) -> dict[str, Any]:
    """Where the tokenizer came from: trained offline, or converted from the installed Qwen BPE table."""
    if kind == "qwen2":
        from alphadrive_cli.models.qwen2_tokenizer import qwen_table

        return {"kind": "qwen2", "source": qwen_table().describe()}
    return {"kind": "offline"}


def run(config: TinyModelConfig, output: OutputSpec) -> Artifact:
    """Build the model (tiny by default) and publish it (``save_pretrained`` layout) as a ``model`` artifact."""
    with output.begin("model", default_tiny_name(config), config.model_dump()) as writer:
        model, processor = build_tiny_model(
            config.family,
            config.seed,
            config.vocab_size,
            config.min_pixels,
            config.max_pixels,
            dimensions=Path(config.dimensions) if config.dimensions else None,
            dtype=getattr(torch, config.dtype),
            tokenizer=config.tokenizer,
        )
        model.save_pretrained(writer.dir)
        processor.save_pretrained(writer.dir)
        parameters = sum(parameter.numel() for parameter in model.parameters())
        return writer.publish(
            counts={"parameters": parameters, "vocab_size": len(processor.tokenizer)},
            extra={
                "model": {
                    "family": config.family,
                    "source": "offline-random-weights",
                    "dimensions": dimensions_file(config).name,
                    "tokenizer": tokenizer_provenance(config.tokenizer),
                }
            },
        )
