"""``alphadrive predict``: plans for frames without labels, as JSON lines; bad records named, never fatal."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from alphadrive_cli.actions import DEFAULT_VOCABULARY, parse_answer
from alphadrive_cli.artifacts.store import OutputSpec, open_artifact
from alphadrive_cli.config.schemas import TinyModelConfig
from alphadrive_cli.data.records import iter_split
from alphadrive_cli.stages import models_tiny
from tests.support.cli_checks import assert_one_line_error
from tests.support.labelled_data import make_labelled_data
from tests.support.tiny_inputs import outspoken_tiny_model

LABELS = [("KEEP", "STRAIGHT"), ("STOP", "STRAIGHT"), ("ACCELERATE", "LEFT_CHANGE")]
GENERATION = ("--max-new-tokens", "8", "--batch-size", "2")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with weights that answer each frame with its own text (a plain model directory)."""
    root = tmp_path_factory.mktemp("models")
    return outspoken_tiny_model(models_tiny.run(TinyModelConfig(), OutputSpec(root)).path, root / "outspoken")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_labelled_data(tmp_path / "labelled", LABELS, {"test": range(3)})


def unlabelled_rows(data: Path) -> list[dict]:
    """The data artifact's test frames as a user's file of frames without labels (image paths relative to it)."""
    return [
        {
            "id": record.id,
            "image": record.images[0],
            "navigation": record.navigation,
            "ego_speed_mps": record.ego_speed_mps,
        }
        for record in iter_split(open_artifact(data), "test", DEFAULT_VOCABULARY)
    ]


def write_jsonl(path: Path, rows: list[dict | str]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def test_predict_plans_unlabelled_frames_as_eval_model_answers_them(cli, tiny_model: Path, data: Path) -> None:
    frames = write_jsonl(data / "frames.jsonl", unlabelled_rows(data))
    result = cli("predict", "--model", tiny_model, "--frames", frames, *GENERATION)
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["f0", "f1", "f2"] and [line["line"] for line in lines] == [1, 2, 3]
    for line in lines:
        parsed = parse_answer(line["text"])
        assert line["parsed"] == parsed.to_dict()
        assert line["plan"] == (None if parsed.plan is None else dict(zip(("speed", "path"), parsed.plan, strict=True)))
    evaluated = cli("eval", "--model", tiny_model, "--data", data, "--set", "max_new_tokens=8", "--set", "batch_size=2")
    assert evaluated.exit_code == 0, evaluated.stderr
    eval_rows = (Path(evaluated.stdout.strip()) / "predictions.jsonl").read_text().splitlines()
    assert [line["text"] for line in lines] == [json.loads(row)["text"] for row in eval_rows]  # the same prompts
    assert len({line["text"] for line in lines}) == 3  # each frame its own answer: the check can fail


def test_bad_records_are_named_in_place_and_the_good_ones_still_planned(
    cli, tiny_model: Path, data: Path, tmp_path: Path
) -> None:
    good = unlabelled_rows(data)
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    rows = [
        good[0],
        {**good[1], "image": "gone.png"},  # line 2: missing image
        {**good[2], "image": "broken.png"},  # line 3: unreadable image
        {key: value for key, value in good[2].items() if key != "navigation"},  # line 4: no navigation
        "not json",  # line 5
        {**good[2], "id": "last"},  # line 6
    ]
    frames = write_jsonl(data / "frames.jsonl", rows)
    result = cli("predict", "--model", tiny_model, "--frames", frames, *GENERATION)
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["line"] for line in lines] == [1, 2, 3, 4, 5, 6]  # one line per record, in the file's order
    assert [line.get("id") for line in lines] == ["f0", None, None, None, None, "last"]
    assert lines[1]["error"] == "missing image file: gone.png"
    assert lines[2]["error"].startswith("unreadable image: broken.png")
    assert lines[3]["error"] == "missing field: navigation"
    assert lines[4]["error"].startswith("unparsable row: invalid JSON")
    stderr = result.stderr.splitlines()
    for number in (2, 3, 4, 5):
        assert sum(f"frames.jsonl line {number}:" in line and line.startswith("warning:") for line in stderr) == 1
    assert (
        stderr[-1] == f"error: 4 record(s) of {frames} could not be planned (each named above; the rest were planned)"
    )

    out = tmp_path / "plans.jsonl"
    again = cli("predict", "--model", tiny_model, "--frames", frames, "--out", out, *GENERATION)
    assert again.exit_code == 2 and again.stdout == ""
    assert out.read_text() == result.stdout  # the same lines, as a file
    assert_one_line_error(cli("predict", "--model", tiny_model, "--frames", frames, "--out", out), 2, f"{out} exists")


def test_a_csv_of_frames_with_an_images_root(cli, tiny_model: Path, data: Path, tmp_path: Path) -> None:
    frames = tmp_path / "elsewhere" / "frames.csv"
    frames.parent.mkdir()
    with frames.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "navigation", "ego_speed_mps"])
        writer.writeheader()
        writer.writerows({key: row[key] for key in writer.fieldnames} for row in unlabelled_rows(data))
    result = cli("predict", "--model", tiny_model, "--frames", frames, "--images-root", data, *GENERATION)
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["frames-2", "frames-3", "frames-4"]


def test_a_reader_that_stops_early_ends_planning_quietly(tiny_model: Path, data: Path) -> None:
    frames = write_jsonl(data / "frames.jsonl", unlabelled_rows(data))
    command = [sys.executable, "-m", "alphadrive_cli.cli", "predict", "--model", str(tiny_model), "--frames",
               str(frames), "--batch-size", "1", "--max-new-tokens", "4"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()  # like `| head -1`
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 0, stderr
    assert json.loads(first)["id"] == "f0" and "error" not in stderr and "Traceback" not in stderr


def test_bad_arguments_are_one_line_errors(cli, tiny_model: Path, data: Path) -> None:
    assert_one_line_error(cli("predict", "--model", tiny_model, "--frames", data / "none.jsonl"), 2, "no such file")
    assert_one_line_error(cli("predict", "--model", "./no/such/model", "--frames", data / "x.jsonl"), 2)
    frames = write_jsonl(data / "frames.txt", unlabelled_rows(data))
    assert_one_line_error(cli("predict", "--model", tiny_model, "--frames", frames), 2, ".jsonl or .csv")
