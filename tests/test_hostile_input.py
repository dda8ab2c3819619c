"""Every promise held under hostile input (issue 23): each test is a repro that broke a promise once.

The promises (docs/design.md, "Promises under hostile input", names each one's test here): no secret value on disk
or in a message; a teacher that answers nothing is a failure; configs cannot expand without bound; user text is
never read as console markup; imported images decode; resumed runs report the whole run; manifests are verified;
bad input is exit 2 and one line; a failed run that holds no work never blocks the corrected re-run; absurd values
are refused; one bad line of an import costs that line only.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alphadrive_cli.artifacts.store import MANIFEST_NAME, begin, open_artifact
from alphadrive_cli.errors import BadInput
from tests.support.cli_checks import assert_one_line_error
from tests.support.fault_server import FaultServer, last_user_text
from tests.support.labelled_data import make_labelled_data

KEY = "sk-hostile-0123456789abcdef"
LABELS = [("KEEP", "STRAIGHT"), ("DECELERATE", "LEFT_TURN"), ("STOP", "STRAIGHT"), ("KEEP", "RIGHT_TURN")]
PLAN = re.compile(r"The correct plan for this frame is: (\w+), (\w+)\.")


@pytest.fixture
def data(runs: Path) -> Path:
    return make_labelled_data(runs, LABELS, {"train": range(3), "val": [3], "test": range(4)})


def echo_label(body) -> str:
    """A teacher that reasons briefly and answers the plan its prompt names (or KEEP, STRAIGHT)."""
    plan = PLAN.search(last_user_text(body))
    speed, path = plan.groups() if plan else ("KEEP", "STRAIGHT")
    reasoning = "The lane ahead is clear and the route is known, so I follow it."
    return f"<think>{reasoning}</think><answer>{speed}, {path}</answer>"


def distill_openai(cli, data: Path, base_url: str, model: str, *extra: str):
    """``alphadrive distill`` of ``data`` with an OpenAI-compatible teacher at ``base_url``."""
    return cli("distill", "--data", data, "--teacher", "openai", "--base-url", base_url, "--model", model, *extra)


def files_holding(root: Path, secret: str) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]


def png_bytes(width: int, height: int, filter_type: int = 0) -> bytes:
    """A PNG with valid chunks and checksums; filter type 5 (there is none) makes its pixel data undecodable.
    Its IDAT holds one row only, so a huge size is cheap: it is refused before its pixels are read."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = min(height, 16) if filter_type else 1
    pixels = b"".join(bytes([filter_type]) + bytes(min(width, 16) * 3) for _ in range(rows))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(pixels)) + chunk(b"IEND", b"")


def frame_line(image: str, index: int, **fields) -> str:
    row = {
        "id": f"f{index}",
        "image": image,
        "navigation": "follow the road",
        "ego_speed_mps": 5.0,
        "speed_action": "KEEP",
        "path_action": "STRAIGHT",
        **fields,
    }
    return json.dumps(row)


@pytest.fixture
def frames_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(3):
        Image.fromarray(np.full((16, 16, 3), 40 * index, dtype=np.uint8)).save(folder / f"{index}.png")
    return folder


# 1. A key reaches neither disk nor stderr, whatever variable holds it.


def test_the_key_named_by_api_key_env_is_a_secret_everywhere(cli, data: Path, runs: Path, monkeypatch) -> None:
    monkeypatch.setenv("TEACHER_KEY", KEY)
    with FaultServer(answer=echo_label) as server:
        result = distill_openai(
            cli,
            data,
            server.base_url,
            KEY,
            "--set",
            "api_key_env=TEACHER_KEY",
            "--set",
            "max_retries=0",
        )
        dry = cli(
            "distill",
            "--data",
            data,
            "--teacher",
            "openai",
            "--model",
            KEY,
            "--name",
            "dry",
            "--dry-run",
            "--set",
            "api_key_env=TEACHER_KEY",
        )
    assert result.exit_code == 0, result.stderr
    assert all(request.headers["authorization"] == f"Bearer {KEY}" for request in server.requests)
    assert dry.exit_code == 0 and "<redacted>" in dry.stderr
    for output in (result.stdout, result.stderr, dry.stdout, dry.stderr):
        assert KEY not in output
    assert files_holding(runs, KEY) == []
    assert open_artifact(Path(result.stdout.strip())).manifest["teacher"]["name"] == "openai:<redacted>"


