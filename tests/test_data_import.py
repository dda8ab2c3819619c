"""``alphadrive data import``: frames and ego poses from JSONL/CSV into a verified ``data`` artifact."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from alphadrive_cli.actions import DEFAULT_VOCABULARY
from alphadrive_cli.artifacts.store import Artifact, OutputSpec, open_artifact
from alphadrive_cli.config.schemas import ImportConfig, LabelRules, SplitFractions
from alphadrive_cli.data.importers import (
    BEYOND_HORIZON,
    DUPLICATE_ID,
    DUPLICATE_TIME,
    INVALID_VALUE,
    MISSING_FIELD,
    MISSING_IMAGE,
    NEGATIVE_SPEED,
    NON_NUMERIC,
    OUTSIDE_ROOT,
    UNKNOWN_ACTION,
    UNPARSABLE,
    UNREADABLE_IMAGE,
    assign_split,
)
from alphadrive_cli.data.labels import Track, label_at
from alphadrive_cli.data.publish import CONTACT_SHEET
from alphadrive_cli.data.records import SPLITS, Record, parse_record
from alphadrive_cli.errors import BadInput
from alphadrive_cli.stages import data_import
from alphadrive_cli.stages.data_import import default_import_name

RULES = LabelRules()


# --- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A source folder with two images, a garbage and a truncated one, and a valid image outside it."""
    folder = tmp_path / "src"
    (folder / "img").mkdir(parents=True)
    Image.new("RGB", (16, 16), "red").save(folder / "img" / "f.png")
    Image.new("RGB", (16, 16), "blue").save(folder / "img" / "g.png")
    (folder / "img" / "broken.png").write_bytes(b"not a png at all")
    (folder / "img" / "truncated.png").write_bytes((folder / "img" / "f.png").read_bytes()[:-20])
    Image.new("RGB", (16, 16), "green").save(tmp_path / "outside.png")
    return folder


def frame_row(i: int, **changes: Any) -> dict[str, Any]:
    """A good frame row; a change to None leaves the field out."""
    row = {
        "id": f"f{i}",
        "image": "img/f.png",
        "navigation": "go straight",
        "ego_speed_mps": 5.0,
        "speed_action": "KEEP",
        "path_action": "STRAIGHT",
        "episode": f"e{i // 3}",
        **changes,
    }
    return {key: value for key, value in row.items() if value is not None}


def write_jsonl(path: Path, rows: list[dict[str, Any] | str]) -> Path:
    """One line per row: a dict as JSON, a string as it is."""
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A CSV with the union of the rows' keys as header; lists are joined with ';'."""
    header = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, header)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: ";".join(value) if isinstance(value, list) else value for key, value in row.items()})
    return path


def do_import(source: Path, root: Path | None = None, **config: Any) -> Artifact:
    root = root or source.parent.parent / "runs"
    return data_import.run(ImportConfig(**config), OutputSpec(root), source=source)


def records_of(artifact: Artifact) -> dict[str, list[Record]]:
    return {
        split: [
            parse_record(line, DEFAULT_VOCABULARY)
            for line in (artifact.path / f"{split}.jsonl").read_text().splitlines()
        ]
        for split in SPLITS
    }


def every_record(artifact: Artifact) -> list[Record]:
    return [record for records in records_of(artifact).values() for record in records]


def problem_lines(artifact: Artifact) -> list[tuple[int, str]]:
    return [(problem["line"], problem["reason"]) for problem in artifact.manifest["problems"]]


# --- frames ---------------------------------------------------------------------------------------


