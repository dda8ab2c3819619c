"""Which views closed-loop driving renders: exactly those of the simulator data the model learned from."""

from __future__ import annotations

from pathlib import Path

from alphadrive_cli.artifacts.store import Artifact, lineage, open_artifact
from alphadrive_cli.config.schemas import BevConfig, RenderConfig
from alphadrive_cli.errors import BadInput
from alphadrive_cli.models.loading import ModelSource


def recorded_render(artifact: Artifact) -> RenderConfig | None:
    """How a ``data sim`` artifact drew its images; None for any other artifact.

    Data sets made before ``render`` existed had one top-down view configured by top-level keys."""
    config = artifact.manifest.get("config") or {}
    if artifact.stage != "data" or "simulator" not in artifact.manifest:
        return None
    if "render" in config:
        return RenderConfig.model_validate(config["render"])
    if "image_size" in config:
        bev = BevConfig(**{key: config[key] for key in ("view_m", "ego_row") if key in config})
        return RenderConfig(views=["bev"], image_size=config["image_size"], bev=bev)
    return None


def render_in_lineage(artifact: Artifact) -> tuple[RenderConfig, Artifact] | None:
    """The rendering of the nearest ``data sim`` artifact in an artifact's lineage (itself first).

    A ``data`` input that cannot be found, or whose content changed since it was used, is BadInput: the
    views it had are unknown, and guessing them would drive the model on images it never saw."""
    frontier = [lineage(artifact)]
    while frontier:
        node = frontier.pop(0)
        if node.artifact is None or node.problem is not None:
            if node.ref.get("stage") == "data" or node.role == "data":
                raise BadInput(
                    f"the training data of {artifact.label} ({node.ref.get('path')}) "
                    f"{'is missing' if node.artifact is None else 'changed since it was used'}, so its views are "
                    "unknown: pass that data set (or one rendered the same way) with --data"
                )
            continue
        render = recorded_render(node.artifact)
        if render is not None:
            return render, node.artifact
        frontier.extend(node.parents)
    return None


def describe_render(render: RenderConfig) -> str:
    """E.g. ``views [front] at 448 px``."""
    return f"views [{', '.join(render.views)}] at {render.image_size} px"


def closed_loop_render(source: ModelSource, data_path: Path | None) -> tuple[RenderConfig, Artifact | None]:
    """The rendering to drive with and the data artifact it was read from (None: `data sim`'s defaults).

    The model's own lineage decides; ``--data`` is for models without one (a base model, a hub id) and
    is refused when it disagrees with the training data."""
    artifacts = [source.artifact, source.base.artifact if source.base is not None else None]
    given = None
    try:
        trained = next((found for a in artifacts if a is not None and (found := render_in_lineage(a))), None)
    except BadInput:
        if data_path is None:
            raise
        trained = None  # the training data is gone: --data says how it was rendered
    if data_path is not None:
        given = render_in_lineage(open_artifact(data_path, stage=("data", "distill")))
        if given is None:
            raise BadInput(
                f"{data_path} was not made by `alphadrive data sim`, so there is no rendering to copy: "
                "drop --data to render like `data sim`'s defaults"
            )
    if trained is not None and given is not None and trained[0] != given[0]:
        raise BadInput(
            f"the model learned from {describe_render(trained[0])} ({trained[1].label}) but --data {data_path} "
            f"has {describe_render(given[0])}: drop --data to drive with the training data's views"
        )
    chosen = trained or given
    return (chosen[0], chosen[1]) if chosen is not None else (RenderConfig(), None)
