"""Files shipped inside installed Python packages (a BPE table, GGUF weights), found without importing them."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alphadrive_cli.artifacts.store import sha256_file
from alphadrive_cli.errors import BadInput


@dataclass(frozen=True)
class PackagedFile:
    """A data file of an installed distribution: where it is and which release it came from."""

    package: str
    version: str
    relative: str
    path: Path

    def describe(self) -> dict[str, Any]:
        """Manifest-ready provenance: package, version, file and its sha256."""
        return {
            "package": self.package,
            "version": self.version,
            "file": self.relative,
            "sha256": sha256_file(self.path),
        }


def packaged_file(package: str, relative: str, install: str) -> PackagedFile:
    """The file ``relative`` of the installed distribution ``package``; its absence names the install command.

    The package is never imported (some pull heavy dependencies alphadrive does not install)."""
    try:
        distribution = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise BadInput(f"the package {package} is not installed: run {install}") from None
    path = Path(str(distribution.locate_file(relative)))
    if not path.is_file():
        raise BadInput(f"{package} {distribution.version} has no {relative}: run {install}")
    return PackagedFile(package, distribution.version, relative, path)