def test_frames_jsonl_import_builds_a_verified_artifact(src: Path, tmp_path: Path) -> None:
    rows = [frame_row(i) for i in range(9)]
    rows[3]["images"] = ["img/f.png", "img/g.png"]
    del rows[3]["image"]
    artifact = do_import(write_jsonl(src / "frames.jsonl", rows))

    opened = open_artifact(artifact.path, "data")  # verifies every file's sha256
    assert artifact.name == "frames" and opened.manifest["counts"]["frames"] == 9
    records = {record.id: record for record in every_record(artifact)}
    assert sorted(records) == [f"f{i}" for i in range(9)]
    outputs = opened.manifest["outputs"]
    for record in records.values():
        assert all(image.startswith("images/") and image in outputs for image in record.images)
    front, side = records["f3"].images
    assert (artifact.path / front).read_bytes() == (src / "img" / "f.png").read_bytes()
    assert (artifact.path / side).read_bytes() == (src / "img" / "g.png").read_bytes()
    assert records["f0"].source == {"origin": "import", "file": "frames.jsonl", "line": 1, "episode": "e0"}
    assert CONTACT_SHEET in outputs and (artifact.path / CONTACT_SHEET).is_file()
    assert opened.manifest["skipped"] == {} and opened.manifest["problems"] == []
    for split in SPLITS:
        assert str(tmp_path) not in (artifact.path / f"{split}.jsonl").read_text()


def test_csv_import_reads_the_same_frames_as_jsonl(src: Path) -> None:
    rows = [frame_row(i) for i in range(6)]
    rows[2]["images"] = ["img/f.png", "img/g.png"]
    from_jsonl = {r.id: r for r in every_record(do_import(write_jsonl(src / "frames.jsonl", rows)))}
    from_csv = {r.id: r for r in every_record(do_import(write_csv(src / "frames.csv", rows)))}

    assert from_csv.keys() == from_jsonl.keys()
    for record_id, record in from_csv.items():
        assert record.model_dump(exclude={"source"}) == from_jsonl[record_id].model_dump(exclude={"source"})
        assert record.source["line"] == from_jsonl[record_id].source["line"] + 1  # the header is line 1
        assert record.source["file"] == "frames.csv"
    assert len(from_csv["f2"].images) == 2


BAD_ROWS: list[tuple[str, dict[str, Any] | str, str]] = [
    ("broken JSON", '{"id": "bad", "image": ', UNPARSABLE),
    ("not an object", "[1, 2, 3]", UNPARSABLE),
    ("no navigation", frame_row(9, id="bad", navigation=None), MISSING_FIELD),
    ("no image", frame_row(9, id="bad", image=None), MISSING_FIELD),
    ("unknown speed action", frame_row(9, id="bad", speed_action="FLY"), UNKNOWN_ACTION),
    ("unknown path action", frame_row(9, id="bad", path_action="HOVER"), UNKNOWN_ACTION),
    ("missing image file", frame_row(9, id="bad", image="img/nope.png"), MISSING_IMAGE),
    ("unreadable image", frame_row(9, id="bad", image="img/broken.png"), UNREADABLE_IMAGE),
    ("truncated image", frame_row(9, id="bad", image="img/truncated.png"), UNREADABLE_IMAGE),
    ("outside the root", frame_row(9, id="bad", image="../outside.png"), OUTSIDE_ROOT),
    ("NUL in image path", frame_row(9, id="bad", image="img/f\u0000.png"), INVALID_VALUE),
    ("duplicate id", frame_row(9, id="f0"), DUPLICATE_ID),
    ("negative speed", frame_row(9, id="bad", ego_speed_mps=-0.5), NEGATIVE_SPEED),
    ("text speed", frame_row(9, id="bad", ego_speed_mps="fast"), NON_NUMERIC),
    ("NaN speed", frame_row(9, id="bad", ego_speed_mps="nan"), NON_NUMERIC),
    ("unknown split", frame_row(9, id="bad", split="holdout"), INVALID_VALUE),
]


