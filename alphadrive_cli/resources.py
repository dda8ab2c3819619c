"""Where the project's bundled files (configs/, prompts/) live."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "configs"
PROMPT_DIR = PROJECT_ROOT / "prompts"
