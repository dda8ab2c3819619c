"""The user's own frames or ego poses (JSONL or CSV), checked row by row and turned into records.

Every row is checked on its own; a bad one raises :class:`BadRow` with one of the fixed reasons
below, and :class:`ProblemLog` counts it with its line number (or, in strict mode, stops the import).
Pose rows are grouped by scene and labelled with ``labels.label_at``: rules on the ego's own motion.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import math
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

import numpy as np
from PIL import Image
from pydantic import ValidationError

from alphadrive_cli.actions import ActionVocabulary
from alphadrive_cli.config.schemas import LabelRules, SplitFractions
from alphadrive_cli.data.labels import Track, label_at
from alphadrive_cli.data.records import (
    IMAGE_DIR,
    MAX_SPEED_MPS,
    MAX_TEXT,
    SPLITS,
    Record,
    check_labels,
    describe_error,
)
from alphadrive_cli.errors import BadInput, brief

UNPARSABLE = "unparsable row"
MISSING_FIELD = "missing field"
INVALID_VALUE = "invalid value"
NON_NUMERIC = "non-numeric value"
NEGATIVE_SPEED = "negative speed"
UNKNOWN_ACTION = "unknown action"
OUTSIDE_ROOT = "path outside the root"
MISSING_IMAGE = "missing image file"
UNREADABLE_IMAGE = "unreadable image"
IMAGE_TOO_LARGE = "image too large"
DUPLICATE_ID = "duplicate id"
DUPLICATE_TIME = "duplicate timestamp"
BEYOND_HORIZON = "horizon beyond the end of the scene"

GIVEN_LABEL = "import.given"  # label_source of a label read from the user's file

PROBLEMS_KEPT = 50
MAX_LINE_BYTES = 1 << 20  # a longer line is a bad row: no frame needs a megabyte of text
FRAME_FIELDS = frozenset({"id", "image", "images", "navigation", "ego_speed_mps", "speed_action", "path_action"})
POSE_FIELDS = frozenset({"id", "image", "images", "navigation", "scene", "timestamp", "timestamp_us", "x", "y", "yaw"})
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_STEM = 80


class BadRow(ValueError):
    """A row that cannot become a record; ``reason`` is one of this module's fixed reasons."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Row:
    """One data line of the source file: its non-empty fields, or why it could not be parsed."""

    line: int
    fields: dict[str, Any]
    error: str | None = None

    def checked(self) -> dict[str, Any]:
        """The fields; BadRow if the line could not be parsed."""
        if self.error is not None:
            raise BadRow(UNPARSABLE, self.error)
        return self.fields


