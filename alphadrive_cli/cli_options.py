"""The options every artifact-writing command shares (``--out-root``, ``--name``, ``--config``, ``--set``,
``--json``, ``--resume``, ``--restart`` and, for the scaled stages, ``--scale``), declared once and added to a
command function by :func:`stage_command`; the function receives them as one :class:`StageOptions`."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel

from alphadrive_cli.artifacts.store import Artifact, OutputSpec, ResumePolicy
from alphadrive_cli.config.resolve import resolve_config
from alphadrive_cli.errors import BadInput
from alphadrive_cli.ui import emit_artifact

SchemaT = TypeVar("SchemaT", bound=BaseModel)
SHARED = "shared"  # the parameter of a command function that receives the StageOptions

OutRoot = Annotated[
    Path | None,
    typer.Option(
        "--out-root", help="Root of the artifact tree [default: $ALPHADRIVE_HOME or ./runs].", show_default=False
    ),
]
Name = Annotated[str | None, typer.Option("--name", help="Artifact name; versions -v1, -v2 … are added per name.")]
ConfigFile = Annotated[
    Path | None,
    typer.Option("--config", help="YAML file overriding the stage's defaults (see `alphadrive config STAGE`)."),
]
Overrides = Annotated[
    list[str] | None, typer.Option("--set", help="Override one config key, e.g. --set lora.r=16 (repeatable).")
]
Scale = Annotated[
    str,
    typer.Option(
        "--scale",
        help="Preset from configs/scale/: tiny (CPU, the tiny model), small (one GPU, a 20 M-parameter Qwen2-VL "
        "trained from random weights or models build's) or qwen2vl-2b (GPU, LoRA on Qwen2-VL-2B).",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout instead of the bare path.")]
Resume = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Require an unfinished run of this name to continue (default: continue one if its settings match).",
    ),
]
Restart = Annotated[bool, typer.Option("--restart", help="Discard an unfinished run of this name and start over.")]

# (parameter, annotation, default), in --help order
_SHARED_PARAMETERS: tuple[tuple[str, Any, Any], ...] = (
    ("out_root", OutRoot, None),
    ("name", Name, None),
    ("config", ConfigFile, None),
    ("overrides", Overrides, None),
    ("as_json", AsJson, False),
    ("resume", Resume, False),
    ("restart", Restart, False),
)
_SCALE_DEFAULT = "tiny"


def resume_policy(resume: bool, restart: bool) -> ResumePolicy:
    """The policy ``--resume`` / ``--restart`` ask for (neither: continue a matching unfinished run)."""
    if resume and restart:
        raise BadInput("--resume and --restart contradict each other: choose one")
    return ResumePolicy.REQUIRE if resume else ResumePolicy.RESTART if restart else ResumePolicy.AUTO


@dataclass(frozen=True)
class StageOptions:
    """The shared options of one command call: where the artifact goes, and the config layers given."""

    output: OutputSpec
    config_file: Path | None
    overrides: list[str]
    as_json: bool
    scale: str | None

    def resolve(self, stage: str, schema: type[SchemaT], options: Mapping[str, Any] | None = None) -> SchemaT:
        """The stage's config from its layers, ``options`` (the command's own flags; None: not given) last."""
        return resolve_config(
            stage, schema, scale=self.scale, config_file=self.config_file, overrides=self.overrides, options=options
        )

    def emit(self, artifact: Artifact) -> None:
        """Print the artifact's path (or its JSON summary with ``--json``) on stdout."""
        emit_artifact(artifact, self.as_json)


CommandT = TypeVar("CommandT", bound=Callable[..., Any])


def stage_command(scaled: bool = False) -> Callable[[CommandT], CommandT]:
    """Add the shared options (and ``--scale`` where ``scaled``) to a command function; it receives them as its
    ``shared`` parameter, a :class:`StageOptions`."""

    def decorate(command: CommandT) -> CommandT:
        hints = typing.get_type_hints(command, include_extras=True)
        own = [
            parameter.replace(annotation=hints[parameter.name])
            for parameter in inspect.signature(command).parameters.values()
            if parameter.name != SHARED
        ]
        added = ((("scale", Scale, _SCALE_DEFAULT),) if scaled else ()) + _SHARED_PARAMETERS
        extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
                 for name, annotation, default in added]  # fmt: skip

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            shared = StageOptions(
                output=OutputSpec(
                    kwargs.pop("out_root"),
                    kwargs.pop("name"),
                    resume_policy(kwargs.pop("resume"), kwargs.pop("restart")),
                ),
                config_file=kwargs.pop("config"),
                overrides=kwargs.pop("overrides") or [],
                as_json=kwargs.pop("as_json"),
                scale=kwargs.pop("scale") if scaled else None,
            )
            return command(**kwargs, shared=shared)

        parameters = [*own, *extra]
        wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
        return wrapper  # type: ignore[return-value]

    return decorate
