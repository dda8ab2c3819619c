"""Render an artifact's manifest and lineage for people (rich tree) and for programs (JSON)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.text import Text
from rich.tree import Tree

from alphadrive_cli.artifacts.store import LineageNode


def _summary(values: dict[str, Any], limit: int = 6) -> str:
    items = list(values.items())
    text = ", ".join(
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in items[:limit]
    )
    return text + (", …" if len(items) > limit else "")


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _label(node: LineageNode, detailed: bool = False) -> str:
    ref = node.ref
    artifact = f"{escape(str(ref.get('stage')))}/{escape(str(ref.get('name')))}-v{ref.get('version')}"
    head = f"[bold]{escape(node.role)}[/]: {artifact}"
    if node.artifact is None:
        return f"{head}  [red]{escape(node.problem or 'missing')}[/]\n[dim]{escape(str(ref.get('path')))}[/]"
    manifest = node.artifact.manifest
    lines = [
        head,
        f"[dim]{escape(str(node.artifact.path))}[/]",
        f"created {manifest.get('created', '?')}  hash {node.artifact.content_hash[:12]}",
    ]
    if detailed:
        tool = manifest.get("tool", {})
        lines.append(
            f"tool {tool.get('name')} {tool.get('version')} (commit {tool.get('git_commit') or 'unknown'}), "
            f"{len(manifest.get('outputs', {}))} files, {manifest.get('wall_time_s', '?')} s"
        )
        if manifest.get("config"):
            lines.append(f"config: {escape(_summary(_flatten(manifest['config']), limit=12))}")
    for key in ("counts", "metrics"):
        if manifest.get(key):
            lines.append(f"{key}: {escape(_summary(manifest[key]))}")
    if node.problem:
        lines.append(f"[yellow]{escape(node.problem)}[/]")
    return "\n".join(lines)


def lineage_tree(node: LineageNode, tree: Tree | None = None) -> Tree:
    """A rich Tree: the artifact, then each input (recursively) with its role."""
    label = Text.from_markup(_label(node, detailed=tree is None), overflow="fold")
    branch = Tree(label) if tree is None else tree.add(label)
    for parent in node.parents:
        lineage_tree(parent, branch)
    return branch


def lineage_json(node: LineageNode) -> dict[str, Any]:
    """The same tree as JSON: each node's reference, manifest (if found), problem and inputs."""
    return {
        "role": node.role,
        "ref": dict(node.ref),
        "problem": node.problem,
        "manifest": node.artifact.manifest if node.artifact else None,
        "inputs": [lineage_json(parent) for parent in node.parents],
    }
