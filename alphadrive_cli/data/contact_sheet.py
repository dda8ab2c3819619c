"""A grid of sample frames with their labels, so a person can see what a data set looks like."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from alphadrive_cli.data.records import Record
from alphadrive_cli.data.sampling import balanced_sample

_CAPTION_LINES = 3
_FONT_SIZE = 13


def _wrap(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def contact_sheet(
    root: Path, records: Sequence[Record], path: Path, columns: int = 4, rows: int = 4, thumb: int = 224, seed: int = 0
) -> int:
    """Write a PNG grid of sample frames with speed/path labels and navigation; returns frames shown."""
    samples = balanced_sample(records, lambda r: (r.speed_action, r.path_action), columns * rows, seed)
    font = ImageFont.load_default(size=_FONT_SIZE)
    caption = (_FONT_SIZE + 3) * _CAPTION_LINES + 6
    sheet = Image.new(
        "RGB", (columns * thumb, max(1, (len(samples) + columns - 1) // columns) * (thumb + caption)), "white"
    )
    draw = ImageDraw.Draw(sheet)
    chars = thumb // 7
    for index, record in enumerate(samples):
        x, y = (index % columns) * thumb, (index // columns) * (thumb + caption)
        with Image.open(root / record.images[0]) as image:
            sheet.paste(image.convert("RGB").resize((thumb, thumb)), (x, y))
        scenario = record.source.get("scenario", record.source.get("origin", ""))
        lines = [
            f"{record.speed_action} / {record.path_action}",
            _wrap(f"{scenario} {record.ego_speed_mps:.1f} m/s", chars),
            _wrap(record.navigation, chars),
        ]
        for line_number, line in enumerate(lines):
            draw.text(
                (x + 4, y + thumb + 3 + line_number * (_FONT_SIZE + 3)),
                line,
                fill="black" if line_number else "darkred",
                font=font,
            )
    sheet.save(path, optimize=True)
    return len(samples)
