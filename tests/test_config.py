"""Layered, validated stage configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alphadrive_cli.config.resolve import (
    available_scales,
    deep_merge,
    load_yaml_mapping,
    parse_override,
    resolve_config,
)
from alphadrive_cli.config.schemas import STAGE_SCHEMAS, GrpoConfig, SftConfig, TinyModelConfig
from alphadrive_cli.config.view import defaults_path, render_defaults
from alphadrive_cli.errors import BadInput
from alphadrive_cli.resources import CONFIG_DIR


@pytest.mark.parametrize("stage", sorted(STAGE_SCHEMAS))
def test_every_stage_default_file_exists_and_validates(stage: str) -> None:
    assert (CONFIG_DIR / f"{stage}.yaml").is_file()
    resolve_config(stage, STAGE_SCHEMAS[stage])


@pytest.mark.parametrize("stage", sorted(STAGE_SCHEMAS))
def test_the_defaults_files_are_generated_from_the_schemas(stage: str) -> None:
    """The schemas hold every default; configs/<stage>.yaml is their rendering. A default changed in either place
    alone fails here (`make configs` regenerates the files from the schemas)."""
    assert defaults_path(stage).read_text(encoding="utf-8") == render_defaults(stage), "run `make configs`"


def test_a_changed_default_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above is not vacuous: one schema default moved makes the rendering differ from the file."""
    field = SftConfig.model_fields["learning_rate"]
    monkeypatch.setattr(field, "default", field.default * 2)
    SftConfig.model_rebuild(force=True)
    try:
        assert defaults_path("sft").read_text(encoding="utf-8") != render_defaults("sft")
    finally:
        monkeypatch.undo()
        SftConfig.model_rebuild(force=True)
    assert defaults_path("sft").read_text(encoding="utf-8") == render_defaults("sft")


def test_resolution_starts_from_the_schema_defaults() -> None:
    """No layer given: the schema's defaults, the reward defaults included (configs/<stage>.yaml is not read)."""
    assert resolve_config("sft", SftConfig) == SftConfig()
    assert resolve_config("grpo", GrpoConfig).rewards.action_weights["STOP"] == 1.5


@pytest.mark.parametrize("scale", ["tiny", "qwen2vl-2b"])
def test_scale_presets_validate_for_every_stage_they_mention(scale: str) -> None:
    assert scale in available_scales()
    preset = load_yaml_mapping(CONFIG_DIR / "scale" / f"{scale}.yaml")
    assert set(preset) <= set(STAGE_SCHEMAS)
    for stage in preset:
        resolve_config(stage, STAGE_SCHEMAS[stage], scale=scale)


def test_layers_apply_in_order(tmp_path: Path) -> None:
    base = resolve_config("sft", SftConfig)
    tiny = resolve_config("sft", SftConfig, scale="tiny")
    gpu = resolve_config("sft", SftConfig, scale="qwen2vl-2b")
    assert base.lora.r == 16 and tiny.lora.r == 8 and tiny.lora.dropout == base.lora.dropout  # deep merge
    assert gpu.quantization == "4bit" and gpu.model == "Qwen/Qwen2-VL-2B-Instruct"
    user = tmp_path / "mine.yaml"
    user.write_text("lora: {r: 4}\nlearning_rate: 1.0e-3\n")
    cfg = resolve_config(
        "sft",
        SftConfig,
        scale="tiny",
        config_file=user,
        overrides=["lora.r=32", "reasoning=false", "lora.target_modules=[q_proj, v_proj]"],
        options={"reasoning": None, "seed": 7},
    )
    assert cfg.lora.r == 32 and cfg.learning_rate == 1e-3 and cfg.reasoning is False
    assert cfg.lora.target_modules == ["q_proj", "v_proj"] and cfg.seed == 7
    assert resolve_config("sft", SftConfig, overrides=["seed=1"], options={"seed": 2}).seed == 2


def test_unknown_key_names_the_key_and_suggests_a_fix() -> None:
    with pytest.raises(
        BadInput, match=r"unknown config key 'lora\.rr' \(did you mean 'lora\.r'\?\) \[--set lora\.rr=3\]"
    ):
        resolve_config("sft", SftConfig, overrides=["lora.rr=3"])
    with pytest.raises(BadInput, match=r"unknown config key 'lerning_rate' \(did you mean 'learning_rate'\?\)"):
        resolve_config("sft", SftConfig, overrides=["lerning_rate=3"])
    with pytest.raises(BadInput, match=r"unknown config key 'zzz' \(known here: "):
        resolve_config("models", TinyModelConfig, overrides=["zzz=1"])


def test_wrong_value_names_the_key_the_value_and_the_layer(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"config key 'lora\.r'.*got 'many'.*\[--set lora\.r=many\]"):
        resolve_config("sft", SftConfig, overrides=["lora.r=many"])
    user = tmp_path / "bad.yaml"
    user.write_text("quantization: 8bit\n")
    with pytest.raises(BadInput, match=r"config key 'quantization'.*'8bit'.*bad\.yaml"):
        resolve_config("sft", SftConfig, config_file=user)
    with pytest.raises(BadInput, match=r"min_pixels must not exceed max_pixels"):
        resolve_config("models", TinyModelConfig, overrides=["min_pixels=20000"])


@pytest.mark.parametrize("text", ["noequals", "=3", "a..b=1", " =x"])
def test_malformed_set_is_a_clear_error(text: str) -> None:
    with pytest.raises(BadInput, match="expected KEY=VALUE"):
        parse_override(text)


def test_set_values_are_read_as_yaml() -> None:
    assert parse_override("a.b=3") == {"a": {"b": 3}}
    assert parse_override("a=1.5e-4") == {"a": 1.5e-4}
    assert parse_override("a=true") == {"a": True}
    assert parse_override("a=[x, y]") == {"a": ["x", "y"]}
    assert parse_override("url=http://127.0.0.1:8000/v1") == {"url": "http://127.0.0.1:8000/v1"}
    assert parse_override("a=") == {"a": ""}


def test_bad_config_files(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="cannot read config"):
        resolve_config("sft", SftConfig, config_file=tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    with pytest.raises(BadInput, match="not valid YAML"):
        resolve_config("sft", SftConfig, config_file=broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(BadInput, match="must be a mapping"):
        resolve_config("sft", SftConfig, config_file=listing)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert resolve_config("sft", SftConfig, config_file=empty) == resolve_config("sft", SftConfig)


def test_unknown_scale_lists_the_known_ones() -> None:
    with pytest.raises(BadInput, match="unknown scale 'huge'.*qwen2vl-2b, small, tiny"):
        resolve_config("sft", SftConfig, scale="huge")


def test_deep_merge_does_not_mutate_its_inputs() -> None:
    base = {"a": {"b": 1, "c": [1]}}
    update = {"a": {"b": 2}}
    merged = deep_merge(base, update)
    merged["a"]["c"].append(2)
    assert base == {"a": {"b": 1, "c": [1]}} and merged == {"a": {"b": 2, "c": [1, 2]}}


def test_resolved_config_is_json_ready_for_the_manifest() -> None:
    cfg = resolve_config("sft", SftConfig, scale="qwen2vl-2b")
    dumped = cfg.model_dump(mode="json")
    assert yaml.safe_load(yaml.safe_dump(dumped)) == dumped
