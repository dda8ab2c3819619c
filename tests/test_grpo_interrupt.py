"""Ctrl-C (SIGINT) or SIGTERM during `alphadrive grpo` leaves an unfinished artifact that the same command resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alphadrive_cli.artifacts.store import OutputSpec, open_artifact
from alphadrive_cli.config.schemas import TinyModelConfig
from alphadrive_cli.stages import models_tiny
from tests.support.labelled_data import make_labelled_data


@pytest.mark.slow
def test_interrupted_grpo_process_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    """Ctrl-C right after the first checkpoint appears (SIGTERM takes the same path: tests/test_artifacts.py)."""
    root = tmp_path / "runs"
    data = make_labelled_data(root, [("KEEP", "STRAIGHT"), ("STOP", "STRAIGHT")] * 2, {"train": range(4)})
    model = models_tiny.run(TinyModelConfig(), OutputSpec(root)).path
    command = [
        sys.executable,
        "-m",
        "alphadrive_cli.cli",
        "grpo",
        "--data",
        str(data),
        "--init",
        str(model),
        "--out-root",
        str(root),
        "--set",
        "max_steps=30",
        "--set",
        "save_steps=2",
        "--set",
        "max_completion_length=8",
        "--set",
        "sample_every=1",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    # a complete checkpoint: its directory appears before the save finishes, and a checkpoint cut off
    # mid-write is discarded on resume (the next test)
    state = root / "grpo" / ".grpo.partial" / "checkpoints" / "checkpoint-2" / "trainer_state.json"
    try:
        deadline = time.monotonic() + 240
        while not state.is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert state.is_file(), "no complete checkpoint appeared"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert stdout == ""  # no artifact path: nothing was published
    assert "interrupted" in stderr.lower() and "Traceback" not in stderr
    assert not any(path.name.startswith("grpo-v") for path in (root / "grpo").iterdir())

    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    artifact = open_artifact(Path(done.stdout.strip()), stage="grpo")
    assert artifact.manifest["training"]["resumed_from_step"] >= 2
    assert artifact.manifest["metrics"]["steps"] == 30
    steps = [json.loads(line)["step"] for line in (artifact.path / "samples.jsonl").read_text().splitlines()]
    assert sorted(set(steps)) == list(range(30)) and len(steps) == 30 * 8  # every step once (2 frames x 4)


def test_a_checkpoint_cut_off_mid_write_is_removed_and_the_previous_one_used(tmp_path: Path) -> None:
    from alphadrive_cli.training.checkpoints import last_checkpoint

    for step, complete in ((2, True), (4, True), (6, False)):
        checkpoint = tmp_path / f"checkpoint-{step}"
        checkpoint.mkdir()
        (checkpoint / "model.safetensors").write_bytes(b"x")
        if complete:
            (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-8").mkdir()
    (tmp_path / "checkpoint-8" / "trainer_state.json").write_text('{"global_st')  # cut off inside the file
    assert last_checkpoint(tmp_path) == (str(tmp_path / "checkpoint-4"), 4)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert last_checkpoint(tmp_path / "missing") == (None, None)
