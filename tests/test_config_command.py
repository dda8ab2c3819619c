"""``alphadrive config STAGE``: the resolved config with descriptions, reusable as ``--config``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alphadrive_cli.config.resolve import resolve_config
from alphadrive_cli.config.schemas import STAGE_SCHEMAS, GrpoConfig
from tests.support.cli_checks import assert_one_line_error


@pytest.mark.parametrize("stage", sorted(STAGE_SCHEMAS))
def test_every_stage_prints_a_config_that_reads_back_the_same(cli, stage: str, tmp_path: Path) -> None:
    result = cli("config", stage)
    assert result.exit_code == 0, result.stderr
    written = tmp_path / "written.yaml"
    written.write_text(result.stdout)
    scale = "tiny" if stage in ("sft", "grpo", "eval") else None
    expected = resolve_config(stage, STAGE_SCHEMAS[stage], scale=scale)
    assert STAGE_SCHEMAS[stage].model_validate(yaml.safe_load(result.stdout)) == expected
    assert resolve_config(stage, STAGE_SCHEMAS[stage], scale=scale, config_file=written) == expected


def test_scale_and_overrides_apply_and_descriptions_are_comments(cli, tmp_path: Path) -> None:
    result = cli("config", "grpo", "--scale", "small", "--set", "beta=0")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("# alphadrive grpo: resolved from defaults < --scale small < --set beta=0")
    assert "# KL coefficient" in next(line for line in result.stdout.splitlines() if line.startswith("beta:"))
    shown = GrpoConfig.model_validate(yaml.safe_load(result.stdout))
    assert shown == resolve_config("grpo", GrpoConfig, scale="small", overrides=["beta=0"])
    out = tmp_path / "grpo.yaml"
    written = cli("config", "grpo", "--scale", "small", "--out", out)
    assert written.exit_code == 0 and written.stdout == f"{out}\n"
    assert_one_line_error(cli("config", "grpo", "--out", out), 2, "exists")  # never overwritten


def test_unknown_stage_or_key_is_one_line(cli) -> None:
    assert_one_line_error(cli("config", "train"), 2, "unknown stage 'train'")
    assert_one_line_error(cli("config", "sft", "--set", "lora.rr=3"), 2, "lora.r")
