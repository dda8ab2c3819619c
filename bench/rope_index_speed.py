"""Host time of Qwen2-VL's 3-D rotary positions for one batch shaped like the `small` preset's GRPO forwards.

Usage: python -m bench.rope_index_speed [--rows 512] [--repeats 5] [--out docs/bench/rope_index_speed_cpu.json]

Every prefill, scoring and training forward of a Qwen2-VL policy first computes each token's (time, height,
width) rotary position. The batch here has --rows sequences: a left-padded prompt of 195-215 tokens holding one
224 px frame (64 image tokens after the 2 x 2 merge), then a right-padded completion of 60-256 tokens (seed 0).
It times transformers' ``Qwen2VLModel.get_rope_index`` (a loop over rows) and this repository's
``batched_rope_index`` (array operations over the whole batch, models/rope_index.py) on the CPU, checks that
they agree, and reports milliseconds per batch (the median of --repeats after one warm-up call each).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from types import MethodType
from typing import Any

import numpy as np
import torch
from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLModel

from alphadrive_cli.models.loading import config_from_file
from alphadrive_cli.models.rope_index import batched_rope_index
from alphadrive_cli.resources import CONFIG_DIR
from bench.common import device_facts
from bench.entry import run_main
from bench.report import report

PROMPT_TOKENS, COMPLETION_TOKENS, IMAGE_TOKENS = (195, 215), (60, 256), 64


def preset_batch(rows: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Token types, attention mask and image grids of ``rows`` prompt-plus-completion sequences."""
    generator = np.random.default_rng(seed)
    prompt, completion = PROMPT_TOKENS[1], COMPLETION_TOKENS[1]
    types = np.zeros((rows, prompt + completion), dtype=np.int64)
    mask = np.zeros_like(types)
    for row in range(rows):
        prompt_length = int(generator.integers(PROMPT_TOKENS[0], prompt + 1))
        completion_length = int(generator.integers(COMPLETION_TOKENS[0], completion + 1))
        mask[row, prompt - prompt_length : prompt + completion_length] = 1
        image_start = prompt - prompt_length + 20
        types[row, image_start : image_start + IMAGE_TOKENS] = 1
    return {
        "input_ids": torch.zeros(types.shape, dtype=torch.long),
        "mm_token_type_ids": torch.from_numpy(types),
        "attention_mask": torch.from_numpy(mask),
        "image_grid_thw": torch.tensor([[1, 16, 16]] * rows),
    }


def milliseconds(call: Any, repeats: int) -> float:
    """The median wall time of ``call()`` over ``repeats`` calls, after one warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=512, help="sequences in the batch (a rollout's 512 at the preset)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    config = config_from_file(CONFIG_DIR / "models" / "small-qwen2-vl.json")
    core = Qwen2VLModel.__new__(Qwen2VLModel)  # only its config is read: no weights built
    core.__dict__["config"] = config
    batch = preset_batch(args.rows)
    theirs = MethodType(Qwen2VLModel.get_rope_index, core)
    ours = MethodType(batched_rope_index, core)
    same = all(torch.equal(a, b) for a, b in zip(ours(**batch), theirs(**batch), strict=True))
    rows = [
        {"implementation": name, "ms_per_batch": milliseconds(lambda call=call: call(**batch), args.repeats)}
        for name, call in (("transformers get_rope_index", theirs), ("batched_rope_index", ours))
    ]
    report(
        ["implementation", "ms_per_batch"],
        rows,
        args.out,
        **device_facts(),
        batch_rows=args.rows,
        repeats=args.repeats,
        seed=0,
        equal=same,
    )
    if not same:
        raise SystemExit("the two implementations disagree")


if __name__ == "__main__":
    run_main(main)
