"""Small hand-labelled data artifacts for tests (solid-colour images, a unique navigation per frame)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from alphadrive_cli.actions import DEFAULT_VOCABULARY
from alphadrive_cli.artifacts.store import begin
from alphadrive_cli.data.publish import publish_dataset
from alphadrive_cli.data.records import SPLITS, Record

# Six frames with hand-chosen truths, for the eval tests: every speed class and three path classes.
TEST_TRUTHS = [
    ("KEEP", "STRAIGHT"),
    ("KEEP", "LEFT_TURN"),
    ("DECELERATE", "STRAIGHT"),
    ("STOP", "STRAIGHT"),
    ("ACCELERATE", "RIGHT_CHANGE"),
    ("KEEP", "STRAIGHT"),
]
SCENE = {"lane": 0, "lanes": 2, "lead_vehicle": None, "left_lane": "free", "right_lane": "none"}


def judged(speed: str, path: str, acceptable: bool) -> dict:
    """One `plans` entry of a record, with made-up outcomes."""
    return {
        "speed": speed,
        "path": path,
        "collision": not acceptable,
        "off_road": False,
        "progress_m": 30.0,
        "peak_deceleration_mps2": 0.0,
        "realised_speed": speed,
        "realised_path": path,
        "acceptable": acceptable,
    }


def make_labelled_data(
    root: Path,
    frames: Sequence[tuple[str, str]],
    splits: Mapping[str, Sequence[int]],
    reasoning: str | None = None,
    plans: Mapping[int, list[dict]] | None = None,
    shades: Sequence[int] | None = None,
    scenarios: Sequence[str] | None = None,
    episodes: Sequence[int] | None = None,
) -> Path:
    """A data artifact with frame ``i`` labelled ``frames[i]`` (id ``f<i>``, navigation "... (frame i)"),
        placed in the splits that list its index (with ``reasoning``, every record carries that trace; with
        ``plans``, frame ``i`` carries ``plans[i]`` as its judged plans); returns the artifact's path. With ``shades``,
        frame ``i``'s image is the grey level ``shades[i]`` and every frame has the same prompt: only its image tells
        it apart. With ``scenarios``, frame ``i`` is a simulator frame of scenario ``scenarios[i]`` (with ``episodes``,
    of episode ``episodes[i]``)."""
    with begin("data", "hand", {}, root=root) as writer:
        records = []
        for index, (speed, path) in enumerate(frames):
            image = f"images/{index}.png"
            shade = 30 * index % 256 if shades is None else shades[index]
            Image.fromarray(np.full((32, 32, 3), shade, dtype=np.uint8)).save(writer.path(image))
            records.append(
                Record(
                    id=f"f{index}",
                    images=[image],
                    navigation="follow the road" if shades is not None else f"follow the road (frame {index})",
                    ego_speed_mps=10.0 if shades is not None else float(index),
                    speed_action=speed,
                    path_action=path,
                    source={"origin": "test"}
                    if scenarios is None
                    else {
                        "origin": "simulator",
                        "scenario": scenarios[index],
                        **({} if episodes is None else {"episode": episodes[index]}),
                    },
                    scene=SCENE,
                    plans=(plans or {}).get(index),
                    reasoning=reasoning,
                )
            )
        by_split = {split: [records[i] for i in splits.get(split, ())] for split in SPLITS}
        return publish_dataset(writer, by_split, DEFAULT_VOCABULARY, seed=0).path
