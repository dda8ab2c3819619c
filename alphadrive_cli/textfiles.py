"""Reading a user's text file (config, predictions) as UTF-8, any failure one BadInput line naming the file."""

from __future__ import annotations

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
