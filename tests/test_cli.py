"""The command-line contract: stdout carries only the artifact path (or JSON), errors are one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from alphadrive_cli.artifacts.store import MANIFEST_NAME, begin, open_artifact
from tests.support.cli_checks import assert_one_line_error

STAGES = ["data", "distill", "sft", "grpo", "eval", "models", "show"]


def make_artifact(root: Path, stage: str, name: str = "toy") -> Path:
    with begin(stage, name, {}, root=root) as writer:
        writer.path("train.jsonl").write_text("{}\n")
        return writer.publish().path


def test_help_lists_every_stage(cli) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    for stage in STAGES:
        assert stage in result.stdout
    assert "Example pipeline" in result.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["data", "sim"],
        ["data", "import"],
        ["distill"],
        ["sft"],
        ["grpo"],
        ["eval"],
        ["eval", "compare"],
        ["models", "tiny"],
        ["models", "inspect"],
        ["show"],
    ],
)
def test_every_command_has_help(cli, command: list[str]) -> None:
    result = cli(*command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout and "Example pipeline" in result.stdout


def test_scale_help_names_every_preset() -> None:
    from alphadrive_cli.cli_options import Scale
    from alphadrive_cli.config.resolve import available_scales

    help_text = Scale.__metadata__[0].help
    assert available_scales() and all(f"{name} (" in help_text for name in available_scales())


def test_version(cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.startswith("alphadrive ")


def test_models_tiny_prints_only_the_path_and_show_renders_lineage(cli, runs: Path) -> None:
    result = cli("models", "tiny", "--seed", "3")
    assert result.exit_code == 0, result.stderr
    path = Path(result.stdout.strip())
    assert result.stdout == f"{path}\n"
    assert path == runs / "model" / "tiny-qwen2-vl-v1" and (path / MANIFEST_NAME).is_file()
    manifest = json.loads((path / MANIFEST_NAME).read_text())
    assert manifest["config"]["seed"] == 3 and manifest["counts"]["parameters"] > 0

    shown = cli("show", str(path))
    assert shown.exit_code == 0
    assert "model/tiny-qwen2-vl-v1" in shown.stdout and manifest["content_hash"][:12] in shown.stdout

    as_json = json.loads(cli("show", str(path), "--json").stdout)
    assert as_json["manifest"]["content_hash"] == manifest["content_hash"] and as_json["inputs"] == []


def test_json_flag_gives_a_machine_readable_summary(cli, runs: Path) -> None:
    result = cli("models", "tiny", "--name", "mine", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["path"] == str(runs / "model" / "mine-v1")
    assert (summary["stage"], summary["name"], summary["version"]) == ("model", "mine", 1)


def test_out_root_option_wins_over_environment(cli, tmp_path: Path) -> None:
    result = cli("models", "tiny", "--out-root", str(tmp_path / "elsewhere"))
    assert result.exit_code == 0
    assert result.stdout.strip() == str(tmp_path / "elsewhere" / "model" / "tiny-qwen2-vl-v1")


def test_show_of_a_lineage_tree(cli, runs: Path) -> None:
    data = make_artifact(runs, "data")
    with begin("distill", "traces", {}, root=runs, inputs={"data": open_artifact(data)}) as writer:
        writer.path("train.jsonl").write_text("{}\n")
        child = writer.publish().path
    shown = cli("show", str(child))
    assert shown.exit_code == 0
    assert "distill/traces-v1" in shown.stdout and "data: data/toy-v1" in shown.stdout


def test_show_of_a_tampered_artifact_is_one_line_exit_2(cli, runs: Path) -> None:
    path = make_artifact(runs, "data")
    (path / "train.jsonl").write_text("changed\n")
    assert_one_line_error(cli("show", str(path)), 2, "train.jsonl", "modified")
    assert cli("show", str(path), "--no-check").exit_code == 0


@pytest.mark.parametrize("target", ["missing", "plain-dir"])
def test_show_of_a_non_artifact_is_one_line_exit_2(cli, tmp_path: Path, target: str) -> None:
    (tmp_path / "plain-dir").mkdir()
    assert_one_line_error(cli("show", str(tmp_path / target)), 2)


def test_bad_config_key_is_one_line_exit_2_and_writes_nothing(cli, runs: Path) -> None:
    assert_one_line_error(cli("models", "tiny", "--set", "vocab_sise=2000"), 2, "vocab_sise", "vocab_size")
    assert not runs.exists() or not any(runs.rglob(MANIFEST_NAME))


def test_resume_flags(cli) -> None:
    assert_one_line_error(cli("models", "tiny", "--resume"), 2, "nothing to resume")
    assert_one_line_error(cli("models", "tiny", "--resume", "--restart"), 2, "contradict")


def test_wrong_input_stage_is_exit_2(cli, runs: Path) -> None:
    model = make_artifact(runs, "model")
    assert_one_line_error(cli("sft", "--data", str(model)), 2, "'model' artifact", "'distill'")


def test_grpo_bad_inputs_are_one_line_and_write_nothing(cli, runs: Path) -> None:
    data = make_artifact(runs, "data")
    before = sorted(runs.rglob("*"))
    assert_one_line_error(cli("grpo", "--data", str(data)), 2, "--init")
    assert_one_line_error(cli("grpo", "--data", str(data), "--init", "./nope"), 2, "no such model")
    assert_one_line_error(
        cli("grpo", "--data", str(data), "--init", "x/y", "--set", "rewards.action_weights.STOP=-1"),
        2,
        "STOP",
        "positive",
    )
    assert_one_line_error(
        cli("grpo", "--data", str(data), "--init", "x/y", "--set", "rewards.format_coeff=1"),
        2,
        "format_coeff",
        "format_coef",
    )
    assert_one_line_error(
        cli("grpo", "--data", str(data), "--init", "x/y", "--set", "per_device_batch_size=3"),
        2,
        "multiple of num_generations",
    )
    assert_one_line_error(
        cli("grpo", "--data", str(data), "--init", "x/y", "--set", "finetune=full", "--set", "quantization=4bit"),
        2,
        "finetune",
    )
    assert sorted(runs.rglob("*")) == before


def test_stub_stages_still_validate_their_arguments(cli, runs: Path) -> None:
    assert_one_line_error(cli("sft", "--data", str(runs / "nope")), 2, "no such artifact")
    data = make_artifact(runs, "data")
    assert_one_line_error(cli("sft", "--data", str(data), "--set", "lora.r=x"), 2, "lora.r")
    assert_one_line_error(cli("eval", "--data", str(data)), 2, "exactly one of --model")
    assert_one_line_error(cli("data", "sim", "--frames", "0"), 2, "frames")


def test_missing_required_option_is_a_usage_error(cli) -> None:
    result = cli("distill")
    assert result.exit_code == 2 and result.stdout == ""


def test_real_process_keeps_stdout_clean_and_secrets_out(tmp_path: Path) -> None:
    """Through a real process: stdout is exactly the path; a secret in the environment is not printed."""
    env = {**os.environ, "ALPHADRIVE_HOME": str(tmp_path / "runs"), "OPENAI_API_KEY": "sk-never-print-me-123456"}
    done = subprocess.run(
        [sys.executable, "-m", "alphadrive_cli.cli", "models", "tiny"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{tmp_path / 'runs' / 'model' / 'tiny-qwen2-vl-v1'}\n"
    failed = subprocess.run(
        [sys.executable, "-m", "alphadrive_cli.cli", "sft", "--data", "sk-never-print-me-123456"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert failed.returncode == 2 and failed.stdout == ""
    assert "sk-never-print-me-123456" not in failed.stderr and "<redacted>" in failed.stderr


def test_long_artifact_paths_are_printed_on_one_line(cli, tmp_path: Path) -> None:
    root = tmp_path / ("deep-" * 30) / "runs"
    result = cli("models", "tiny", "--out-root", str(root))
    assert result.exit_code == 0
    assert result.stdout == f"{root / 'model' / 'tiny-qwen2-vl-v1'}\n"


def test_training_stage_errors_are_one_line_in_a_real_process(tmp_path: Path) -> None:
    """Importing the training stack (peft, bitsandbytes) must not add warnings to a one-line error."""
    data = make_artifact(tmp_path / "runs", "data")
    done = subprocess.run(
        [sys.executable, "-m", "alphadrive_cli.cli", "sft", "--data", str(data), "--model", "./nope"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ALPHADRIVE_HOME": str(tmp_path)},
    )
    assert done.returncode == 2 and done.stdout == ""
    assert [line for line in done.stderr.splitlines() if line.strip()] == [done.stderr.strip()]
    assert done.stderr.startswith("error: ")