@dataclass
class ProblemLog:
    """Skipped rows counted by reason, with line numbers; in strict mode the first one is BadInput."""

    file: str
    strict: bool
    skipped: Counter[str] = field(default_factory=Counter)
    problems: list[dict[str, Any]] = field(default_factory=list)

    def add(self, line: int, reason: str, detail: str) -> None:
        """Record a bad row (raise BadInput naming file and line in strict mode)."""
        if self.strict:
            raise BadInput(f"{self.file} line {line}: {reason}: {detail}")
        self.skipped[reason] += 1
        self.problems.append({"line": line, "reason": reason, "detail": detail})

    def drop(self, reason: str) -> None:
        """Count a row left out by design (nothing wrong with it, so never fatal)."""
        self.skipped[reason] += 1

    def ordered(self) -> list[dict[str, Any]]:
        """The problems in line order."""
        return sorted(self.problems, key=lambda problem: problem["line"])

    def manifest_entry(self) -> dict[str, Any]:
        """``{"skipped": {reason: count}, "problems": [the first 50 by line]}``."""
        return {"skipped": dict(sorted(self.skipped.items())), "problems": self.ordered()[:PROBLEMS_KEPT]}


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields without the empty ones (null, blank text): an empty value counts as absent."""
    return {
        key.strip(): value
        for key, value in fields.items()
        if value is not None and not (isinstance(value, str) and not value.strip())
    }


@dataclass
class _Lines:
    """A binary file's lines as text; a line that is not UTF-8 or too long reads as an empty line and is
    remembered in ``bad`` (line number -> why), so one bad line costs that row only."""

    handle: IO[bytes]
    bad: dict[int, str] = field(default_factory=dict)

    def __iter__(self) -> Iterator[str]:
        for number, raw in enumerate(self.handle, start=1):
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if len(raw) > MAX_LINE_BYTES:
                self.bad[number] = f"a line of {len(raw):,} bytes (at most {MAX_LINE_BYTES:,})"
                yield "\n"
                continue
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.bad[number] = f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
                yield "\n"

    def problem(self, first: int, last: int) -> str | None:
        """Why a row spanning lines ``first`` to ``last`` cannot be read, if one of them is bad."""
        return next((self.bad[line] for line in range(first, last + 1) if line in self.bad), None)


def _jsonl_rows(lines: _Lines) -> Iterator[Row]:
    for line, text in enumerate(lines, start=1):
        problem = lines.problem(line, line)
        if problem is not None:
            yield Row(line, {}, problem)
            continue
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Row(line, {}, f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        if isinstance(value, dict):
            yield Row(line, _present(value))
        else:
            yield Row(line, {}, f"expected a JSON object, got {type(value).__name__}")


def _csv_rows(lines: _Lines) -> Iterator[Row]:
    reader = csv.reader(lines)
    header = [name.strip() for name in next(reader, [])]
    last = reader.line_num
    if lines.problem(1, last):
        raise BadRow(UNPARSABLE, f"the header: {lines.problem(1, last)}")
    while True:
        start = last + 1  # a quoted field may span lines: report where the row starts
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            last = reader.line_num
            yield Row(start, {}, f"invalid CSV: {exc}")
            continue
        last = reader.line_num
        problem = lines.problem(start, last)
        if problem is not None:
            yield Row(start, {}, problem)
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            yield Row(start, {}, f"{len(cells)} fields where the header has {len(header)}")
        else:
            yield Row(start, _present(dict(zip(header, cells, strict=False))))


_READERS: dict[str, Callable[[_Lines], Iterator[Row]]] = {".jsonl": _jsonl_rows, ".csv": _csv_rows}
SUPPORTED_EXTENSIONS = tuple(_READERS)


def check_source(path: Path) -> None:
    """BadInput unless ``path`` is an existing file with a supported extension."""
    if path.suffix.lower() not in _READERS:
        raise BadInput(f"cannot import {path}: the source must be a {' or '.join(SUPPORTED_EXTENSIONS)} file")
    if not path.is_file():
        raise BadInput(f"no such file: {path}")


def read_rows(path: Path) -> Iterator[Row]:
    """The rows of a ``.jsonl`` file (line = physical line) or ``.csv`` file (the header is line 1); a line that
    is not UTF-8 (or longer than 1 MiB) is a bad row, an unreadable CSV header is BadInput."""
    reader = _READERS[path.suffix.lower()]
    try:
        with path.open("rb") as handle:
            yield from reader(_Lines(handle))
    except BadRow as exc:
        raise BadInput(f"{path} line 1: {exc}") from None
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class ImageRoot:
    """The folder that image paths are relative to (resolved); no image may lie outside it."""

    path: Path
    max_pixels: int = 40_000_000

    def resolve(self, raw: str) -> Path:
        """The image file ``raw`` names; BadRow if it leaves the root, is missing, has more than ``max_pixels``
        or does not decode (every pixel is decoded: a valid header can hide broken image data)."""
        try:
            candidate = (self.path / raw).resolve()
        except (OSError, ValueError) as exc:  # e.g. a NUL byte or a symlink loop
            raise BadRow(INVALID_VALUE, f"image path {raw!r}: {exc}") from None
        if not candidate.is_relative_to(self.path):
            raise BadRow(OUTSIDE_ROOT, raw)
        if not candidate.is_file():
            raise BadRow(MISSING_IMAGE, raw)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(candidate) as image:
                    pixels = image.width * image.height
                    image.verify()  # the file's structure (chunks, checksums) ...
                if pixels <= self.max_pixels:
                    with Image.open(candidate) as image:
                        image.load()  # ... and its pixels: verify() never decodes them
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise BadRow(IMAGE_TOO_LARGE, f"{raw}: {exc}") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise BadRow(UNREADABLE_IMAGE, f"{raw}: {exc}") from None
        if pixels > self.max_pixels:
            raise BadRow(
                IMAGE_TOO_LARGE,
                f"{raw}: {pixels / 1e6:.1f} megapixels (at most {self.max_pixels / 1e6:g}; see max_image_megapixels)",
            )
        return candidate


@dataclass(frozen=True)
class Source:
    """The file being imported, where its images are, and the vocabulary its labels must use."""

    path: Path
    images: ImageRoot
    vocabulary: ActionVocabulary

    def record_id(self, fields: dict[str, Any], line: int) -> str:
        """The row's ``id``, or ``<stem>-<line>``."""
        return _text(fields, "id") if "id" in fields else f"{self.path.stem}-{line}"

    def image_files(self, fields: dict[str, Any]) -> tuple[Path, ...]:
        """The checked files of ``images`` (a list, or ``;``-separated text) or of ``image``."""
        names = fields["images"] if "images" in fields else [_required(fields, "image")]
        if isinstance(names, str):
            names = names.split(";")
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise BadRow(INVALID_VALUE, "images must be paths (a list, or text separated by ';')")
        names = [name.strip() for name in names if name.strip()]
        if not names:
            raise BadRow(MISSING_FIELD, "images")
        return tuple(self.images.resolve(name) for name in names)

    def provenance(self, line: int, fields: dict[str, Any], consumed: frozenset[str], **facts: Any) -> dict[str, Any]:
        """``source`` of a record: origin, file name, line, ``facts`` and the row's other columns."""
        base = {"origin": "import", "file": self.path.name, "line": line, **facts}
        return {**base, **{key: value for key, value in fields.items() if key not in consumed and key not in base}}