def test_a_key_passed_as_any_value_is_redacted_in_the_error(cli, data: Path, monkeypatch) -> None:
    monkeypatch.setenv("TEACHER_KEY", KEY)
    for setting in (f"teacher_prompt={KEY}", f"concurrency={KEY}"):
        result = cli(
            "distill",
            "--data",
            data,
            "--teacher",
            "openai",
            "--model",
            "x",
            "--set",
            "api_key_env=TEACHER_KEY",
            "--set",
            setting,
        )
        assert_one_line_error(result, 2, "<redacted>")
        assert KEY not in result.stderr


def test_an_endpoint_url_carrying_a_credential_is_refused_without_echoing_it(cli, data: Path) -> None:
    for url in (f"http://user:{KEY}@127.0.0.1:9/v1", f"http://127.0.0.1:9/v1?api-key={KEY}"):
        distill = cli("distill", "--data", data, "--teacher", "openai", "--model", "x", "--set", f"base_url={url}")
        served = cli("eval", "--data", data, "--base-url", url, "--api-model", "x")
        for result in (distill, served):
            assert_one_line_error(result, 2, "carries a credential", "api_key_env", "<redacted>")
            assert KEY not in result.stderr


# 2. A teacher that answers nothing is a failure, publishes nothing, and resumes.


def test_a_teacher_that_answers_nothing_fails_and_publishes_nothing(cli, data: Path, runs: Path) -> None:
    result = distill_openai(
        cli,
        data,
        "http://127.0.0.1:9/v1",
        "x",
        "--set",
        "max_retries=0",
        "--set",
        "timeout_s=1",
    )
    assert_one_line_error(result, 1, "answered 0 of 4 requests", "nothing was published")
    assert not list((runs / "distill").glob("distill-v*"))
    assert (runs / "distill" / ".distill.partial" / "requests.jsonl").is_file()
    with FaultServer(answer=echo_label) as server:  # the corrected endpoint resumes the same run
        fixed = distill_openai(
            cli,
            data,
            server.base_url,
            "x",
        )
    assert fixed.exit_code == 0, fixed.stderr
    manifest = open_artifact(Path(fixed.stdout.strip())).manifest
    assert manifest["resumed"] is True and manifest["counts"]["kept"] == 4


def test_fewer_answers_than_the_configured_share_fail(cli, data: Path, runs: Path) -> None:
    with FaultServer(answer=echo_label) as server:
        server.script_sample("(frame 0)", ["400"])
        result = distill_openai(
            cli,
            data,
            server.base_url,
            "x",
            "--set",
            "min_answered_share=0.9",
        )
    assert_one_line_error(result, 1, "answered 3 of 4 requests", "min_answered_share 0.9")
    assert not list((runs / "distill").glob("distill-v*"))


# 3. Configs cannot expand without bound, and messages never format an unbounded value.

BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x]"]
    + [f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]" for prev, name in zip("abcdefgh", "bcdefghi", strict=False)]
    + ["seed: *i"]
)


def test_a_yaml_alias_bomb_is_refused_in_one_line(cli, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    assert len(bomb.read_bytes()) < 700
    assert_one_line_error(cli("data", "sim", "--config", bomb), 2, "aliases", "not allowed")
    assert_one_line_error(cli("data", "sim", "--set", "seed=[&a [1, 1, 1], [*a, *a]]"), 2, "aliases")


def test_a_huge_value_is_cut_in_the_message(cli) -> None:
    result = cli("data", "sim", "--set", "seed=" + "9" * 100_000 + "x")
    assert_one_line_error(result, 2, "config key 'seed'")
    assert len(result.stderr) < 400


# 4. User text is never read as rich markup.


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["show", "runs/[/x]"], "runs/[/x]"),
        (["models", "tiny", "--name", "[/x]"], "'[/x]'"),
        (["models", "tiny", "--set", "[/x]=1"], "'[/x]'"),
        (["models", "tiny", "--set", "seed=[/x]"], "['/x']"),
    ],
)
def test_markup_in_user_text_is_printed_as_text(cli, args: list[str], shown: str) -> None:
    assert_one_line_error(cli(*args), 2, shown)


