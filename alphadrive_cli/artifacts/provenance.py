"""Facts about the tool and machine that made an artifact: version, git commit, device."""

from __future__ import annotations

import platform
import subprocess
import sys
from functools import lru_cache
from typing import Any

from alphadrive_cli import __version__
from alphadrive_cli.resources import PROJECT_ROOT


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the alphadrive source tree (``+dirty`` if it has local changes), or None."""
    if not (PROJECT_ROOT / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def tool_info() -> dict[str, Any]:
    """Name, version and git commit of the tool, for manifests."""
    return {"name": "alphadrive", "version": __version__, "git_commit": git_commit()}


def device_info() -> dict[str, Any]:
    """The machine a stage ran on: Python, platform, torch and accelerator if torch is loaded."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["accelerator"] = torch.cuda.get_device_name(0)
            info["accelerator_count"] = torch.cuda.device_count()
        else:
            info["accelerator"] = "cpu"
    return info
