"""A stage config as commented YAML, each key with its schema description: a resolved config
(``alphadrive config STAGE``, usable again as ``--config FILE``) and the generated defaults files
``configs/<stage>.yaml`` (``make configs``, i.e. ``python -m alphadrive_cli.config.view``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from alphadrive_cli.config.resolve import section_model
from alphadrive_cli.config.schemas import STAGE_SCHEMAS
from alphadrive_cli.resources import CONFIG_DIR

COMMENT_COLUMN = 34


def yaml_scalar(value: Any) -> str:
    """``value`` in YAML flow style on one line (lists and mappings inline)."""
    return yaml.safe_dump([value], default_flow_style=True, width=10**6, sort_keys=False).strip()[1:-1]


def key_help(schema: type[BaseModel], key: str) -> str:
    """``--help`` text of a command option that sets config ``key`` (dotted) of ``schema``: the key's one
    description, the key itself (for ``--set`` and ``--config``) and its default."""
    *parents, name = key.split(".")
    field = section_model(schema, parents).model_fields[name]
    description = field.description or ""
    default = yaml_scalar(field.get_default(call_default_factory=True))
    return f"{description}. Config key `{key}`, default {default}."


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
        head = f"{' ' * indent}{name}:" + ("" if isinstance(value, BaseModel) else f" {yaml_scalar(value)}")
        description = _description(type(config), name)
        lines.append(f"{head.ljust(COMMENT_COLUMN - 1)} # {description}" if description else head)
        if isinstance(value, BaseModel):
            lines.extend(commented_yaml(value, indent + 2))
    return lines


def render_config(stage: str, config: BaseModel, sources: str) -> str:
    """The whole file: a header naming the stage and the layers it was resolved from, then the keys."""
    header = [f"# alphadrive {stage}: resolved from {sources}", "# use as a starting point: --config THIS_FILE"]
    return "\n".join([*header, *commented_yaml(config)]) + "\n"


def defaults_path(stage: str) -> Path:
    """Where the generated defaults of ``stage`` are written (``configs/<stage>.yaml``)."""
    return CONFIG_DIR / f"{stage}.yaml"


def render_defaults(stage: str) -> str:
    """The text of ``configs/<stage>.yaml``: the schema's defaults with their descriptions, marked as generated."""
    schema = STAGE_SCHEMAS[stage]
    summary = (schema.__doc__ or "").strip().splitlines()[0].replace("``", "")
    header = [
        f"# {summary}",
        "# The defaults, generated from alphadrive_cli/config/schemas.py by `make configs`: do not edit, change the",
        "# schema and regenerate. Nothing reads this file; start your own with `alphadrive config "
        f"{stage} --out FILE`.",
    ]
    return "\n".join([*header, *commented_yaml(schema())]) + "\n"


def write_defaults() -> list[Path]:
    """Regenerate every ``configs/<stage>.yaml``; the paths that changed."""
    changed = []
    for stage in STAGE_SCHEMAS:
        path, text = defaults_path(stage), render_defaults(stage)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


if __name__ == "__main__":
    for changed_path in write_defaults():
        sys.stdout.write(f"wrote {changed_path.relative_to(CONFIG_DIR.parent)}\n")
