"""What several benchmarks share: the device facts they report, the model and data they run on."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from alphadrive_cli.actions import DEFAULT_VOCABULARY
from alphadrive_cli.artifacts.store import OutputSpec, begin
from alphadrive_cli.config.resolve import resolve_config
from alphadrive_cli.config.schemas import TinyModelConfig
from alphadrive_cli.data.publish import publish_dataset
from alphadrive_cli.data.records import Record
from alphadrive_cli.resources import CONFIG_DIR
from alphadrive_cli.stages import models_tiny

# `models tiny` settings for the real Qwen2-VL-2B architecture with random bf16 weights and 448x448 frames
REAL_2B_MODEL: dict[str, Any] = {
    "dimensions": str(CONFIG_DIR / "models" / "qwen2-vl-2b.json"),
    "dtype": "bfloat16",
    "min_pixels": 448 * 448,
    "max_pixels": 448 * 448,
}


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo, else what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def device_facts() -> dict[str, Any]:
    """Device and library versions of this run."""
    import transformers

    facts = {
        "device": torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"cpu ({cpu_model()}, {os.cpu_count()} cores)",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
    try:
        import trl

        facts["trl"] = trl.__version__
    except ImportError:
        pass
    return facts


def run_facts(module: str, started: float) -> dict[str, Any]:
    """What a benchmark's JSON says about its run: :func:`device_facts`, the command that ran ``module`` (this
    process's arguments) and its wall seconds since ``started`` (a ``time.perf_counter()``)."""
    command = " ".join([f"python -m {module}", *sys.argv[1:]])
    return {**device_facts(), "command": command, "wall_s": round(time.perf_counter() - started, 1)}


def bench_inputs(workdir: Path | None, tiny: bool, frames: int) -> tuple[Path, Path]:
    """The model artifact (Qwen2-VL-2B architecture with random bf16 weights, or the tiny model) and a data
    artifact of ``frames`` synthetic 448x448 frames; built once per ``workdir`` and reused."""
    root = workdir or Path(tempfile.mkdtemp())
    index = root / f"bench-inputs-{'tiny' if tiny else '2b'}-{frames}.json"
    if index.is_file():
        paths = json.loads(index.read_text())
        return Path(paths["model"]), Path(paths["data"])
    config = resolve_config("models", TinyModelConfig, options=None if tiny else REAL_2B_MODEL)
    model = models_tiny.run(config, OutputSpec(root)).path
    data = synthetic_data(root, frames)
    index.write_text(json.dumps({"model": str(model), "data": str(data)}))
    return model, data


PLANS = [
    ("KEEP", "STRAIGHT"),
    ("DECELERATE", "STRAIGHT"),
    ("ACCELERATE", "LEFT_CHANGE"),
    ("STOP", "STRAIGHT"),
    ("KEEP", "LEFT_TURN"),
    ("DECELERATE", "RIGHT_TURN"),
]


def synthetic_data(root: Path, frames: int) -> Path:
    """A data artifact of random 448x448 frames with varied labels and scene facts."""
    rng = np.random.default_rng(0)
    with begin("data", "bench", {}, root=root) as writer:
        records = []
        for index in range(frames):
            image = f"images/{index}.png"
            Image.fromarray(rng.integers(0, 255, (448, 448, 3), dtype=np.uint8)).save(writer.path(image))
            speed, path = PLANS[index % len(PLANS)]
            records.append(
                Record(
                    id=f"b{index}",
                    images=[image],
                    navigation="follow the road",
                    ego_speed_mps=12.0,
                    speed_action=speed,
                    path_action=path,
                    source={"origin": "bench"},
                    scene={
                        "lane": 1,
                        "lanes": 3,
                        "lead_vehicle": {"gap_m": 30.0, "relative_speed_mps": -2.0, "kind": "vehicle"},
                        "left_lane": "free",
                        "right_lane": "occupied",
                    },
                )
            )
        return publish_dataset(writer, {"train": records}, DEFAULT_VOCABULARY, seed=0).path
