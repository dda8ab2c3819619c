"""Benchmark `alphadrive sft` at real scale: QLoRA (4-bit NF4) against bf16 LoRA, same batch and steps.

Usage (one CUDA GPU): python -m bench.sft_memory --steps 24 --batch 4 [--out docs/bench/sft_h100.json]
Builds the Qwen2-VL-2B architecture with random weights and the offline processor
(`alphadrive models tiny --dimensions configs/models/qwen2-vl-2b.json`), a synthetic data set of
448x448 frames distilled by the grounded teacher, then runs the real `sft` stage twice and reads peak
GPU memory and samples/s from the artifacts' manifests.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from alphadrive_cli.artifacts.store import OutputSpec, ResumePolicy
from alphadrive_cli.config.resolve import resolve_config
from alphadrive_cli.config.schemas import DistillConfig, SftConfig, TinyModelConfig
from alphadrive_cli.stages import distill as distill_stage
from alphadrive_cli.stages import models_tiny
from alphadrive_cli.stages import sft as sft_stage
from bench.common import REAL_2B_MODEL, synthetic_data
from bench.entry import run_main
from bench.report import report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU")
    root = Path(tempfile.mkdtemp())
    model = models_tiny.run(resolve_config("models", TinyModelConfig, options=REAL_2B_MODEL), OutputSpec(root))
    traces = distill_stage.run(
        resolve_config("distill", DistillConfig, options={"splits": ["train"]}),
        OutputSpec(root),
        data=synthetic_data(root, args.steps * args.batch),
    )
    rows = []
    for quantization in ("4bit", "none"):
        config = resolve_config(
            "sft",
            SftConfig,
            options={
                "model": str(model.path),
                "quantization": quantization,
                "per_device_batch_size": args.batch,
                "max_steps": args.steps,
                "gradient_checkpointing": True,
                "save_steps": 10_000,
                "max_length": 1024,
            },
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
    run_main(main)
