"""``alphadrive distill``: grounded teacher offline, and a real HTTP teacher with injected faults."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from alphadrive_cli.actions import DEFAULT_VOCABULARY
from alphadrive_cli.artifacts.store import open_artifact
from alphadrive_cli.data.records import Record, iter_split
from tests.support.fault_server import FaultServer, last_user_text
from tests.support.interrupts import ctrl_c_after_stored
from tests.support.labelled_data import make_labelled_data

LABELS = [
    ("KEEP", "STRAIGHT"),
    ("DECELERATE", "LEFT_TURN"),
    ("STOP", "STRAIGHT"),
    ("ACCELERATE", "RIGHT_CHANGE"),
    ("KEEP", "STRAIGHT"),
    ("KEEP", "RIGHT_TURN"),
    ("DECELERATE", "STRAIGHT"),
    ("KEEP", "LEFT_CHANGE"),
]
SECRET = "sk-test-distill-0123456789"
PLAN = re.compile(r"The correct plan for this frame is: (\w+), (\w+)\.")


def make_data(root: Path) -> Path:
    """Eight labelled frames (6 train, 2 val), each with a unique navigation text used as a marker."""
    return make_labelled_data(root, LABELS, {"train": range(6), "val": range(6, 8)})


def teacher_answer(body) -> str:
    """A well-behaved teacher: reasons, then answers the plan it was told (or KEEP, STRAIGHT unasked)."""
    text = last_user_text(body)
    plan = PLAN.search(text)
    speed, path = plan.groups() if plan else ("KEEP", "STRAIGHT")
    reasoning = "The road ahead is clear enough and the route is known, so I act on it."
    return f"<think>{reasoning}</think><answer>{speed}, {path}</answer>"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_data(tmp_path / "runs")


def records(artifact: Path, split: str = "train") -> list[Record]:
    return list(iter_split(open_artifact(artifact), split, DEFAULT_VOCABULARY))


def openai_args(server: FaultServer, *extra: str) -> list[str]:
    return [
        "--teacher",
        "openai",
        "--model",
        "gpt-test",
        "--base-url",
        server.base_url,
        "--concurrency",
        "1",
        "--set",
        "timeout_s=1.5",
        "--set",
        "max_retries=2",
        *extra,
    ]


def test_grounded_teacher_distills_offline(cli, data: Path) -> None:
    result = cli("distill", "--data", data)
    assert result.exit_code == 0, result.stderr
    artifact = open_artifact(Path(result.stdout.strip()), stage="distill")
    train = records(artifact.path)
    assert [r.id for r in train] == [f"f{i}" for i in range(6)] and len(records(artifact.path, "val")) == 2
    assert all(r.reasoning and len(r.reasoning) > 20 for r in train)
    assert all(r.teacher["name"] == "grounded:grounded-v1" for r in train)
    manifest = artifact.manifest
    assert manifest["inputs"][0]["role"] == "data" and manifest["teacher"]["kind"].startswith("offline template writer")
    assert manifest["verdicts"] == {"kept": 8} and manifest["counts"]["kept"] == 8
    assert manifest["prompts"][0]["id"] == "grounded-v1"
    assert all((artifact.path / image).is_file() for r in train for image in r.images)
    assert "kept" in result.stderr


def test_grounded_teacher_can_state_only_what_one_frame_shows(cli, data: Path, monkeypatch) -> None:
    """`grounded_facts: one_frame` reaches every trace the teacher writes, names the teacher apart and keeps the
    phrasing of the full traces (what it leaves out is tested in tests/test_teacher_grounded.py); a model teacher
    refuses it."""
    from alphadrive_cli.stages import distill as distill_stage

    real, asked = distill_stage.grounded_trace, []

    def spy(*args):
        asked.append(args[4])
        return real(*args)

    monkeypatch.setattr(distill_stage, "grounded_trace", spy)
    result = cli("distill", "--data", data, "--set", "grounded_facts=one_frame")
    assert result.exit_code == 0, result.stderr
    artifact = open_artifact(Path(result.stdout.strip()), stage="distill")
    assert asked == ["one_frame"] * 8
    assert all(r.teacher["name"] == "grounded:grounded-v1+one_frame" for r in records(artifact.path))
    assert artifact.manifest["config"]["grounded_facts"] == "one_frame"
    # these frames have no lead vehicle and no traffic count: the traces are the full traces, phrasing included
    full = cli("distill", "--data", data)
    assert full.exit_code == 0, full.stderr
    assert [r.reasoning for r in records(Path(full.stdout.strip()))] == [r.reasoning for r in records(artifact.path)]
    openai = cli("distill", "--data", data, "--teacher", "openai", "--model", "m", "--set", "grounded_facts=one_frame")
    assert openai.exit_code == 2 and "is for the grounded teacher" in openai.stderr


def test_share_distills_a_seeded_part_of_each_split(cli, data: Path) -> None:
    halves = []
    for seed in (0, 0, 1):
        result = cli("distill", "--data", data, "--set", "share=0.5", "--set", f"seed={seed}")
        assert result.exit_code == 0, result.stderr
        artifact = Path(result.stdout.strip())
        train, val = records(artifact), records(artifact, "val")
        assert len(train) == 3 and len(val) == 1
        assert open_artifact(artifact).manifest["counts"]["kept"] == 4
        halves.append([r.id for r in train])
    assert halves[0] == halves[1] and halves[0] == sorted(halves[0])  # the same draw, in the data's order
    assert halves[2] != halves[0]  # another seed draws other frames
    assert cli("distill", "--data", data, "--set", "share=0").exit_code == 2


def test_grounded_teacher_refuses_verify_and_openai_needs_a_model(cli, data: Path) -> None:
    assert cli("distill", "--data", data, "--verify").exit_code == 2
    assert cli("distill", "--data", data, "--teacher", "openai").exit_code == 2


def test_missing_api_key_is_exit_2(cli, data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = cli("distill", "--data", data, "--teacher", "openai", "--model", "gpt-test")
    assert result.exit_code == 2 and "OPENAI_API_KEY" in result.stderr


def test_faults_are_retried_recorded_and_failures_listed(cli, data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    # the client waits 1.5 s, the "timeout" fault hangs 3 s: an "ok" reply on a loaded 2-core machine is not a timeout
    with FaultServer(answer=teacher_answer, retry_after_headers={"Retry-After": "0.05"}, hang_s=3.0) as server:
        server.script_sample("(frame 0)", ["429", "ok"])
        server.script_sample("(frame 1)", ["500", "503", "ok"])
        server.script_sample("(frame 2)", ["refusal"])
        server.script_sample("(frame 3)", ["malformed", "malformed", "malformed"])
        server.script_sample("(frame 4)", ["timeout", "ok"])
        result = cli("distill", "--data", data, *openai_args(server))
    assert result.exit_code == 0, result.stderr
    artifact = open_artifact(Path(result.stdout.strip()))
    manifest = artifact.manifest
    assert manifest["outcomes"] == {"ok": 6, "refused": 1, "malformed": 1}
    assert manifest["failed_samples"] == ["f3"]
    assert manifest["verdicts"]["kept"] == 6 and manifest["verdicts"]["teacher refused"] == 1
    assert [r.id for r in records(artifact.path)] == ["f0", "f1", "f4", "f5"]
    stored = {
        json.loads(line)["sample_id"]: json.loads(line)
        for line in (artifact.path / "requests.jsonl").read_text().splitlines()
    }
    assert stored["f0"]["attempts"] == 2 and stored["f1"]["attempts"] == 3 and stored["f3"]["attempts"] == 3
    assert stored["f2"]["attempts"] == 1
    assert all(request.headers["authorization"] == f"Bearer {SECRET}" for request in server.requests)
    assert any("data:image/png;base64," in json.dumps(request.body) for request in server.requests)
    for file in artifact.path.rglob("*"):  # the key reaches the server, never the disk
        if file.is_file():
            assert SECRET.encode() not in file.read_bytes(), file
    assert SECRET not in result.stderr and SECRET not in result.stdout


def test_killed_half_way_then_resumed_answers_every_sample_exactly_once(
    cli, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FaultServer(answer=teacher_answer) as server:
        server.script_sample("(frame 1)", ["500", "ok"])
        with ctrl_c_after_stored(monkeypatch, 3):
            interrupted = cli("distill", "--data", data, *openai_args(server))
        assert interrupted.exit_code == 130 and interrupted.stdout == ""
        first_run = len(server.requests)
        resumed = cli("distill", "--data", data, *openai_args(server))
    assert resumed.exit_code == 0, resumed.stderr
    artifact = open_artifact(Path(resumed.stdout.strip()))
    assert artifact.manifest["resumed"] is True
    answered = Counter(
        re.search(r"\(frame (\d)\)", last_user_text(request.body)).group(1)
        for request in server.requests
        if request.fault == "ok"
    )
    assert answered == {str(i): 1 for i in range(8)}  # every sample answered once, over both runs
    assert len(server.requests) == first_run + 5  # the resumed run asked only the 5 unanswered samples
    assert len(records(artifact.path)) + len(records(artifact.path, "val")) == 8


def test_request_budget_stops_cleanly_and_resumes(cli, data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FaultServer(answer=teacher_answer) as server:
        dry = cli("distill", "--data", data, *openai_args(server), "--dry-run")
        assert dry.exit_code == 0 and dry.stdout == "" and "8 requests" in dry.stderr and len(server.requests) == 0
        stopped = cli("distill", "--data", data, *openai_args(server), "--max-requests", "3")
        assert stopped.exit_code == 1 and "--max-requests 3" in stopped.stderr and "re-run" in stopped.stderr
        assert len(server.requests) == 3
        dry_again = cli("distill", "--data", data, *openai_args(server), "--dry-run")
        assert "5 requests" in dry_again.stderr and "3 already answered" in dry_again.stderr
        finished = cli("distill", "--data", data, *openai_args(server))
    assert finished.exit_code == 0, finished.stderr
    assert len(server.requests) == 8
    assert open_artifact(Path(finished.stdout.strip())).manifest["counts"]["prompt_tokens"] > 0


def test_cost_budget(cli, data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FaultServer(answer=teacher_answer) as server:
        result = cli("distill", "--data", data, *openai_args(server), "--max-cost", "0.000001")
        assert result.exit_code == 1 and "--max-cost" in result.stderr
        assert 1 <= len(server.requests) < 8


def test_verify_keeps_only_traces_the_teacher_agrees_with_unprompted(
    cli, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FaultServer(answer=teacher_answer) as server:  # unprompted, this teacher always says KEEP, STRAIGHT
        result = cli("distill", "--data", data, *openai_args(server), "--verify")
    assert result.exit_code == 0, result.stderr
    artifact = open_artifact(Path(result.stdout.strip()))
    kept = records(artifact.path) + records(artifact.path, "val")
    assert sorted(r.id for r in kept) == ["f0", "f4"]  # the two KEEP, STRAIGHT frames
    assert artifact.manifest["verdicts"]["verification disagrees"] == 6
    assert [p["id"] for p in artifact.manifest["prompts"]] == ["teacher-v1", "verify-v1"]


def test_several_samples_per_frame(cli, data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FaultServer(answer=teacher_answer) as server:
        result = cli(
            "distill", "--data", data, *openai_args(server), "--samples-per-frame", "2", "--set", "splits=[val]"
        )
    assert result.exit_code == 0, result.stderr
    assert [r.id for r in records(Path(result.stdout.strip()), "val")] == ["f6-s0", "f6-s1", "f7-s0", "f7-s1"]
    assert len(server.requests) == 4


def test_a_rejected_key_stops_the_run_at_the_first_reply(cli, data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FaultServer(default="401") as server:
        result = cli("distill", "--data", data, *openai_args(server))
    assert result.exit_code == 2 and "401" in result.stderr and "OPENAI_API_KEY" in result.stderr
    assert len(server.requests) == 1  # not one failed request per sample