def _required(fields: dict[str, Any], name: str) -> Any:
    if name not in fields:
        raise BadRow(MISSING_FIELD, name)
    return fields[name]


def _text(fields: dict[str, Any], name: str) -> str:
    value = _required(fields, name)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadRow(INVALID_VALUE, f"{name} must be text, not {brief(value)}")
    return str(value).strip()


def _number(fields: dict[str, Any], name: str) -> float:
    value = _required(fields, name)
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise BadRow(NON_NUMERIC, f"{name} = {brief(value)}")
    return number


def _speed(fields: dict[str, Any]) -> float:
    speed = _number(fields, "ego_speed_mps")
    if speed < 0:
        raise BadRow(NEGATIVE_SPEED, f"ego_speed_mps = {speed:g}")
    if speed > MAX_SPEED_MPS:
        raise BadRow(INVALID_VALUE, f"ego_speed_mps = {speed:g} (at most {MAX_SPEED_MPS:g} m/s)")
    return speed


def _timestamp(fields: dict[str, Any]) -> float:
    """Seconds from ``timestamp``, or from ``timestamp_us`` (microseconds) when that is given instead."""
    if "timestamp" in fields or "timestamp_us" not in fields:
        return _number(fields, "timestamp")
    return _number(fields, "timestamp_us") / 1e6


def _split(fields: dict[str, Any]) -> str | None:
    """The explicit ``split`` of a row, if it has one."""
    if "split" not in fields:
        return None
    split = _text(fields, "split").lower()
    if split not in SPLITS:
        raise BadRow(INVALID_VALUE, f"split {split!r} (expected {', '.join(SPLITS)})")
    return split


def _record(**fields: Any) -> Record:
    """A Record from checked fields; BadRow when one is out of the schema's range (a 30 MB navigation)."""
    try:
        return Record(**fields)
    except ValidationError as exc:
        raise BadRow(INVALID_VALUE, describe_error(exc)) from None


def _key_text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else json.dumps(value, sort_keys=True)