def test_balanced_tags_are_not_eaten(cli) -> None:
    assert_one_line_error(cli("show", "runs/[bold]hidden[/bold]"), 2, "runs/[bold]hidden[/bold]")


def test_a_prediction_id_with_markup_is_reported_as_text(cli, data: Path, tmp_path: Path) -> None:
    predictions = tmp_path / "predictions.jsonl"
    lines = [{"id": f"f{index}", "text": "<answer>KEEP, STRAIGHT</answer>"} for index in range(4)]
    predictions.write_text("\n".join(json.dumps(line) for line in [*lines, {"id": "[/oops]", "text": ""}]) + "\n")
    result = cli("eval", "--data", data, "--predictions", predictions)
    assert result.exit_code == 0, result.stderr
    assert "[/oops]" in result.stderr and "Traceback" not in result.stderr


# 5. data import decodes every image; 10. and refuses one too large.


def test_an_image_that_does_not_decode_is_a_bad_record(cli, frames_dir: Path) -> None:
    (frames_dir / "broken.png").write_bytes(png_bytes(16, 16, filter_type=5))
    Image.open(frames_dir / "broken.png").verify()  # its structure is valid: only decoding finds the fault
    source = frames_dir / "frames.jsonl"
    source.write_text("\n".join([frame_line("0.png", 0), frame_line("broken.png", 1), frame_line("2.png", 2)]) + "\n")
    result = cli("data", "import", source)
    assert result.exit_code == 0, result.stderr
    manifest = open_artifact(Path(result.stdout.strip())).manifest
    assert manifest["skipped"] == {"unreadable image": 1} and manifest["problems"][0]["line"] == 2
    assert_one_line_error(
        cli("data", "import", source, "--strict", "--name", "strict"), 2, "line 2", "unreadable image"
    )


@pytest.mark.parametrize(("width", "height"), [(12000, 12000), (7100, 7100)])  # 144 MP (a PIL warning), 50 MP
def test_an_image_with_too_many_pixels_is_a_bad_record(cli, frames_dir: Path, width: int, height: int) -> None:
    (frames_dir / "huge.png").write_bytes(png_bytes(width, height))
    source = frames_dir / "frames.jsonl"
    source.write_text("\n".join([frame_line("0.png", 0), frame_line("huge.png", 1)]) + "\n")
    result = cli("data", "import", source)
    assert result.exit_code == 0, result.stderr
    assert "Warning" not in result.stderr
    assert open_artifact(Path(result.stdout.strip())).manifest["skipped"] == {"image too large": 1}


# 7. manifest.json is verified; changed inputs are flagged.


@pytest.mark.parametrize("edit", [{"counts": {"train": 10**6}}, {"stage": "sft"}, {"metrics": {"accuracy": 1.0}}])
def test_an_edited_manifest_is_refused(cli, data: Path, edit: dict) -> None:
    path = data / MANIFEST_NAME
    path.write_text(json.dumps({**json.loads(path.read_text()), **edit}))
    with pytest.raises(BadInput, match="was edited"):
        open_artifact(data)
    assert_one_line_error(cli("show", data), 2, "was edited")


def test_show_flags_an_input_whose_files_changed_after_it_was_used(cli, data: Path, runs: Path) -> None:
    with begin("sft", "run", {}, root=runs, inputs={"data": open_artifact(data)}) as writer:
        writer.path("adapter.bin").write_text("weights")
        trained = writer.publish()
    (data / "train.jsonl").write_text("")
    shown = cli("show", trained.path)
    assert shown.exit_code == 0, shown.stderr
    assert "changed since it was used" in " ".join(shown.stdout.split())
    assert "train.jsonl" in json.loads(cli("show", trained.path, "--json").stdout)["inputs"][0]["problem"]


# 8. Bad input is exit 2 and one line, whatever its encoding or shape.


