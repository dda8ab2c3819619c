"""Versioned artifact directories: the pipeline's currency (docs/spec.md#artifact-layout).

Every stage writes ``<root>/<stage>/<name>-v<N>/``. The directory is built as a hidden sibling
``.<name>.partial`` and renamed into place only once ``manifest.json`` (config, lineage, file
hashes) is written, so an interrupted stage never leaves a directory that looks finished; the
partial directory is kept and a later run with the same identity (stage, config, inputs) resumes it.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from alphadrive_cli.artifacts.provenance import device_info, tool_info
from alphadrive_cli.artifacts.redaction import redact
from alphadrive_cli.errors import BadInput, brief

SCHEMA_VERSION = 2  # 2: the manifest is covered by its own hash (manifest_sha256)
MANIFEST_HASH_SINCE = 2
MANIFEST_HASH_KEY = "manifest_sha256"
MANIFEST_NAME = "manifest.json"
PARTIAL_SUFFIX = ".partial"
RUN_STATE_NAME = ".alphadrive-run.json"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
VERSIONED_NAME = re.compile(r"^(?P<name>.+)-v(?P<version>[1-9][0-9]*)$")
_HASH_CHUNK = 1 << 20


class ResumePolicy(str, Enum):
    """What to do with an unfinished run of the same stage and name."""

    AUTO = "auto"  # continue it if its identity matches, start fresh if there is none
    REQUIRE = "require"  # continue it; error if there is none
    RESTART = "restart"  # discard it and start fresh


def default_root() -> Path:
    """``$ALPHADRIVE_HOME`` if set, else ``./runs``."""
    return Path(os.environ.get("ALPHADRIVE_HOME", "runs"))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def partial_dir(stage_dir: Path, name: str) -> Path:
    """Where the unfinished run of ``name`` is built inside a stage directory."""
    return stage_dir / f".{name}{PARTIAL_SUFFIX}"


def canonical_hash(value: Any) -> str:
    """Hex sha256 of a JSON-serialisable value in canonical form (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def content_hash(outputs: Mapping[str, str]) -> str:
    """The identity of an artifact's content: a hash over its (file, sha256) pairs."""
    return canonical_hash(sorted(outputs.items()))


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """The hash that covers a manifest: every key but ``manifest_sha256`` itself, as JSON reads it back."""
    as_read = json.loads(
        json.dumps({key: value for key, value in manifest.items() if key != MANIFEST_HASH_KEY}, default=str)
    )
    return canonical_hash(as_read)


def validate_name(name: str) -> str:
    """Return ``name`` if it can name an artifact, else raise BadInput saying why."""
    if not _NAME_PATTERN.match(name) or VERSIONED_NAME.match(name):
        raise BadInput(
            f"invalid artifact name {name!r}: use letters, digits, '.', '_' or '-' (at most 100), "
            "starting with a letter or digit and not ending in -v<N>"
        )
    return name


def write_json_atomically(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` whole or not at all (a synced temporary sibling renamed into place)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as handle:
        json.dump(value, handle, indent=2, sort_keys=False, default=str)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Artifact:
    """A published artifact directory and its manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def stage(self) -> str:
        return self.manifest["stage"]

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> int:
        return self.manifest["version"]

    @property
    def content_hash(self) -> str:
        return self.manifest["content_hash"]

    @property
    def label(self) -> str:
        """``stage/name-vN``: how the artifact is referred to in messages."""
        return f"{self.stage}/{self.name}-v{self.version}"

    def input_ref(self, role: str, relative_to: Path) -> dict[str, Any]:
        """The manifest entry that records this artifact as an input of another one."""
        return {
            "role": role,
            "path": os.path.relpath(self.path.resolve(), relative_to.resolve()),
            "stage": self.stage,
            "name": self.name,
            "version": self.version,
            "content_hash": self.content_hash,
        }


class _InputRef(BaseModel):
    """The shape of one ``inputs`` entry of a manifest."""

    model_config = ConfigDict(extra="allow")

    role: StrictStr
    path: StrictStr
    content_hash: StrictStr


class _ManifestShape(BaseModel):
    """The keys of a manifest that the tool relies on, with their types (others are free)."""

    model_config = ConfigDict(extra="allow")

    schema_version: StrictInt
    stage: StrictStr
    name: StrictStr
    version: StrictInt
    outputs: dict[StrictStr, StrictStr]
    content_hash: StrictStr
    inputs: list[_InputRef] = []


def read_manifest(path: Path) -> dict[str, Any]:
    """Load ``manifest.json`` of an artifact directory, or raise BadInput naming what is wrong."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"no such artifact: {path}")
    if not path.is_dir():
        raise BadInput(f"{path} is not an alphadrive artifact (not a directory)")
    if path.name.endswith(PARTIAL_SUFFIX):
        raise BadInput(f"{path} is an unfinished run, not an artifact: re-run its stage to resume it")
    manifest_path = path / MANIFEST_NAME
    if not manifest_path.is_file():
        raise BadInput(f"{path} is not an alphadrive artifact (no {MANIFEST_NAME})")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"{manifest_path} is unreadable: {exc}") from None
    if not isinstance(manifest, dict):
        raise BadInput(
            f"{manifest_path} is not an alphadrive manifest (a JSON {type(manifest).__name__}, not an object)"
        )
    required = ("schema_version", "stage", "name", "version", "outputs", "content_hash")
    missing = [key for key in required if key not in manifest]
    if missing:
        raise BadInput(f"{manifest_path} is not an alphadrive manifest (missing {', '.join(missing)})")
    try:
        _ManifestShape.model_validate(manifest)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BadInput(
            f"{manifest_path} is not an alphadrive manifest ({where}: {first['msg']}, got {brief(first.get('input'))})"
        ) from None
    if manifest["schema_version"] > SCHEMA_VERSION:
        raise BadInput(
            f"{path} was written by a newer alphadrive (manifest schema {manifest['schema_version']}, "
            f"this tool reads up to {SCHEMA_VERSION}): upgrade alphadrive"
        )
    if manifest["schema_version"] >= MANIFEST_HASH_SINCE and manifest.get(MANIFEST_HASH_KEY) != manifest_hash(manifest):
        raise BadInput(f"{manifest_path} was edited after it was written: it does not match its {MANIFEST_HASH_KEY}")
    return manifest


def verify(path: Path, manifest: Mapping[str, Any]) -> None:
    """Check every file listed in the manifest against its sha256; raise BadInput naming the first bad one."""
    outputs: Mapping[str, str] = manifest["outputs"]
    if content_hash(outputs) != manifest["content_hash"]:
        raise BadInput(f"{path / MANIFEST_NAME} was edited: its file list does not match its content hash")
    for relative, expected in sorted(outputs.items()):
        file_path = path / relative
        if not file_path.is_file():
            raise BadInput(f"artifact {path} is damaged: {relative} is missing")
        if sha256_file(file_path) != expected:
            raise BadInput(f"artifact {path} was modified after it was written: {relative} does not match its sha256")


def open_artifact(path: Path | str, stage: str | tuple[str, ...] | None = None, check: bool = True) -> Artifact:
    """Open a published artifact, optionally requiring its stage and verifying every file hash."""
    path = Path(path)
    manifest = read_manifest(path)
    stages = (stage,) if isinstance(stage, str) else stage
    if stages and manifest["stage"] not in stages:
        wanted = " or ".join(repr(s) for s in stages)
        raise BadInput(f"{path} is a {manifest['stage']!r} artifact; this needs a {wanted} artifact")
    if check:
        verify(path, manifest)
    return Artifact(path=path, manifest=manifest)


def list_versions(stage_dir: Path, name: str) -> list[int]:
    """Published versions of ``name`` in a stage directory, ascending."""
    if not stage_dir.is_dir():
        return []
    versions = []
    for entry in stage_dir.iterdir():
        match = VERSIONED_NAME.match(entry.name)
        if match and match["name"] == name and entry.is_dir():
            versions.append(int(match["version"]))
    return sorted(versions)


@dataclass
class ArtifactWriter:
    """An artifact under construction in its partial directory; :meth:`publish` makes it real."""

    stage: str
    name: str
    stage_dir: Path
    config: dict[str, Any]
    identity: str
    resumed: bool
    inputs: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    _lock_handle: Any = None

    @property
    def dir(self) -> Path:
        """The partial directory that files are written into."""
        return partial_dir(self.stage_dir, self.name)

    def path(self, relative: str) -> Path:
        """Path of a file inside the artifact, its parent directories created."""
        target = self.dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def add_input(self, role: str, artifact: Artifact) -> None:
        """Record an input artifact (its path, stage, version and content hash) in the lineage."""
        final_dir = self.stage_dir / f"{self.name}-v1"  # same depth as the final directory
        self.inputs.append(artifact.input_ref(role, final_dir))

    def add_prompt(self, template_id: str, sha256: str) -> None:
        """Record a prompt template used by the stage."""
        self.prompts.append({"id": template_id, "sha256": sha256})

    def publish(
        self,
        counts: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Artifact:
        """Hash every file, write the manifest and rename the directory into place atomically."""
        (self.dir / RUN_STATE_NAME).unlink(missing_ok=True)
        (self.dir / MANIFEST_NAME).unlink(missing_ok=True)
        outputs = {
            file.relative_to(self.dir).as_posix(): sha256_file(file)
            for file in sorted(self.dir.rglob("*"))
            if file.is_file()
        }
        while True:
            version = max(list_versions(self.stage_dir, self.name), default=0) + 1
            manifest = redact(
                {
                    "schema_version": SCHEMA_VERSION,
                    "stage": self.stage,
                    "name": self.name,
                    "version": version,
                    "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "tool": tool_info(),
                    "config": self.config,
                    "prompts": self.prompts,
                    "inputs": self.inputs,
                    "counts": dict(counts or {}),
                    "metrics": dict(metrics or {}),
                    "wall_time_s": round(time.monotonic() - self.started, 3),
                    "device": device_info(),
                    "resumed": self.resumed,
                    **dict(extra or {}),
                }
            )
            # File names and hashes are never rewritten by redaction.
            manifest.update(outputs=outputs, content_hash=content_hash(outputs))
            manifest[MANIFEST_HASH_KEY] = manifest_hash(manifest)
            write_json_atomically(self.dir / MANIFEST_NAME, manifest)
            final = self.stage_dir / f"{self.name}-v{version}"
            try:
                os.rename(self.dir, final)
            except OSError as exc:  # another process published the same version first
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    continue
                raise
            break
        _fsync_dir(self.stage_dir)
        self.release()
        return Artifact(path=final, manifest=manifest)

    def __getstate__(self) -> dict[str, Any]:
        # A copy sent to another process (the other ranks of a multi-process run) does not hold the lock.
        return {**self.__dict__, "_lock_handle": None}

    def __enter__(self) -> ArtifactWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def release(self) -> None:
        """Release the lock on the partial directory (kept on disk for a later resume)."""
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None


def _acquire_lock(stage_dir: Path, name: str) -> Any:
    handle = (stage_dir / f".{name}.lock").open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise BadInput(
            f"another alphadrive process is writing {stage_dir / name}; wait for it or choose another --name"
        ) from None
    return handle


@dataclass(frozen=True)
class OutputSpec:
    """Where a stage writes its artifact (every stage's entry takes one): the root of the artifact tree
    (None: :func:`default_root`), the name (None: the stage's default; versions -v1, -v2 … are added) and what to
    do with an unfinished run of that name."""

    root: Path | None = None
    name: str | None = None
    resume: ResumePolicy = ResumePolicy.AUTO

    def begin(
        self,
        stage: str,
        default_name: str,
        config: Mapping[str, Any],
        inputs: Mapping[str, Artifact] | None = None,
        identity: Mapping[str, Any] | None = None,
    ) -> ArtifactWriter:
        """:func:`begin` a ``stage`` artifact under this spec's root and name (``default_name`` if it has none)."""
        return begin(
            stage,
            self.name or default_name,
            config,
            root=self.root,
            inputs=inputs,
            resume=self.resume,
            identity=identity,
        )


def begin(
    stage: str,
    name: str,
    config: Mapping[str, Any],
    root: Path | None = None,
    inputs: Mapping[str, Artifact] | None = None,
    resume: ResumePolicy = ResumePolicy.AUTO,
    identity: Mapping[str, Any] | None = None,
) -> ArtifactWriter:
    """Start (or resume) writing a ``stage`` artifact called ``name``.

    ``identity`` (default: the config) plus the inputs' content hashes decide whether an unfinished
    run of the same name may be resumed; a mismatch is an error rather than a silent restart.
    """
    validate_name(name)
    stage_dir = Path(root or default_root()) / stage
    stage_dir.mkdir(parents=True, exist_ok=True)
    inputs = dict(inputs or {})
    identity_hash = canonical_hash(
        {
            "stage": stage,
            "identity": redact(dict(identity if identity is not None else config)),
            "inputs": {role: artifact.content_hash for role, artifact in sorted(inputs.items())},
        }
    )
    lock = _acquire_lock(stage_dir, name)
    try:
        writer = ArtifactWriter(
            stage=stage,
            name=name,
            stage_dir=stage_dir,
            config=redact(dict(config)),
            identity=identity_hash,
            resumed=False,
            _lock_handle=lock,
        )
        _prepare_partial_dir(writer, resume)
    except BaseException:
        lock.close()
        raise
    for role, artifact in inputs.items():
        writer.add_input(role, artifact)
    return writer


def _holds_no_work(partial: Path) -> bool:
    """True when an unfinished run holds nothing but its run state and empty files or folders."""
    return all(file.name == RUN_STATE_NAME or file.stat().st_size == 0 for file in partial.rglob("*") if file.is_file())


def _recorded_identity(state_path: Path) -> Any:
    try:
        return json.loads(state_path.read_text()).get("identity")
    except (OSError, ValueError, AttributeError):
        return None


def _prepare_partial_dir(writer: ArtifactWriter, resume: ResumePolicy) -> None:
    partial = writer.dir
    state_path = partial / RUN_STATE_NAME
    if partial.exists():
        matches = _recorded_identity(state_path) == writer.identity
        # discarded when asked, or when a run with other settings failed before computing anything
        # (bad input found late)
        if resume is ResumePolicy.RESTART or (not matches and _holds_no_work(partial)):
            shutil.rmtree(partial)
        elif not matches:
            raise BadInput(
                f"an unfinished {writer.stage} run named {writer.name!r} with other settings or inputs is at "
                f"{partial}; re-run with the same settings to resume it, or pass --restart to discard it"
            )
        else:
            writer.resumed = True
            return
    if resume is ResumePolicy.REQUIRE:
        raise BadInput(
            f"nothing to resume: no unfinished {writer.stage} run named {writer.name!r} in {writer.stage_dir}"
        )
    partial.mkdir()
    write_json_atomically(
        state_path,
        {
            "stage": writer.stage,
            "name": writer.name,
            "identity": writer.identity,
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        },
    )


@dataclass(frozen=True)
class LineageNode:
    """One artifact in a lineage tree; ``artifact`` is None when the recorded input cannot be found."""

    role: str
    ref: Mapping[str, Any]
    artifact: Artifact | None
    problem: str | None
    parents: tuple[LineageNode, ...]


def lineage(
    artifact: Artifact, role: str = "artifact", check: bool = False, _seen: frozenset[str] = frozenset()
) -> LineageNode:
    """The tree of an artifact's inputs, recursively; missing, replaced or (with ``check``: every file's sha256
    verified) modified inputs are marked, not fatal."""
    parents = []
    for ref in artifact.manifest.get("inputs", []):
        parent_path = (artifact.path / ref["path"]).resolve()
        try:
            parent = open_artifact(parent_path, check=False)
        except BadInput as exc:
            parents.append(LineageNode(ref["role"], ref, None, str(exc), ()))
            continue
        problem = None
        if parent.content_hash != ref.get("content_hash"):
            problem = "content differs from the recorded input (replaced or rebuilt)"
        elif check:
            try:
                verify(parent.path, parent.manifest)
            except BadInput as exc:
                problem = f"changed since it was used: {exc}"
        if parent.content_hash in _seen:
            parents.append(LineageNode(ref["role"], ref, parent, "cycle in lineage", ()))
            continue
        node = lineage(parent, ref["role"], check, _seen | {artifact.content_hash})
        parents.append(LineageNode(node.role, ref, parent, problem, node.parents))
    ref = {"stage": artifact.stage, "name": artifact.name, "version": artifact.version, "path": str(artifact.path)}
    return LineageNode(role, ref, artifact, None, tuple(parents))