def image_targets(record_id: str, files: Iterable[Path]) -> list[str]:
    """Where a record's images go in the artifact: ``images/<id made safe>_<n><ext>``, unique per id."""
    stem = _UNSAFE_CHARS.sub("_", record_id)[:_MAX_STEM]
    if stem != record_id:  # keep ids that only differ in unsafe characters apart
        stem += "-" + hashlib.sha256(record_id.encode()).hexdigest()[:8]
    return [f"{IMAGE_DIR}/{stem}_{n}{_UNSAFE_CHARS.sub('_', file.suffix.lower())}" for n, file in enumerate(files)]


def assign_split(key: str, seed: int, fractions: SplitFractions) -> str:
    """The split of a key: sha256 of ``"<seed>:<key>"`` read as a uniform number, bucketed by the fractions."""
    position = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") / 2**64
    chosen, edge = SPLITS[0], 0.0
    for split in SPLITS:
        share = getattr(fractions, split)
        if share > 0:
            chosen, edge = split, edge + share
            if position < edge:
                return split
    return chosen  # rounding left a sliver past the last edge: it belongs to the last split with a share


@dataclass(frozen=True)
class Imported:
    """A checked record, the files to copy to its ``images`` paths, and what decides its split."""

    record: Record
    files: tuple[Path, ...]
    split_key: str
    split: str | None

    @property
    def id(self) -> str:
        return self.record.id


@dataclass(frozen=True)
class Pose:
    """One checked row of an ego-pose file (time in seconds, position in metres, yaw in radians)."""

    line: int
    id: str
    scene: str
    t: float
    x: float
    y: float
    yaw: float
    files: tuple[Path, ...]
    navigation: str | None
    split: str | None
    source: dict[str, Any]


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


ItemT = TypeVar("ItemT", bound=_Identified)


def accept_rows(rows: Iterable[Row], parse: Callable[[Row], ItemT], log: ProblemLog) -> list[ItemT]:
    """Parse every row; bad rows and repeats of an accepted id go to ``log``."""
    items: list[ItemT] = []
    first_line: dict[str, int] = {}
    for row in rows:
        try:
            item = parse(row)
            if item.id in first_line:
                raise BadRow(DUPLICATE_ID, f"{item.id!r} (first on line {first_line[item.id]})")
        except BadRow as exc:
            log.add(row.line, exc.reason, exc.detail)
            continue
        first_line[item.id] = row.line
        items.append(item)
    return items


@dataclass(frozen=True)
class UnlabelledFrame:
    """A frame to plan on (``predict``): its checked image files (absolute), navigation and speed; no labels."""

    line: int
    id: str
    navigation: str
    ego_speed_mps: float
    files: tuple[Path, ...]

    @property
    def images(self) -> list[str]:
        """The image files as text (absolute: they resolve against any root)."""
        return [str(file) for file in self.files]

    @property
    def scene(self) -> None:
        """No scene facts: a frames file holds images, navigation and speed."""
        return None


def unlabelled_frame_from_row(row: Row, source: Source) -> UnlabelledFrame:
    """A frame without labels: ``image(s)``, ``navigation``, ``ego_speed_mps``; label columns, if any, are ignored."""
    fields = row.checked()
    navigation = _text(fields, "navigation")
    if not navigation or len(navigation) > MAX_TEXT:
        raise BadRow(INVALID_VALUE, f"navigation must be 1 to {MAX_TEXT} characters, not {len(navigation):,}")
    return UnlabelledFrame(
        row.line, source.record_id(fields, row.line), navigation, _speed(fields), source.image_files(fields)
    )


