"""Versioned artifact directories: atomic publish, manifests, verification, resume, lineage."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from alphadrive_cli.artifacts.redaction import REDACTED
from alphadrive_cli.artifacts.store import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    ResumePolicy,
    begin,
    content_hash,
    lineage,
    open_artifact,
    sha256_file,
)
from alphadrive_cli.errors import BadInput


def publish_simple(root: Path, stage: str = "data", name: str = "toy", text: str = "hello", **kwargs):
    with begin(stage, name, {"seed": 1}, root=root, **kwargs) as writer:
        writer.path("records/train.jsonl").write_text(text)
        return writer.publish(counts={"records": 1}, metrics={"f1": 0.5})


def test_publish_writes_versioned_directory_with_complete_manifest(tmp_path: Path) -> None:
    artifact = publish_simple(tmp_path)
    assert artifact.path == tmp_path / "data" / "toy-v1"
    manifest = json.loads((artifact.path / MANIFEST_NAME).read_text())
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert (manifest["stage"], manifest["name"], manifest["version"]) == ("data", "toy", 1)
    assert manifest["config"] == {"seed": 1}
    assert manifest["counts"] == {"records": 1} and manifest["metrics"] == {"f1": 0.5}
    assert manifest["outputs"] == {"records/train.jsonl": sha256_file(artifact.path / "records/train.jsonl")}
    assert manifest["content_hash"] == content_hash(manifest["outputs"])
    for key in ("created", "tool", "device", "wall_time_s", "inputs", "prompts"):
        assert key in manifest
    assert manifest["tool"]["name"] == "alphadrive"
    assert not (tmp_path / "data" / ".toy.partial").exists()


def test_each_publish_gets_the_next_version_and_never_overwrites(tmp_path: Path) -> None:
    first = publish_simple(tmp_path, text="one")
    second = publish_simple(tmp_path, text="two")
    other = publish_simple(tmp_path, name="other")
    assert [first.version, second.version, other.version] == [1, 2, 1]
    assert (first.path / "records/train.jsonl").read_text() == "one"
    assert second.path.name == "toy-v2"


def test_same_content_gives_same_content_hash(tmp_path: Path) -> None:
    assert publish_simple(tmp_path / "a").content_hash == publish_simple(tmp_path / "b").content_hash
    assert publish_simple(tmp_path / "c", text="x").content_hash != publish_simple(tmp_path / "d").content_hash


@pytest.mark.parametrize("name", ["", "../up", "a/b", "-dash", "x-v3", "white space", "a" * 101])
def test_invalid_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(BadInput, match="invalid artifact name"):
        begin("data", name, {}, root=tmp_path)


def test_failure_inside_a_stage_leaves_nothing_that_looks_finished(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with begin("sft", "run", {"lr": 1}, root=tmp_path) as writer:
            writer.path("checkpoint-1/state.txt").write_text("step 1")
            raise RuntimeError("crash")
    stage_dir = tmp_path / "sft"
    assert not any(path.name.startswith("run-v") for path in stage_dir.iterdir())
    assert (stage_dir / ".run.partial" / "checkpoint-1/state.txt").exists()
    assert not (stage_dir / ".run.partial" / MANIFEST_NAME).exists()


def test_rerun_with_same_identity_resumes_the_unfinished_directory(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with begin("sft", "run", {"lr": 1}, root=tmp_path) as writer:
            writer.path("checkpoint-1/state.txt").write_text("step 1")
            raise RuntimeError("crash")
    with begin("sft", "run", {"lr": 1}, root=tmp_path) as writer:
        assert writer.resumed
        assert (writer.dir / "checkpoint-1/state.txt").read_text() == "step 1"
        artifact = writer.publish()
    assert artifact.manifest["resumed"] is True
    assert "checkpoint-1/state.txt" in artifact.manifest["outputs"]
    assert ".alphadrive-run.json" not in artifact.manifest["outputs"]


def test_unfinished_run_with_other_settings_is_an_error_not_a_silent_restart(tmp_path: Path) -> None:
    with begin("sft", "run", {"lr": 1}, root=tmp_path) as writer:
        writer.path("checkpoints/step-1.bin").write_text("work done")
    with pytest.raises(BadInput, match="--restart"):
        begin("sft", "run", {"lr": 2}, root=tmp_path)
    with begin("sft", "run", {"lr": 2}, root=tmp_path, resume=ResumePolicy.RESTART) as writer:
        assert not writer.resumed
        assert writer.publish().manifest["config"] == {"lr": 2}


def test_resume_required_but_nothing_to_resume(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="nothing to resume"):
        begin("sft", "run", {}, root=tmp_path, resume=ResumePolicy.REQUIRE)


def test_resume_identity_includes_input_content(tmp_path: Path) -> None:
    data_a = publish_simple(tmp_path, text="a")
    data_b = publish_simple(tmp_path, text="b")
    with begin("sft", "run", {}, root=tmp_path, inputs={"data": data_a}) as writer:
        writer.path("checkpoints/step-1.bin").write_text("work done")
    with pytest.raises(BadInput, match="other settings or inputs"):
        begin("sft", "run", {}, root=tmp_path, inputs={"data": data_b})


def test_a_second_writer_of_the_same_name_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    first = begin("data", "toy", {}, root=tmp_path)
    try:
        with pytest.raises(BadInput, match="another alphadrive process"):
            begin("data", "toy", {}, root=tmp_path)
    finally:
        first.release()
    begin("data", "toy", {}, root=tmp_path).release()  # free again once released


def test_open_artifact_reports_missing_and_non_artifacts(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such artifact"):
        open_artifact(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(BadInput, match="not an alphadrive artifact"):
        open_artifact(tmp_path / "plain")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(BadInput, match="not a directory"):
        open_artifact(tmp_path / "file.txt")
    (tmp_path / "plain" / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(BadInput, match="unreadable"):
        open_artifact(tmp_path / "plain")
    (tmp_path / "plain" / MANIFEST_NAME).write_text('{"stage": "data"}')
    with pytest.raises(BadInput, match="missing"):
        open_artifact(tmp_path / "plain")


def test_open_artifact_refuses_a_partial_directory(tmp_path: Path) -> None:
    writer = begin("data", "toy", {}, root=tmp_path)
    writer.release()
    with pytest.raises(BadInput, match="unfinished run"):
        open_artifact(writer.dir)


def test_open_artifact_checks_the_stage(tmp_path: Path) -> None:
    artifact = publish_simple(tmp_path)
    with pytest.raises(BadInput, match="is a 'data' artifact; this needs a 'model' or 'sft' artifact"):
        open_artifact(artifact.path, stage=("model", "sft"))
    assert open_artifact(artifact.path, stage="data").version == 1


def test_tampered_file_is_named(tmp_path: Path) -> None:
    artifact = publish_simple(tmp_path)
    (artifact.path / "records/train.jsonl").write_text("HELLO")
    with pytest.raises(BadInput, match=r"modified after it was written: records/train.jsonl"):
        open_artifact(artifact.path)
    assert open_artifact(artifact.path, check=False).name == "toy"


def test_deleted_file_is_named(tmp_path: Path) -> None:
    artifact = publish_simple(tmp_path)
    (artifact.path / "records/train.jsonl").unlink()
    with pytest.raises(BadInput, match=r"damaged: records/train.jsonl is missing"):
        open_artifact(artifact.path)


def test_edited_manifest_file_list_is_detected(tmp_path: Path) -> None:
    artifact = publish_simple(tmp_path)
    manifest = json.loads((artifact.path / MANIFEST_NAME).read_text())
    (artifact.path / "records/train.jsonl").write_text("forged")
    manifest["outputs"]["records/train.jsonl"] = sha256_file(artifact.path / "records/train.jsonl")
    (artifact.path / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(BadInput, match="was edited"):
        open_artifact(artifact.path)


def test_manifest_from_a_newer_tool_is_refused(tmp_path: Path) -> None:
    artifact = publish_simple(tmp_path)
    manifest = json.loads((artifact.path / MANIFEST_NAME).read_text())
    manifest["schema_version"] = SCHEMA_VERSION + 1
    (artifact.path / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(BadInput, match="newer alphadrive"):
        open_artifact(artifact.path)


def test_lineage_records_inputs_and_walks_back(tmp_path: Path) -> None:
    data = publish_simple(tmp_path)
    with begin("distill", "traces", {}, root=tmp_path, inputs={"data": data}) as writer:
        writer.path("train.jsonl").write_text("t")
        distilled = writer.publish()
    with begin("sft", "run", {}, root=tmp_path, inputs={"data": distilled}) as writer:
        writer.path("adapter.bin").write_text("w")
        trained = writer.publish()
    ref = trained.manifest["inputs"][0]
    assert ref["role"] == "data" and ref["stage"] == "distill" and ref["content_hash"] == distilled.content_hash
    assert not Path(ref["path"]).is_absolute()  # lineage survives moving the whole tree
    node = lineage(trained)
    assert node.parents[0].artifact.label == "distill/traces-v1"
    assert node.parents[0].parents[0].artifact.label == "data/toy-v1"
    assert all(parent.problem is None for parent in (node.parents[0], node.parents[0].parents[0]))

    moved = tmp_path.parent / "moved-runs"
    os.rename(tmp_path, moved)
    assert lineage(open_artifact(moved / "sft" / "run-v1")).parents[0].parents[0].artifact is not None


def test_lineage_marks_missing_and_replaced_inputs(tmp_path: Path) -> None:
    data = publish_simple(tmp_path)
    with begin("sft", "run", {}, root=tmp_path, inputs={"data": data}) as writer:
        trained = writer.publish()
    with begin("data", "other", {}, root=tmp_path) as writer:  # rebuilt in its place: other content
        writer.path("records/train.jsonl").write_text("rebuilt")
        rebuilt = writer.publish()
    shutil.rmtree(data.path)
    os.rename(rebuilt.path, data.path)
    assert "content differs" in lineage(trained).parents[0].problem
    os.rename(data.path, tmp_path / "gone")
    missing = lineage(trained).parents[0]
    assert missing.artifact is None and "no such artifact" in missing.problem


def test_secrets_never_reach_the_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    config = {
        "api_key": "sk-inline-secret-value",
        "api_key_env": "OPENAI_API_KEY",
        "base_url": "http://127.0.0.1:1/v1?key=sk-test-0123456789abcdef",
    }
    with begin("distill", "run", config, root=tmp_path) as writer:
        writer.path("tokenizer.json").write_text("{}")
        artifact = writer.publish(extra={"teacher": {"note": "used sk-test-0123456789abcdef"}})
    text = (artifact.path / MANIFEST_NAME).read_text()
    assert "sk-test-0123456789abcdef" not in text and "sk-inline-secret-value" not in text
    assert artifact.manifest["config"]["api_key"] == REDACTED
    assert artifact.manifest["config"]["api_key_env"] == "OPENAI_API_KEY"
    assert "tokenizer.json" in artifact.manifest["outputs"]  # file names are not redacted
    open_artifact(artifact.path)  # and the manifest still verifies


_WRITER_SCRIPT = textwrap.dedent(
    """
    import signal, sys, time
    from pathlib import Path
    from alphadrive_cli.artifacts.store import begin
    from alphadrive_cli.ui import raise_on_sigterm
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a shell's `cmd &` starts it with SIGINT ignored
    raise_on_sigterm()
    with begin("sft", "run", {"lr": 1}, root=Path(sys.argv[1])) as writer:
        writer.path("checkpoint-1/state.txt").write_text("step 1")
        print("ready", flush=True)
        time.sleep(60)
        writer.publish()
    """
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_killed_stage_leaves_no_finished_directory_and_can_resume(tmp_path: Path, sig: signal.Signals) -> None:
    process = subprocess.Popen([sys.executable, "-c", _WRITER_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(sig)
        process.wait(timeout=30)
    finally:
        process.kill()
    assert process.returncode != 0
    stage_dir = tmp_path / "sft"
    assert sorted(path.name for path in stage_dir.iterdir() if not path.name.endswith(".lock")) == [".run.partial"]
    started = time.monotonic()
    with begin("sft", "run", {"lr": 1}, root=tmp_path) as writer:  # lock is free, state is kept
        assert writer.resumed and (writer.dir / "checkpoint-1/state.txt").exists()
        assert writer.publish().path.name == "run-v1"
    assert time.monotonic() - started < 10
