"""``alphadrive export DATA --format hf``: a data artifact as a Hugging Face ``datasets`` data set.

The export is an ``export`` artifact whose files are ``DatasetDict.save_to_disk``'s (``dataset_dict.json`` and one
folder per split that has records) beside ``manifest.json``, so ``datasets.load_from_disk(path)`` reads it as it
is. Images are embedded as ``datasets.Image`` bytes: the export stands alone, without the data artifact it came from.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from alphadrive_cli.artifacts.store import Artifact, OutputSpec, open_artifact
from alphadrive_cli.data.records import SPLITS, Record, dataset_vocabulary, iter_split
from alphadrive_cli.errors import BadInput
from alphadrive_cli.ui import console, progress_bar

if TYPE_CHECKING:
    from pathlib import Path

    import datasets

FORMATS = ("hf",)
DATA_STAGES = ("data", "distill")
JSON_COLUMNS = ("label_source", "scene", "plans", "source", "teacher")  # nested, of varying shape: JSON text


def hf_features() -> datasets.Features:
    """The columns of an exported split: the record's fields, images as ``datasets.Image``, nested ones as JSON."""
    import datasets

    text = datasets.Value("string")
    return datasets.Features(
        {
            "id": text,
            "images": datasets.Sequence(datasets.Image()),
            "navigation": text,
            "ego_speed_mps": datasets.Value("float64"),
            "speed_action": text,
            "path_action": text,
            "reasoning": text,
            **{column: text for column in JSON_COLUMNS},
        }
    )


def _rows(data: Artifact, records: list[Record]) -> Iterator[dict[str, Any]]:
    for record in records:
        fields = record.model_dump()
        yield {
            **{key: fields[key] for key in ("id", "navigation", "ego_speed_mps", "speed_action", "path_action")},
            "images": [{"bytes": (data.path / image).read_bytes(), "path": image} for image in record.images],
            "reasoning": record.reasoning,
            **{column: None if fields[column] is None else json.dumps(fields[column]) for column in JSON_COLUMNS},
        }


def run(output: OutputSpec, *, data: Path, format: str) -> Artifact:
    """Write ``data``'s splits as a ``datasets.DatasetDict`` in an ``export`` artifact named ``<data>-<format>``."""
    if format not in FORMATS:
        raise BadInput(f"unknown export format {format!r}: choose one of {', '.join(FORMATS)}")
    import datasets

    source = open_artifact(data, stage=DATA_STAGES)
    vocabulary = dataset_vocabulary(source)
    by_split = {split: list(iter_split(source, split, vocabulary)) for split in SPLITS}
    if not any(by_split.values()):
        raise BadInput(f"{source.path} has no records to export")
    features = hf_features()
    settings = {"format": format}
    with output.begin("export", f"{source.name}-{format}", settings, inputs={"data": source}) as writer:
        datasets.disable_progress_bars()
        splits = datasets.DatasetDict()
        with progress_bar("records") as progress:
            task = progress.add_task("exporting", total=sum(map(len, by_split.values())), note="")
            for split, records in by_split.items():
                if records:  # datasets 5.2 saves an empty split that load_from_disk cannot read back
                    rows = list(_rows(source, records))
                    splits[split] = datasets.Dataset.from_list(rows, features=features)
                progress.update(task, advance=len(records), note=split)
            splits.save_to_disk(str(writer.dir))
        counts = {split: len(records) for split, records in by_split.items()}
        left_out = [split for split, records in by_split.items() if not records]
        console.print(
            f"exported {sum(counts.values())} records ({', '.join(f'{k} {v}' for k, v in counts.items() if v)})"
            + (f"; empty splits left out: {', '.join(left_out)}" if left_out else "")
        )
        return writer.publish(
            counts=counts,
            extra={
                "format": format,
                "empty_splits": left_out,
                "vocabulary": vocabulary.to_dict(),
                "load_with": "datasets.load_from_disk",
            },
        )