def frame_from_row(row: Row, source: Source) -> Imported:
    """A labelled frame: ``image(s)``, ``navigation``, ``ego_speed_mps``, ``speed_action``, ``path_action``."""
    fields = row.checked()
    record_id = source.record_id(fields, row.line)
    navigation = _text(fields, "navigation")
    speed = _speed(fields)
    speed_action, path_action = _text(fields, "speed_action"), _text(fields, "path_action")
    split = _split(fields)
    files = source.image_files(fields)
    record = _record(
        id=record_id,
        images=image_targets(record_id, files),
        navigation=navigation,
        ego_speed_mps=speed,
        speed_action=speed_action,
        path_action=path_action,
        label_source={"speed": GIVEN_LABEL, "path": GIVEN_LABEL},
        source=source.provenance(row.line, fields, FRAME_FIELDS),
    )
    try:
        check_labels(record, source.vocabulary)
    except ValueError as exc:
        raise BadRow(UNKNOWN_ACTION, str(exc)) from None
    key = fields.get("episode", fields.get("scene", record_id))
    return Imported(record, files, _key_text(key), split)


def pose_from_row(row: Row, source: Source) -> Pose:
    """An ego pose: ``scene``, ``timestamp`` (s) or ``timestamp_us``, ``x``, ``y``, ``yaw``, ``image``."""
    fields = row.checked()
    scene, time = _key_text(_required(fields, "scene")), _timestamp(fields)
    x, y, yaw = (_number(fields, name) for name in ("x", "y", "yaw"))
    return Pose(
        line=row.line,
        id=source.record_id(fields, row.line),
        scene=scene,
        t=time,
        x=x,
        y=y,
        yaw=yaw,
        navigation=_text(fields, "navigation") if "navigation" in fields else None,
        split=_split(fields),
        files=source.image_files(fields),
        source=source.provenance(row.line, fields, POSE_FIELDS, scene=scene, timestamp=time),
    )


def heading_navigation(change_deg: float, turn_deg: float) -> str:
    """Navigation from the heading change (degrees, left positive) between a frame and its scene's end."""
    if change_deg > turn_deg:
        return "turn left ahead"
    if change_deg < -turn_deg:
        return "turn right ahead"
    return "go straight"


def _distinct_times(poses: list[Pose], log: ProblemLog) -> list[Pose]:
    """A scene's poses in time order; a repeated timestamp is a bad row."""
    kept: list[Pose] = []
    for pose in sorted(poses, key=lambda pose: (pose.t, pose.line)):
        if kept and pose.t == kept[-1].t:
            log.add(pose.line, DUPLICATE_TIME, f"scene {pose.scene!r} t = {pose.t:g} s (also line {kept[-1].line})")
        else:
            kept.append(pose)
    return kept


def _label_scene(poses: list[Pose], rules: LabelRules, log: ProblemLog) -> Iterator[Imported]:
    track = Track.from_poses(*(np.array([getattr(pose, name) for pose in poses]) for name in ("t", "x", "y", "yaw")))
    heading = np.degrees(np.unwrap(track.yaw))
    for index, pose in enumerate(poses):
        labels = label_at(track, index, rules)
        if labels is None:
            log.drop(BEYOND_HORIZON)
            continue
        navigation = pose.navigation or heading_navigation(float(heading[-1] - heading[index]), rules.turn_deg)
        try:
            record = _record(
                id=pose.id,
                images=image_targets(pose.id, pose.files),
                navigation=navigation,
                ego_speed_mps=float(track.speed[index]),
                speed_action=labels.speed,
                path_action=labels.path,
                label_source=labels.source,
                scene={"derived_from": "poses"},
                source=pose.source,
            )
        except BadRow as exc:
            log.add(pose.line, exc.reason, exc.detail)
            continue
        yield Imported(record, pose.files, pose.scene, pose.split)


def import_frames(rows: Iterable[Row], source: Source, log: ProblemLog) -> list[Imported]:
    """The good frames of a labelled-frames file, in file order."""
    return accept_rows(rows, lambda row: frame_from_row(row, source), log)


def import_poses(rows: Iterable[Row], source: Source, rules: LabelRules, log: ProblemLog) -> list[Imported]:
    """Frames labelled from each scene's ego poses; frames whose horizon passes the scene's end are dropped."""
    scenes: dict[str, list[Pose]] = {}
    for pose in accept_rows(rows, lambda row: pose_from_row(row, source), log):
        scenes.setdefault(pose.scene, []).append(pose)
    return [frame for poses in scenes.values() for frame in _label_scene(_distinct_times(poses, log), rules, log)]
