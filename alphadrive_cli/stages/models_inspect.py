"""``alphadrive models inspect``: what a model is, read from its config without loading weights."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from alphadrive_cli.models.loading import build_random_model, model_config, resolve_model_source


def describe_model(reference: str) -> dict[str, Any]:
    """Family, parameter count (counted on the meta device) and main dimensions of a model."""
    source = resolve_model_source(reference)
    config = model_config(source)
    parameters = sum(p.numel() for p in build_random_model(config, device="meta").parameters())
    text, vision = config.text_config, config.vision_config
    description: dict[str, Any] = {
        "reference": reference,
        "source": source.kind,
        "family": config.model_type,
        "parameters": parameters,
        "vocab_size": text.vocab_size,
        "text_layers": text.num_hidden_layers,
        "text_hidden_size": text.hidden_size,
        "vision_layers": vision.depth,
        "image_token_id": config.image_token_id,
    }
    if source.artifact is not None:
        description["artifact"] = source.artifact.label
    return description


def render_model_description(description: dict[str, Any]) -> Table:
    """A two-column rich table of :func:`describe_model`'s result."""
    table = Table(show_header=False, title=f"model {description['reference']}")
    for key, value in description.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    return table
