"""The whole pipeline on the tiny model, as a user runs it: data -> distill -> sft -> grpo -> eval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alphadrive_cli.artifacts.store import lineage, open_artifact


def stages_by_role(node, trail: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every path of (role:stage) steps from the artifact to a leaf of its lineage; all inputs must be found."""
    assert node.problem is None, node.problem
    here = (*trail, f"{node.role}:{node.artifact.stage}")
    if not node.parents:
        return {here}
    return set().union(*(stages_by_role(parent, here) for parent in node.parents))


@pytest.mark.slow
def test_data_to_eval_on_the_tiny_model(cli, tmp_path: Path) -> None:
    def run(*args: str) -> Path:
        result = cli(*args, "--out-root", tmp_path)
        assert result.exit_code == 0, result.stderr
        path = Path(result.stdout.strip())
        assert path.is_dir() and result.stdout == f"{path}\n"
        return path

    data = run(
        "data",
        "sim",
        "--frames",
        "40",
        "--seed",
        "3",
        "--workers",
        "1",
        "--set",
        "frames_per_episode=4",
        "--set",
        "split={train: 0.5, val: 0.25, test: 0.25}",
    )
    traces = run("distill", "--data", data, "--teacher", "grounded")
    model = run("models", "tiny")
    student = run("sft", "--data", traces, "--model", model, "--set", "max_steps=20")
    policy = run("grpo", "--data", data, "--init", student, "--set", "max_steps=2", "--set", "sample_every=1")
    report = run("eval", "--model", policy, "--data", data, "--set", "max_new_tokens=64")

    paths = stages_by_role(lineage(open_artifact(report)))
    assert ("artifact:eval", "model:grpo", "init:sft", "data:distill", "data:data") in paths
    assert ("artifact:eval", "model:grpo", "init:sft", "model:model") in paths
    assert ("artifact:eval", "model:grpo", "data:data") in paths
    assert ("artifact:eval", "data:data") in paths
    data_hashes = {ref["content_hash"] for ref in open_artifact(policy).manifest["inputs"] if ref["role"] == "data"}
    assert data_hashes == {open_artifact(data).manifest["content_hash"]}
    history = json.loads((policy / "log_history.json").read_text())
    assert all(
        f"planning/{c}/mean" in entry
        for entry in history
        if "reward" in entry
        for c in ("format", "speed_accuracy", "path_accuracy", "speed_weight", "speed_diversity")
    )
    assert (policy / "samples.jsonl").read_text().count("\n") == 2 * 4 * 2  # 2 steps, 2 groups of 4
    metrics = json.loads((report / "metrics.json").read_text())
    assert 0.0 <= metrics["planning_accuracy"] <= 1.0
