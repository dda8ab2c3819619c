"""A user's text files (configs, predictions): read as UTF-8 and written new, any failure one BadInput line."""

from __future__ import annotations

import os
from pathlib import Path

from alphadrive_cli.errors import BadInput


def read_text_file(path: Path, what: str) -> str:
    """The UTF-8 text of ``path``; BadInput naming ``what`` and the file when it cannot be read or decoded."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise BadInput(f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})") from None


def write_new_text_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, which must not exist yet, all at once (a temporary sibling renamed into place)."""
    path = Path(path)
    if path.exists():
        raise BadInput(f"{path} exists: choose a new file name (nothing was written)")
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise BadInput(f"cannot write {path}: {exc.strerror or exc}") from None