@pytest.mark.parametrize(("bad", "reason"), [case[1:] for case in BAD_ROWS], ids=[case[0] for case in BAD_ROWS])
def test_a_bad_row_is_skipped_counted_and_reported_with_its_line(
    src: Path, bad: dict[str, Any] | str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_jsonl(src / "frames.jsonl", [frame_row(0), frame_row(1), "", bad, frame_row(3)])
    artifact = do_import(source)

    assert sorted(record.id for record in every_record(artifact)) == ["f0", "f1", "f3"]
    assert all(record.source["line"] != 4 for record in every_record(artifact))
    assert artifact.manifest["skipped"] == {reason: 1}
    assert artifact.manifest["counts"]["skipped"] == 1
    assert problem_lines(artifact) == [(4, reason)]
    assert reason in capsys.readouterr().err


def test_csv_problems_carry_the_line_where_the_row_starts(src: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = src / "frames.csv"
    source.write_text(
        "id,image,navigation,ego_speed_mps,speed_action,path_action\n"
        "f0,img/f.png,go straight,5,KEEP,STRAIGHT\n"
        "f1,img/f.png,go straight,5,KEEP,STRAIGHT,extra\n"
        "f2,img/f.png,go straight,fast,KEEP,STRAIGHT\n"
        'f3,img/f.png,"go straight\nthen left",5,KEEP,STRAIGHT\n'
        "\n"
        "f4,,go straight,5,KEEP,STRAIGHT\n"
    )
    artifact = do_import(source)

    records = {record.id: record for record in every_record(artifact)}
    assert sorted(records) == ["f0", "f3"] and records["f3"].source["line"] == 5
    assert problem_lines(artifact) == [(3, UNPARSABLE), (4, NON_NUMERIC), (8, MISSING_FIELD)]
    err = capsys.readouterr().err
    assert "skipped 1 row(s): non-numeric value" in err and "│    8 │" in err


def test_the_manifest_keeps_the_first_fifty_problems_and_counts_all(src: Path) -> None:
    rows = [frame_row(0)] + [frame_row(i, ego_speed_mps=-1) for i in range(1, 61)]
    artifact = do_import(write_jsonl(src / "frames.jsonl", rows))
    assert artifact.manifest["skipped"] == {NEGATIVE_SPEED: 60}
    assert [line for line, _ in problem_lines(artifact)] == list(range(2, 52))


def test_strict_stops_at_the_first_bad_row_naming_file_and_line(src: Path, tmp_path: Path) -> None:
    rows = [frame_row(0), frame_row(1), frame_row(2, ego_speed_mps=-1), frame_row(3, image="img/nope.png")]
    with pytest.raises(BadInput, match=r"frames\.jsonl line 3: negative speed"):
        do_import(write_jsonl(src / "frames.jsonl", rows), strict=True)
    assert not list((tmp_path / "runs").glob("data/frames-v*"))


def test_image_paths_must_stay_inside_the_images_root(src: Path, tmp_path: Path) -> None:
    (src / "img" / "escape.png").symlink_to(tmp_path / "outside.png")
    rows = [
        frame_row(0, image="f.png"),
        frame_row(1, image=str(src / "img" / "g.png")),
        frame_row(2, image=str(tmp_path / "outside.png")),
        frame_row(3, image="../img/../frames.jsonl"),
        frame_row(4, image="escape.png"),
    ]
    artifact = do_import(write_jsonl(src / "frames.jsonl", rows), images_root=str(src / "img"))

    records = every_record(artifact)
    assert sorted(record.id for record in records) == ["f0", "f1"]
    assert all(not Path(image).is_absolute() for record in records for image in record.images)
    assert problem_lines(artifact) == [(3, OUTSIDE_ROOT), (4, OUTSIDE_ROOT), (5, OUTSIDE_ROOT)]


def test_a_file_without_a_good_row_is_bad_input(src: Path) -> None:
    with pytest.raises(BadInput, match=r"no record of .*frames\.jsonl could be imported \(negative speed: 2\)"):
        do_import(write_jsonl(src / "frames.jsonl", [frame_row(0, ego_speed_mps=-1), frame_row(1, ego_speed_mps=-2)]))
    with pytest.raises(BadInput, match="the file has no rows"):
        do_import(write_jsonl(src / "empty.jsonl", []))


def test_frames_without_labels_are_pointed_to_predict(src: Path) -> None:
    rows = [frame_row(0, speed_action=None, path_action=None), frame_row(1, path_action=None)]
    with pytest.raises(
        BadInput, match=r"\(missing field: 2\); to plan on frames without labels, use alphadrive predict"
    ):
        do_import(write_jsonl(src / "unlabelled.jsonl", rows))


def test_only_jsonl_and_csv_are_accepted(src: Path) -> None:
    (src / "frames.parquet").write_text("x")
    with pytest.raises(BadInput, match=r"\.jsonl or \.csv"):
        do_import(src / "frames.parquet")


@pytest.mark.parametrize(
    ("file_name", "name"),
    [
        ("frames.jsonl", "frames"),
        ("my drive (2).csv", "my-drive-2"),
        ("night-v3.jsonl", "night_v3"),
        ("__.csv", "import"),
    ],
)
def test_the_default_name_is_the_stem_made_valid(file_name: str, name: str) -> None:
    assert default_import_name(Path(file_name)) == name


@pytest.mark.parametrize("key", ["episode", "scene"])
def test_frames_of_an_episode_share_a_split_and_explicit_splits_win(src: Path, key: str) -> None:
    rows = [frame_row(i, **{"episode": None, key: f"e{i // 3}"}) for i in range(180)]
    rows += [frame_row(180 + i, episode=None, split="val") for i in range(3)]
    artifact = do_import(write_jsonl(src / "frames.jsonl", rows))

    split_of_episode: dict[str, set[str]] = {}
    for split, records in records_of(artifact).items():
        assert records, f"no {split} records"
        for record in records:
            if "split" in record.source:
                assert split == "val"
            else:
                split_of_episode.setdefault(record.source[key], set()).add(split)
    assert len(split_of_episode) == 60 and all(len(splits) == 1 for splits in split_of_episode.values())


def test_the_same_input_and_seed_give_byte_identical_splits(src: Path, tmp_path: Path) -> None:
    source = write_jsonl(src / "frames.jsonl", [frame_row(i) for i in range(60)])
    first, second = do_import(source, tmp_path / "a"), do_import(source, tmp_path / "b")
    reseeded = do_import(source, tmp_path / "c", seed=1)

    def split_bytes(artifact: Artifact) -> list[bytes]:
        return [(artifact.path / f"{split}.jsonl").read_bytes() for split in SPLITS]

    assert split_bytes(first) == split_bytes(second)
    assert first.content_hash == second.content_hash
    assert split_bytes(reseeded) != split_bytes(first)


@pytest.mark.parametrize(
    ("fractions", "allowed"),
    [
        ({"train": 1, "val": 0, "test": 0}, {"train"}),
        ({"train": 0, "val": 0, "test": 1}, {"test"}),
        ({"train": 0.5, "val": 0.5, "test": 0}, {"train", "val"}),
    ],
)
def test_assign_split_follows_the_fractions(fractions: dict[str, float], allowed: set[str]) -> None:
    chosen = {assign_split(f"key{i}", 0, SplitFractions(**fractions)) for i in range(200)}
    assert chosen == allowed


# --- ego poses ------------------------------------------------------------------------------------

STEP_S = 0.5


def times(end_s: float) -> np.ndarray:
    return np.arange(0.0, end_s + STEP_S / 2, STEP_S)


def straight() -> tuple[np.ndarray, ...]:
    """10 m/s along x for 6 s."""
    t = times(6)
    return t, 10 * t, np.zeros_like(t), np.zeros_like(t)


def braking() -> tuple[np.ndarray, ...]:
    """10 m/s for 2 s, then -2.5 m/s² to a stop at t = 6 s, then standing until 9 s."""
    t = times(9)
    braking_time = np.clip(t - 2, 0, 4)
    return t, 10 * np.minimum(t, 2) + 10 * braking_time - 1.25 * braking_time**2, np.zeros_like(t), np.zeros_like(t)


def quarter_turn(sign: int) -> tuple[np.ndarray, ...]:
    """5 m/s: a 90° arc over 3 s (left for sign 1, right for -1), then straight on for 3 s."""
    t = times(6)
    rate = (math.pi / 2) / 3
    arc = np.minimum(t, 3)
    yaw = rate * arc
    x, y = (5 / rate) * np.sin(yaw), (5 / rate) * (1 - np.cos(yaw)) + 5 * (t - arc)
    return t, x, sign * y, sign * yaw


def lane_change_left() -> tuple[np.ndarray, ...]:
    """10 m/s along x, drifting 3.5 m to the left over 3 s (smoothstep), heading unchanged."""
    t = times(6)
    u = np.clip(t / 3, 0, 1)
    return t, 10 * t, 3.5 * (3 * u**2 - 2 * u**3), np.zeros_like(t)


def pose_rows(scene: str, motion: tuple[np.ndarray, ...]) -> list[dict[str, Any]]:
    t, x, y, yaw = motion
    return [
        {
            "scene": scene,
            "timestamp": float(t[i]),
            "x": float(x[i]),
            "y": float(y[i]),
            "yaw": float(yaw[i]),
            "image": "img/f.png",
        }
        for i in range(len(t))
    ]


def labelled(artifact: Artifact, scene: str) -> list[Record]:
    """The records of a scene in time order."""
    return sorted(
        (r for r in every_record(artifact) if r.source["scene"] == scene), key=lambda r: r.source["timestamp"]
    )


def test_poses_at_constant_speed_straight_ahead_keep_straight(src: Path) -> None:
    artifact = do_import(write_jsonl(src / "poses.jsonl", pose_rows("drive", straight())), kind="poses")

    records = labelled(artifact, "drive")
    assert [record.source["timestamp"] for record in records] == [0, 0.5, 1, 1.5, 2, 2.5, 3]
    assert {(r.speed_action, r.path_action, r.navigation) for r in records} == {("KEEP", "STRAIGHT", "go straight")}
    assert all(record.ego_speed_mps == pytest.approx(10) for record in records)
    assert records[0].scene == {"derived_from": "poses"}
    assert artifact.manifest["skipped"] == {BEYOND_HORIZON: 6} and artifact.manifest["problems"] == []


def test_poses_braking_to_a_stop_decelerate_then_stop(src: Path) -> None:
    artifact = do_import(write_jsonl(src / "poses.jsonl", pose_rows("brake", braking())), kind="poses")

    records = labelled(artifact, "brake")
    assert [record.speed_action for record in records] == ["DECELERATE"] * 6 + ["STOP"] * 7
    assert {record.path_action for record in records} == {"STRAIGHT"}
    assert [records[0].ego_speed_mps, records[6].ego_speed_mps] == pytest.approx([10, 7.5])  # at t = 0 and 3 s


@pytest.mark.parametrize(
    ("sign", "turn", "navigation"), [(1, "LEFT_TURN", "turn left ahead"), (-1, "RIGHT_TURN", "turn right ahead")]
)
def test_poses_through_a_quarter_turn_are_a_turn(src: Path, sign: int, turn: str, navigation: str) -> None:
    artifact = do_import(write_jsonl(src / "poses.jsonl", pose_rows("bend", quarter_turn(sign))), kind="poses")

    records = labelled(artifact, "bend")
    assert (records[0].speed_action, records[0].path_action, records[0].navigation) == ("KEEP", turn, navigation)
    assert (records[-1].speed_action, records[-1].path_action, records[-1].navigation) == (
        "KEEP",
        "STRAIGHT",
        "go straight",
    )


def test_poses_drifting_one_lane_left_are_a_left_lane_change(src: Path) -> None:
    artifact = do_import(write_jsonl(src / "poses.jsonl", pose_rows("merge", lane_change_left())), kind="poses")

    first, *_, last = labelled(artifact, "merge")
    assert (first.speed_action, first.path_action, first.navigation) == ("KEEP", "LEFT_CHANGE", "go straight")
    assert last.path_action == "STRAIGHT"


def test_pose_csv_with_microseconds_in_any_order_groups_scenes(src: Path) -> None:
    rows = pose_rows("drive", straight()) + pose_rows("brake", braking())
    for row in rows:
        row["timestamp_us"] = round(row.pop("timestamp") * 1e6)
    rows[0]["navigation"] = "take the second exit"
    duplicate = {**rows[1]}  # the same scene and time again
    rows.append(duplicate)
    random.Random(0).shuffle(rows)
    artifact = do_import(write_csv(src / "poses.csv", rows), kind="poses")

    drive, brake = labelled(artifact, "drive"), labelled(artifact, "brake")
    assert [(r.speed_action, r.path_action) for r in drive] == [("KEEP", "STRAIGHT")] * 7
    assert [r.speed_action for r in brake] == ["DECELERATE"] * 6 + ["STOP"] * 7
    assert drive[0].navigation == "take the second exit"
    duplicate_line = max(index for index, row in enumerate(rows, start=2) if row == duplicate)  # the later one
    assert artifact.manifest["skipped"] == {BEYOND_HORIZON: 12, DUPLICATE_TIME: 1}
    assert problem_lines(artifact) == [(duplicate_line, DUPLICATE_TIME)]
    splits = records_of(artifact)
    for scene in ("drive", "brake"):
        assert len({split for split, records in splits.items() for r in records if r.source["scene"] == scene}) == 1


# --- labels.label_at on hand-computed tracks ------------------------------------------------------


def track(t: list[float], x: list[float], y: list[float], yaw: list[float], speed: list[float]) -> Track:
    return Track(*(np.array(values, dtype=float) for values in (t, x, y, yaw, speed)))


LABEL_CASES = [
    ("steady", track([0, 3], [0, 30], [0, 0], [0, 0], [10, 10]), ("KEEP", "STRAIGHT")),
    ("speeding up", track([0, 3], [0, 33], [0, 0], [0, 0], [10, 11.5]), ("ACCELERATE", "STRAIGHT")),
    ("slight slow-down", track([0, 3], [0, 29], [0, 0], [0, 0], [10, 9.2]), ("KEEP", "STRAIGHT")),
    ("slowing down", track([0, 3], [0, 28], [0, 0], [0, 0], [10, 8.5]), ("DECELERATE", "STRAIGHT")),
    ("stopping", track([0, 3], [0, 15], [0, 0], [0, 0], [10, 0.4]), ("STOP", "STRAIGHT")),
    ("35° left", track([0, 3], [0, 25], [0, 8], [0, math.radians(35)], [10, 10]), ("KEEP", "LEFT_TURN")),
    ("35° right", track([0, 3], [0, 25], [0, -8], [0, -math.radians(35)], [10, 10]), ("KEEP", "RIGHT_TURN")),
    ("25° bend, 1 m aside", track([0, 3], [0, 30], [0, 1], [0, math.radians(25)], [10, 10]), ("KEEP", "STRAIGHT")),
    ("2.5 m right", track([0, 3], [0, 30], [0, -2.5], [0, 0], [10, 10]), ("KEEP", "RIGHT_CHANGE")),
    (
        "heading north, 2.5 m west",
        track([0, 3], [0, -2.5], [0, 30], [math.pi / 2] * 2, [10, 10]),
        ("KEEP", "LEFT_CHANGE"),
    ),
    ("yaw across ±π", track([0, 3], [0, -30], [0, 0], [3.1, -3.1], [10, 10]), ("KEEP", "STRAIGHT")),
    (
        "interpolated horizon",
        track([0, 2, 4], [0, 20, 34], [0, 0, 0], [0, 0, 0], [10, 10, 4]),
        ("DECELERATE", "STRAIGHT"),
    ),
]


RULE_OF_PATH = {
    "STRAIGHT": "poses.straight",
    "LEFT_CHANGE": "poses.lateral_offset",
    "RIGHT_CHANGE": "poses.lateral_offset",
    "LEFT_TURN": "poses.heading_change",
    "RIGHT_TURN": "poses.heading_change",
}


@pytest.mark.parametrize(
    ("motion", "expected"), [case[1:] for case in LABEL_CASES], ids=[case[0] for case in LABEL_CASES]
)
def test_label_at_on_hand_computed_tracks(motion: Track, expected: tuple[str, str]) -> None:
    label = label_at(motion, 0, RULES)
    assert (label.speed, label.path) == expected
    assert label.source == {"speed": "poses.speed_change", "path": RULE_OF_PATH[label.path]}


def test_label_at_is_none_once_the_horizon_passes_the_end() -> None:
    motion = track([0, 3, 6], [0, 30, 60], [0, 0, 0], [0, 0, 0], [10, 10, 10])
    labels = [label_at(motion, index, RULES) for index in range(3)]
    assert [(label.speed, label.path) for label in labels[:2]] == [("KEEP", "STRAIGHT"), ("KEEP", "STRAIGHT")]
    assert labels[2] is None
    assert label_at(track([0, 2.9], [0, 29], [0, 0], [0, 0], [10, 10]), 0, RULES) is None
