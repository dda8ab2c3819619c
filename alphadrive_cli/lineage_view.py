"""Render an artifact's manifest and lineage for people (rich tree) and for programs (JSON)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.tree import Tree

from alphadrive_cli.artifacts import LineageNode


def _summary(values: dict[str, Any], limit: int = 6) -> str:
    items = list(values.items())
    text = ", ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in items[:limit])
    return text + (", …" if len(items) > limit else "")


def _label(node: LineageNode) -> str:
    ref = node.ref
    head = f"[bold]{escape(node.role)}[/]: {escape(str(ref.get('stage')))}/{escape(str(ref.get('name')))}-v{ref.get('version')}"
    if node.artifact is None:
        return f"{head}  [red]{escape(node.problem or 'missing')}[/]\n[dim]{escape(str(ref.get('path')))}[/]"
    manifest = node.artifact.manifest
    lines = [head, f"[dim]{escape(str(node.artifact.path))}[/]",
             f"created {manifest.get('created', '?')}  hash {node.artifact.content_hash[:12]}"]
    for key in ("counts", "metrics"):
        if manifest.get(key):
            lines.append(f"{key}: {escape(_summary(manifest[key]))}")
    if node.problem:
        lines.append(f"[yellow]{escape(node.problem)}[/]")
    return "\n".join(lines)


def lineage_tree(node: LineageNode, tree: Tree | None = None) -> Tree:
    """A rich Tree: the artifact, then each input (recursively) with its role."""
    branch = Tree(_label(node)) if tree is None else tree.add(_label(node))
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