def test_a_non_utf8_config_or_predictions_file_is_bad_input(cli, data: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_bytes(b"seed: 1\nframes: \xff\xfe\n")
    assert_one_line_error(cli("data", "sim", "--config", config), 2, "not UTF-8", "line 2")
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_bytes(b'{"id": "f0", "text": "\xff"}\n')
    assert_one_line_error(cli("eval", "--data", data, "--predictions", predictions), 2, "not UTF-8")


@pytest.mark.parametrize(
    ("key", "value"), [("schema_version", "1"), ("outputs", []), ("inputs", {"data": 1}), ("version", None)]
)
def test_a_manifest_of_the_wrong_shape_is_bad_input(cli, data: Path, key: str, value) -> None:
    path = data / MANIFEST_NAME
    path.write_text(json.dumps({**json.loads(path.read_text()), key: value}))
    assert_one_line_error(cli("show", data), 2, "not an alphadrive manifest", key)


# 9. A failed run that holds no work never blocks the corrected re-run.


def test_a_corrected_rerun_replaces_a_failed_run_that_holds_no_work(cli, data: Path, tmp_path: Path) -> None:
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_bytes(b'{"id": "f0", "text": "\xff"}\n')
    assert cli("eval", "--data", data, "--predictions", predictions).exit_code == 2  # found after the run began
    predictions.write_text(json.dumps({"id": "f0", "text": "<answer>KEEP, STRAIGHT</answer>"}) + "\n")
    fixed = cli("eval", "--data", data, "--predictions", predictions)
    assert fixed.exit_code == 0, fixed.stderr
    assert open_artifact(Path(fixed.stdout.strip())).manifest["resumed"] is False


# 10. Absurd values are refused with the key named.


@pytest.mark.parametrize(
    ("command", "setting", "key"),
    [
        ("sft", "epochs=1e9", "epochs"),
        ("sft", "learning_rate=.inf", "learning_rate"),
        ("grpo", "rewards.action_weights.STOP=1e308", "action_weights"),
        ("sim", "frames=1.0e+12", "frames"),
        ("eval", "temperature=.inf", "temperature"),
        ("sim", "seed=-1", "seed"),
        ("sim", "workers=100000", "workers"),
    ],
)
def test_absurd_config_values_are_refused(cli, data: Path, command: str, setting: str, key: str) -> None:
    args = {
        "sft": ["sft", "--data", data],
        "grpo": ["grpo", "--data", data],
        "sim": ["data", "sim"],
        "eval": ["eval", "--data", data, "--predictions", "missing.jsonl"],
    }[command]
    assert_one_line_error(cli(*args, "--set", setting), 2, key)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"ego_speed_mps": 1e308}, "invalid value"),
        ({"navigation": "go " * 2000}, "invalid value"),
        ({"navigation": "x" * 30_000_000}, "unparsable row"),
    ],
)
def test_absurd_record_values_are_bad_records(cli, frames_dir: Path, fields: dict, reason: str) -> None:
    source = frames_dir / "frames.jsonl"
    source.write_text("\n".join([frame_line("0.png", 0), frame_line("1.png", 1, **fields)]) + "\n")
    result = cli("data", "import", source)
    assert result.exit_code == 0, result.stderr
    manifest = open_artifact(Path(result.stdout.strip())).manifest
    assert manifest["skipped"] == {reason: 1} and manifest["problems"][0]["line"] == 2
    assert len(json.dumps(manifest)) < 100_000


# 11. One bad UTF-8 byte costs its line only.


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_one_bad_utf8_byte_skips_that_line_only(cli, frames_dir: Path, suffix: str) -> None:
    source = frames_dir / f"frames{suffix}"
    if suffix == ".jsonl":
        lines = [frame_line(f"{index}.png", index).encode() for index in range(3)]
        lines[1] = lines[1].replace(b"follow", b"foll\xffow")
    else:
        header = b"id,image,navigation,ego_speed_mps,speed_action,path_action"
        lines = [header, *(f"f{index},{index}.png,follow the road,5,KEEP,STRAIGHT".encode() for index in range(3))]
        lines[2] = lines[2].replace(b"follow", b"foll\xffow")
    source.write_bytes(b"\n".join(lines) + b"\n")
    result = cli("data", "import", source)
    assert result.exit_code == 0, result.stderr
    manifest = open_artifact(Path(result.stdout.strip())).manifest
    assert manifest["skipped"] == {"unparsable row": 1}
    assert (
        manifest["problems"][0]["line"] == 2 + (suffix == ".csv") and "not UTF-8" in manifest["problems"][0]["detail"]
    )
    assert_one_line_error(
        cli("data", "import", source, "--strict", "--name", "strict"), 2, f"line {2 + (suffix == '.csv')}", "not UTF-8"
    )
