"""Stage configuration: YAML defaults, a scale preset, a user file and ``--set`` overrides, validated.

Layers, later wins: the schema's defaults (``config/schemas.py``, the one source; ``configs/<stage>.yaml`` is
generated from it for reading) < the ``<stage>:`` section of ``configs/scale/<scale>.yaml``
< ``--config FILE`` < each ``--set key.path=value`` (the value is read as YAML, so numbers, booleans
and lists work) < the command's own flags. The merged mapping is validated by the stage's pydantic schema; any
problem is one line naming the key.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from alphadrive_cli.artifacts.redaction import note_secret_variables
from alphadrive_cli.errors import BadInput, brief, clip
from alphadrive_cli.resources import CONFIG_DIR
from alphadrive_cli.textfiles import read_text_file

SchemaT = TypeVar("SchemaT", bound=BaseModel)
SCALE_DIR = CONFIG_DIR / "scale"


def available_scales() -> list[str]:
    """Names of the scale presets in ``configs/scale/``."""
    return sorted(path.stem for path in SCALE_DIR.glob("*.yaml"))


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases (``*name``): nested aliases expand exponentially (a few hundred
    bytes can stand for gigabytes), and no alphadrive config needs them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not allowed in configs", self.peek_event().start_mark
            )
        return super().compose_node(parent, index)


def parse_yaml(text: str) -> Any:
    """The value of a YAML document (safe types only, aliases refused with ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader subclass


def load_yaml_mapping(path: Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping (an empty file is an empty mapping)."""
    text = read_text_file(path, "config")
    try:
        value = parse_yaml(text)
    except yaml.YAMLError as exc:
        raise BadInput(f"config {path} is not valid YAML: {' '.join(str(exc).split())[:300]}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadInput(f"config {path} must be a mapping of keys to values, not a {type(value).__name__}")
    return value


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` merged in: mappings merge key by key, anything else replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_override(text: str) -> dict[str, Any]:
    """Turn ``a.b=value`` into ``{"a": {"b": value}}``, the value parsed as YAML."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(part.strip() for part in parts):
        raise BadInput(f"--set {brief(text)}: expected KEY=VALUE, e.g. --set lora.r=16")
    try:
        value = parse_yaml(raw) if raw.strip() else ""
    except yaml.composer.ComposerError as exc:
        raise BadInput(f"--set {brief(key)}: {exc.problem}") from None
    except yaml.YAMLError:
        value = raw
    for part in reversed(parts):
        value = {part.strip(): value}
    return value


def _key_path(location: Iterable[Any]) -> str:
    return ".".join(str(part) for part in location)


def section_model(schema: type[BaseModel], location: Iterable[Any]) -> Any:
    """The model of the config section at ``location`` (key parts) of ``schema``; None where there is none."""
    model: Any = schema
    for part in location:
        field = getattr(model, "model_fields", {}).get(part)
        model = field.annotation if field is not None else None
    return model


def _known_keys(schema: type[BaseModel], location: tuple[Any, ...]) -> list[str]:
    return list(getattr(section_model(schema, location), "model_fields", {}))


def describe_validation_error(error: ValidationError, schema: type[BaseModel], source: str) -> str:
    """One line for the first problem in a validation error, naming the key (and a likely fix)."""
    first = error.errors()[0]
    location = tuple(first["loc"])
    key = _key_path(location)
    if first["type"] == "extra_forbidden":
        known = _known_keys(schema, location[:-1])
        close = difflib.get_close_matches(str(location[-1]), known, n=1)
        hint = (
            f" (did you mean {_key_path((*location[:-1], close[0]))!r}?)"
            if close
            else f" (known here: {', '.join(known)})"
        )
        message = f"unknown config key {brief(key)}{hint}"
    else:
        got = f" (got {brief(first['input'])})" if "input" in first and not isinstance(first["input"], dict) else ""
        message = f"config key {brief(key)}: {first['msg']}{got}" if key else f"config: {first['msg']}"
    more = len(error.errors()) - 1
    return f"{message} [{source}]" + (f"; {more} more problem(s)" if more else "")


def resolve_config(
    stage: str,
    schema: type[SchemaT],
    scale: str | None = None,
    config_file: Path | None = None,
    overrides: Iterable[str] = (),
    options: Mapping[str, Any] | None = None,
) -> SchemaT:
    """Merge the configuration layers of ``stage`` and validate them against ``schema``.

    ``options`` are values from the command's own flags (``--seed 3``); ``None`` means not given.
    They apply last, so a dedicated flag beats ``--set`` of the same key.
    """
    layers: list[tuple[str, dict[str, Any]]] = []
    if scale is not None:
        preset = SCALE_DIR / f"{scale}.yaml"
        if not preset.is_file():
            raise BadInput(f"unknown scale {scale!r}: choose one of {', '.join(available_scales())}")
        section = load_yaml_mapping(preset).get(stage) or {}
        layers.append((f"--scale {scale}", section))
    if config_file is not None:
        layers.append((str(config_file), load_yaml_mapping(config_file)))
    layers.extend((f"--set {clip(text)}", parse_override(text)) for text in overrides)
    given = {key: value for key, value in (options or {}).items() if value is not None}
    if given:
        layers.append(("command-line options", given))

    merged: dict[str, Any] = schema().model_dump(mode="json")  # the defaults: the first layer
    note_secret_variables(merged)
    for source, layer in layers:
        merged = deep_merge(merged, layer)
        note_secret_variables(merged)  # from here on, the key an `api_key_env` names is redacted everywhere
        try:  # validate after every layer so the message can name the layer that broke it
            schema.model_validate(merged)
        except ValidationError as exc:
            raise BadInput(describe_validation_error(exc, schema, source)) from None
    return schema.model_validate(merged)
