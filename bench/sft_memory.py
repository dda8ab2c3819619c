"""Benchmark `alphadrive sft` at real scale: QLoRA (4-bit NF4) against bf16 LoRA, same batch and steps.

Usage (one CUDA GPU): python bench/sft_memory.py --steps 24 --batch 4 [--out docs/bench/sft_h100.json]
Builds the Qwen2-VL-2B architecture with random weights and the offline processor
(`alphadrive models tiny --dimensions configs/models/qwen2-vl-2b.json`), a synthetic data set of
448x448 frames distilled by the grounded teacher, then runs the real `sft` stage twice and reads peak
GPU memory and samples/s from the artifacts' manifests.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from report import report  # bench/report.py

from alphadrive_cli.actions import DEFAULT_VOCABULARY
from alphadrive_cli.artifacts.store import OutputSpec, ResumePolicy, begin
from alphadrive_cli.config.schemas import DistillConfig, SftConfig, TinyModelConfig
from alphadrive_cli.data.publish import publish_dataset
from alphadrive_cli.data.records import Record
from alphadrive_cli.resources import CONFIG_DIR
from alphadrive_cli.stages import distill as distill_stage
from alphadrive_cli.stages import models_tiny
from alphadrive_cli.stages import sft as sft_stage

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU")
    root = Path(tempfile.mkdtemp())
    model = models_tiny.run(
        TinyModelConfig(
            dimensions=str(CONFIG_DIR / "models" / "qwen2-vl-2b.json"),
            dtype="bfloat16",
            min_pixels=448 * 448,
            max_pixels=448 * 448,
        ),
        OutputSpec(root),
    )
    traces = distill_stage.run(
        DistillConfig(splits=["train"]), OutputSpec(root), data=synthetic_data(root, args.steps * args.batch)
    )
    rows = []
    for quantization in ("4bit", "none"):
        config = SftConfig(
            model=str(model.path),
            quantization=quantization,
            per_device_batch_size=args.batch,
            max_steps=args.steps,
            gradient_checkpointing=True,
            save_steps=10_000,
            max_length=1024,
        )
        artifact = sft_stage.run(
            config, OutputSpec(root, f"bench-{quantization}", ResumePolicy.RESTART), data=traces.path
        )
        metrics = artifact.manifest["metrics"]
        rows.append(
            {
                "setup": "QLoRA (NF4, double quant, bf16 compute)" if quantization == "4bit" else "LoRA, bf16 weights",
                "quantization": quantization,
                **metrics,
            }
        )
    print(
        f"model: Qwen2-VL-2B architecture, random weights, {model.manifest['counts']['parameters']:,} parameters; "
        f"GPU {torch.cuda.get_device_name(0)}; batch {args.batch}; {args.steps} steps; "
        "448x448 frames (256 visual tokens)"
    )
    report(
        ("setup", "peak_memory_gb", "train_samples_per_second", "train_loss", "first_loss", "final_loss", "steps"),
        rows,
        args.out,
        gpu=torch.cuda.get_device_name(0),
        batch=args.batch,
        steps=args.steps,
    )


if __name__ == "__main__":
    main()
