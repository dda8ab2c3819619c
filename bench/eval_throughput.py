"""Benchmark batched eval generation against one frame at a time, on the same model and frames.

Tiny offline model through the real eval path (processor, chat template, images, left padding):
    python -m bench.eval_throughput --frames 64 --batch-sizes 1 16 --max-new-tokens 32
Real Qwen2-VL-2B architecture with random weights (GPU), inputs built directly (a 448x448 image is
256 visual tokens after merging, plus a 40-token instruction):
    python -m bench.eval_throughput --architecture configs/models/qwen2-vl-2b.json --frames 64 --batch-sizes 1 8 32
Every completion is forced to exactly --max-new-tokens tokens (min_new_tokens), so batch sizes do the
same work. Prints a Markdown table; --out writes JSON.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from alphadrive_cli.actions import DEFAULT_VOCABULARY
from alphadrive_cli.artifacts.store import OutputSpec
from alphadrive_cli.config.resolve import resolve_config
from alphadrive_cli.config.schemas import TinyModelConfig
from alphadrive_cli.data.records import Record
from alphadrive_cli.models.generation import GenerationSettings, generate
from alphadrive_cli.models.loading import (
    build_random_model,
    config_from_file,
    load_model_and_processor,
    resolve_model_source,
)
from alphadrive_cli.prompts import STUDENT_PROMPT, load_prompt, student_messages
from alphadrive_cli.stages import models_tiny
from bench.entry import run_main
from bench.report import report


def tiny_runner(frames: int, max_new_tokens: int):
    """A function batch_size -> seconds for generating all frames with the tiny model via the eval path."""
    root = Path(tempfile.mkdtemp())
    artifact = models_tiny.run(resolve_config("models", TinyModelConfig), OutputSpec(root))
    model, processor = load_model_and_processor(resolve_model_source(str(artifact.path)))
    model.eval()
    template = load_prompt(STUDENT_PROMPT)
    rng = np.random.default_rng(0)
    records = [
        Record(
            id=str(i),
            images=["x.png"],
            navigation="follow the road",
            ego_speed_mps=float(i % 20),
            speed_action="KEEP",
            path_action="STRAIGHT",
            source={},
        )
        for i in range(frames)
    ]
    prompts = [
        processor.apply_chat_template(
            student_messages(template, r, DEFAULT_VOCABULARY), add_generation_prompt=True, tokenize=False
        )
        for r in records
    ]
    images = [[Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8))] for _ in records]
    model.generation_config.min_new_tokens = max_new_tokens
    settings = GenerationSettings(max_new_tokens)

    def run(batch_size: int) -> float:
        started = time.perf_counter()
        for start in range(0, frames, batch_size):
            generate(
                model, processor, prompts[start : start + batch_size], images[start : start + batch_size], settings
            )
        return time.perf_counter() - started

    return run, {
        "model": "tiny offline qwen2_vl (random weights)",
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def architecture_runner(config_path: Path, frames: int, max_new_tokens: int):
    """The same for a full architecture with random weights in bf16 on CUDA, inputs built directly."""
    config = config_from_file(config_path)
    torch.manual_seed(0)
    model = build_random_model(config, dtype=torch.bfloat16, device="cuda").eval()
    patches = 32 * 32  # 448x448 image, 14-pixel patches
    prompt = [config.vision_start_token_id] + [config.image_token_id] * (patches // 4) + [config.vision_end_token_id]
    prompt += list(range(1000, 1040))

    def run(batch_size: int) -> float:
        torch.cuda.synchronize()
        started = time.perf_counter()
        for start in range(0, frames, batch_size):
            n = min(batch_size, frames - start)
            input_ids = torch.tensor([prompt] * n, device="cuda")
            with torch.inference_mode():
                model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    pixel_values=torch.randn(n * patches, 3 * 2 * 14 * 14, device="cuda", dtype=torch.bfloat16),
                    image_grid_thw=torch.tensor([[1, 32, 32]] * n, device="cuda"),
                    max_new_tokens=max_new_tokens,
                    min_new_tokens=max_new_tokens,
                    do_sample=False,
                )
        torch.cuda.synchronize()
        return time.perf_counter() - started

    return run, {
        "model": f"{config_path.name} architecture (random weights, bf16)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "gpu": torch.cuda.get_device_name(0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--architecture", type=Path, default=None, help="model config JSON: random weights on CUDA")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.architecture:
        run, facts = architecture_runner(args.architecture, args.frames, args.max_new_tokens)
    else:
        run, facts = tiny_runner(args.frames, args.max_new_tokens)
    run(min(args.batch_sizes))  # warm-up (kernels, allocator)
    rows = []
    for batch_size in args.batch_sizes:
        seconds = run(batch_size)
        rows.append(
            {
                "batch_size": batch_size,
                "seconds": round(seconds, 3),
                "frames_per_s": round(args.frames / seconds, 2),
                "tokens_per_s": round(args.frames * args.max_new_tokens / seconds, 1),
            }
        )
    base = rows[0]["frames_per_s"]
    for row in rows:
        row["speedup_vs_first"] = round(row["frames_per_s"] / base, 2)
    facts.update(
        frames=args.frames,
        max_new_tokens=args.max_new_tokens,
        torch=torch.__version__,
        python=platform.python_version(),
        device="cuda" if args.architecture else "cpu",
    )
    print(" ".join(f"{key}={value}" for key, value in facts.items()))
    report(("batch_size", "seconds", "frames_per_s", "tokens_per_s", "speedup_vs_first"), rows, args.out, facts=facts)


if __name__ == "__main__":
    run_main(main)
