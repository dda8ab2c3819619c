"""How many operations one GRPO optimiser step dispatches: forward, backward and optimiser, op by op.

Usage: python -m bench.training_op_count [--dimensions configs/models/small-qwen2-vl.json] [--batch 2 6]
           [--device cuda] [--out docs/bench/training_op_count.json]

A small model's optimiser step is bound by the host: each dispatched operation costs the host a few microseconds
whether its tensors are large or not, so the count, not the batch, sets the step's floor. This builds the model of
--dimensions from random weights with the fast paths the stages use and TRL's fused LM head (as `grpo` trains it),
runs one warm-up step, then counts every aten operation of one step's forward (under bf16 autocast, as a full
fine-tune trains), backward and fused AdamW step, at each --batch of one image and --tokens tokens per sequence.
Views (operations that alias their input and launch no kernel) are counted apart.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode
from trl.trainer.utils import add_fused_lm_head

from alphadrive_cli.models.loading import use_fast_paths
from alphadrive_cli.models.tiny import build_tiny_model
from alphadrive_cli.models.tokenizer import IMAGE_TOKEN, VISION_END, VISION_START
from alphadrive_cli.resources import CONFIG_DIR
from bench.common import device_facts
from bench.entry import run_main
from bench.report import report

TOP_OPS = 10


class OpCounter(TorchDispatchMode):
    """Counts each aten operation dispatched inside it, views apart."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.views = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        self.ops[func.overloadpacket.__name__] += 1
        self.views += func.is_view
        return func(*args, **(kwargs or {}))


def batch_inputs(processor: Any, batch: int, tokens: int, image_size: int, device: str) -> dict[str, torch.Tensor]:
    """``batch`` single-image prompts padded with words to about ``tokens`` tokens, labels on their second half."""
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)) for _ in range(batch)]
    words = " ".join(["keep lane"] * tokens)
    text = f"<|im_start|>user\n{VISION_START}{IMAGE_TOKEN}{VISION_END}{words}<|im_end|>\n"
    inputs = processor(text=[text] * batch, images=images, return_tensors="pt", padding=True)
    for key in ("input_ids", "attention_mask", "mm_token_type_ids"):
        inputs[key] = inputs[key][:, :tokens]
    labels = inputs["input_ids"].clone()
    labels[:, : tokens // 2] = -100
    return {key: value.to(device) for key, value in {**inputs, "labels": labels}.items()}


def trained_model(dimensions: Path, image_size: int, device: str) -> tuple[torch.nn.Module, Any, torch.optim.Optimizer]:
    """The model of ``dimensions`` from random weights, as `grpo` trains it (the stages' fast paths, TRL's fused LM
    head), with its processor for frames of ``image_size`` and a fused AdamW."""
    pixels = image_size**2
    model, processor = build_tiny_model(
        "qwen2_vl", 0, vocab_size=1024, min_pixels=pixels, max_pixels=pixels, dimensions=dimensions
    )
    model.to(device).train()
    use_fast_paths(model)
    add_fused_lm_head(model, outputs=("log_probs", "entropy"))
    return model, processor, torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)


def step_ops(model: torch.nn.Module, optimizer: torch.optim.Optimizer, inputs: dict[str, Any]) -> dict[str, Any]:
    """The operations of one optimiser step's forward, backward and optimiser, each a count, views and top ops."""
    device_type = next(model.parameters()).device.type
    counters = {phase: OpCounter() for phase in ("forward", "backward", "optimiser")}
    with counters["forward"], torch.autocast(device_type, dtype=torch.bfloat16):
        loss = model(**inputs, fused_lm_head=True).log_probs.float().mean()
    with counters["backward"]:
        loss.backward()
    with counters["optimiser"]:
        optimizer.step()
        optimizer.zero_grad()
    return {
        phase: {
            "ops": sum(counter.ops.values()),
            "views": counter.views,
            "top": dict(counter.ops.most_common(TOP_OPS)),
        }
        for phase, counter in counters.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dimensions", type=Path, default=CONFIG_DIR / "models" / "small-qwen2-vl.json")
    parser.add_argument("--batch", type=int, nargs="+", default=[2, 6], help="sequences per step")
    parser.add_argument("--tokens", type=int, default=256, help="tokens per sequence (prompt and image)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    model, processor, optimizer = trained_model(args.dimensions, args.image_size, args.device)
    rows = []
    for batch in args.batch:
        inputs = batch_inputs(processor, batch, args.tokens, args.image_size, args.device)
        step_ops(model, optimizer, inputs)  # warm-up: lazy state (optimiser moments, caches) is built here
        phases = step_ops(model, optimizer, inputs)
        rows.append(
            {
                "batch": batch,
                **{f"{phase} ops (views)": f"{value['ops']} ({value['views']})" for phase, value in phases.items()},
                "phases": phases,
            }
        )
    report(
        ["batch", *(key for key in rows[0] if key.endswith("(views)"))],
        rows,
        args.out,
        **device_facts(),
        command="python -m bench.training_op_count " + " ".join(sys.argv[1:]),
        parameters_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        tokens=args.tokens,
        image_size=args.image_size,
    )


if __name__ == "__main__":
    run_main(main)
