"""``alphadrive export --format hf``: a data artifact handed to Hugging Face ``datasets`` and read back."""

from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
from PIL import Image

from alphadrive_cli.artifacts.store import open_artifact
from alphadrive_cli.data.records import SPLITS, dataset_vocabulary, iter_split
from tests.support.cli_checks import assert_one_line_error
from tests.support.labelled_data import judged, make_labelled_data

FRAMES = [("KEEP", "STRAIGHT"), ("ACCELERATE", "LEFT_CHANGE"), ("STOP", "STRAIGHT"), ("DECELERATE", "RIGHT_TURN")]


def test_an_exported_data_set_round_trips_through_datasets(cli, tmp_path: Path, runs: Path) -> None:
    data = make_labelled_data(
        tmp_path / "src",
        FRAMES,
        {"train": [0, 1], "val": [2], "test": [3]},
        reasoning="<think>clear road</think>",
        plans={0: [judged("KEEP", "STRAIGHT", True)]},
    )
    result = cli("export", data, "--format", "hf")
    assert result.exit_code == 0, result.stderr
    exported = Path(result.stdout.strip())
    assert exported.parent == runs / "export" and exported.name == "hand-hf-v1"
    open_artifact(exported, stage="export")  # a verified artifact with lineage to the data

    loaded = datasets.load_from_disk(str(exported))
    assert isinstance(loaded, datasets.DatasetDict) and list(loaded) == list(SPLITS)
    assert isinstance(loaded["train"].features["images"].feature, datasets.Image)
    source = open_artifact(data)
    for split in SPLITS:
        records = list(iter_split(source, split, dataset_vocabulary(source)))
        assert len(loaded[split]) == len(records)
        for row, record in zip(loaded[split], records, strict=True):
            assert (row["id"], row["navigation"], row["ego_speed_mps"]) == (
                record.id,
                record.navigation,
                record.ego_speed_mps,
            )
            assert (row["speed_action"], row["path_action"], row["reasoning"]) == (
                record.speed_action,
                record.path_action,
                record.reasoning,
            )
            assert json.loads(row["source"]) == record.source
            assert (json.loads(row["plans"]) if row["plans"] else None) == (
                [plan.model_dump() for plan in record.plans] if record.plans else None
            )
            [image] = row["images"]  # decoded by datasets into the same pixels
            with Image.open(source.path / record.images[0]) as original:
                assert image.tobytes() == original.convert(image.mode).tobytes()


def test_the_export_holds_the_image_bytes_itself_and_leaves_empty_splits_out(cli, tmp_path: Path) -> None:
    data = make_labelled_data(tmp_path / "src", FRAMES[:1], {"train": [0]})
    exported = Path(cli("export", data).stdout.strip())
    assert list(datasets.load_from_disk(str(exported))) == ["train"]
    assert open_artifact(exported).manifest["empty_splits"] == ["val", "test"]
    image_file = data / "images" / "0.png"
    expected = image_file.read_bytes()
    image_file.unlink()  # the export must not point at the data artifact's files
    [stored] = datasets.load_from_disk(str(exported))["train"].data.column("images")[0].as_py()  # undecoded
    assert stored["bytes"] == expected
    assert Image.open(io.BytesIO(stored["bytes"])).size == (32, 32)


def test_an_unknown_format_and_a_non_data_artifact_are_one_line_errors(cli, tmp_path: Path) -> None:
    data = make_labelled_data(tmp_path / "src", FRAMES[:1], {"train": [0]})
    assert_one_line_error(cli("export", data, "--format", "parquet"), 2, "unknown export format 'parquet'", "hf")
    assert_one_line_error(cli("export", tmp_path / "nowhere"), 2)
