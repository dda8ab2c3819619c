"""An animated GIF of closed-loop episodes: each decision's view with the chosen plan written on it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw

GIF_SIDE_PX = 256
BANNER_PX = 34
FRAME_MS = 500


def annotated_frame(view: Image.Image, label: str, side: int = GIF_SIDE_PX) -> Image.Image:
    """The view scaled to ``side`` pixels under a black banner holding ``label`` (two lines at most)."""
    frame = Image.new("RGB", (side, side + BANNER_PX), "black")
    frame.paste(view.convert("RGB").resize((side, side), Image.Resampling.BILINEAR), (0, BANNER_PX))
    ImageDraw.Draw(frame).multiline_text((4, 2), label, fill="white", spacing=2)
    return frame


def write_gif(episodes: Mapping[str, Sequence[tuple[Image.Image, str]]], path: Path) -> int:
    """One GIF playing the episodes one after the other, looping; returns the number of frames."""
    frames = [annotated_frame(view, label) for recorded in episodes.values() for view, label in recorded]
    if not frames:
        return 0
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=FRAME_MS, loop=0, optimize=True)
    return len(frames)
