"""A resolved stage config as commented YAML (``alphadrive config STAGE``): each key with its schema description,
readable by people and usable again as ``--config FILE``."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

COMMENT_COLUMN = 34


def _scalar(value: Any) -> str:
    """``value`` in YAML flow style on one line (lists and mappings inline)."""
    return yaml.safe_dump([value], default_flow_style=True, width=10**6, sort_keys=False).strip()[1:-1]


def _description(model: type[BaseModel], name: str) -> str | None:
    field = model.model_fields[name]
    if field.description:
        return field.description
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation.__doc__:
        return annotation.__doc__.strip().splitlines()[0]
    return None


def commented_yaml(config: BaseModel, indent: int = 0) -> list[str]:
    """The lines of ``config`` as YAML, in schema order, each key followed by its description as a comment."""
    lines = []
    for name in type(config).model_fields:
        value = getattr(config, name)
        head = f"{' ' * indent}{name}:" + ("" if isinstance(value, BaseModel) else f" {_scalar(value)}")
        description = _description(type(config), name)
        lines.append(f"{head.ljust(COMMENT_COLUMN - 1)} # {description}" if description else head)
        if isinstance(value, BaseModel):
            lines.extend(commented_yaml(value, indent + 2))
    return lines


def render_config(stage: str, config: BaseModel, sources: str) -> str:
    """The whole file: a header naming the stage and the layers it was resolved from, then the keys."""
    header = [f"# alphadrive {stage}: resolved from {sources}", "# use as a starting point: --config THIS_FILE"]
    return "\n".join([*header, *commented_yaml(config)]) + "\n"
