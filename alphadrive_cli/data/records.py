"""The data set schema (docs/spec.md#data-schema): one JSONL file per split, images inside the artifact."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from alphadrive_cli.actions import DEFAULT_VOCABULARY, ActionVocabulary
from alphadrive_cli.artifacts.store import Artifact, canonical_hash
from alphadrive_cli.errors import BadInput

SPLITS = ("train", "val", "test")
IMAGE_DIR = "images"
MAX_SPEED_MPS = 100.0  # 360 km/h: a larger ego speed is a unit mistake or garbage
MAX_TEXT = 1000  # characters of a navigation instruction
ADDED_BY_LATER_STAGES = {"reasoning", "teacher", "plans"}  # distill's traces, data judge's verdicts


class JudgedPlan(BaseModel):
    """One candidate plan held for the label horizon from the frame's simulator state (``data/sim/plan_judge.py``)."""

    model_config = ConfigDict(extra="forbid")

    speed: str
    path: str
    collision: bool
    off_road: bool
    progress_m: float = Field(allow_inf_nan=False)
    min_ttc_s: float | None = Field(None, ge=0, allow_inf_nan=False, description="None: never closing on a lead")
    peak_deceleration_mps2: float = Field(allow_inf_nan=False)
    realised_speed: str = Field(description="the speed action the rollout earns by the labelling rule")
    realised_path: str = Field(description="the path action the rollout earns by the labelling rule")
    acceptable: bool


class Record(BaseModel):
    """One labelled frame. ``reasoning`` and ``teacher`` are added by ``distill``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=256)
    images: list[str] = Field(
        min_length=1, max_length=16, description="paths relative to the artifact, front camera first"
    )
    navigation: str = Field(min_length=1, max_length=MAX_TEXT)
    ego_speed_mps: float = Field(ge=0, le=MAX_SPEED_MPS, allow_inf_nan=False)
    speed_action: str
    path_action: str
    label_source: dict[str, str] | None = Field(
        None,
        description="the rule that produced each label, e.g. {'speed': 'sim.expert_speed', 'path': 'sim.junction'}",
    )
    scene: dict[str, Any] | None = None
    plans: list[JudgedPlan] | None = Field(None, description="every candidate plan's simulated outcome (data judge)")
    source: dict[str, Any]
    reasoning: str | None = None
    teacher: dict[str, Any] | None = None

    @field_validator("images")
    @classmethod
    def _relative_paths(cls, images: list[str]) -> list[str]:
        for image in images:
            path = Path(image)
            if path.is_absolute() or ".." in path.parts:
                raise ValueError(f"image path {image!r} leaves the artifact directory")
        return images

    def to_json(self) -> str:
        """One JSONL line (fields in schema order, unset optional fields left out)."""
        return json.dumps(self.model_dump(exclude_none=True), ensure_ascii=False)

    def acceptable_plans(self) -> frozenset[tuple[str, str]]:
        """The (speed, path) plans the simulator judged acceptable at this frame (none if it was not judged)."""
        return frozenset((plan.speed, plan.path) for plan in self.plans or () if plan.acceptable)


def check_labels(record: Record, vocabulary: ActionVocabulary) -> None:
    """Raise ValueError if a label is not in the data set's vocabulary."""
    if record.speed_action not in vocabulary.speed:
        raise ValueError(
            f"unknown speed action {record.speed_action!r} (expected one of {', '.join(vocabulary.speed)})"
        )
    if record.path_action not in vocabulary.path:
        raise ValueError(f"unknown path action {record.path_action!r} (expected one of {', '.join(vocabulary.path)})")


def describe_error(error: ValidationError | ValueError) -> str:
    """One short line for a record's first validation problem."""
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}" if where else first["msg"]
    return str(error)


def parse_record(line: str, vocabulary: ActionVocabulary) -> Record:
    """Parse and check one JSONL line; raise ValueError with a one-line reason."""
    try:
        record = Record.model_validate_json(line)
    except ValidationError as exc:
        raise ValueError(describe_error(exc)) from None
    check_labels(record, vocabulary)
    return record


def write_split(path: Path, records: Iterable[Record]) -> int:
    """Write records as JSONL; returns how many."""
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(record.to_json() + "\n")
            count += 1
    return count


def iter_split(artifact: Artifact, split: str, vocabulary: ActionVocabulary) -> Iterator[Record]:
    """Records of one split of a data artifact; a bad line is BadInput naming file and line."""
    path = artifact.path / f"{split}.jsonl"
    if not path.is_file():
        raise BadInput(f"{artifact.path} has no {split} split ({path.name} missing)")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = parse_record(line, vocabulary)
            except ValueError as exc:
                raise BadInput(f"{path} line {number}: {exc}") from None
            for image in record.images:
                if not (artifact.path / image).is_file():
                    raise BadInput(f"{path} line {number}: image {image} is missing")
            yield record


def frames_hash(artifact: Artifact, records: Iterable[Record]) -> str:
    """A hash of exactly these frames of ``artifact``: each record as labelled (what later stages add left out) with
    its images' file hashes, in id order. Evals of one split of two data sets that differ elsewhere (another split,
    traces or verdicts added) share it, so `eval compare` pairs them; a changed label or pixel of theirs changes it."""
    outputs = artifact.manifest["outputs"]
    return canonical_hash(
        [
            [
                record.model_dump(mode="json", exclude=ADDED_BY_LATER_STAGES),
                [outputs.get(image) for image in record.images],
            ]
            for record in sorted(records, key=lambda record: record.id)
        ]
    )


def dataset_vocabulary(artifact: Artifact) -> ActionVocabulary:
    """The action vocabulary a data artifact was labelled with (the default if it records none)."""
    recorded = artifact.manifest.get("vocabulary")
    return ActionVocabulary.from_dict(recorded) if recorded else DEFAULT_VOCABULARY
