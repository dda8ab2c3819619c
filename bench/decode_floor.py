"""Rollout decoding against its physical floor: plain `generate`, static KV cache with compiled decoding, folded GQA,
graph decoding.

Usage (one CUDA GPU): python -m bench.decode_floor --batch 64 --new-tokens 128 --out docs/bench/decode_h100.json
CPU smoke test (tiny model, nothing compiles): python -m bench.decode_floor --tiny --batch 4 --new-tokens 8

The model is the Qwen2-VL-2B architecture with random bf16 weights, the prompts are GRPO's (student
template, one 448x448 frame each, the frames of the synthetic data set in bench/grpo_speed.py), sampling
as TRL's GRPOTrainer sets it (temperature 1, no top-k/top-p, image token suppressed). Each route is timed
for 1 and for N+1 new tokens; decode time per step = the difference / N (prefill, vision tower included,
cancels). Every completion is forced to N tokens. The third route also decodes with
:func:`~alphadrive_cli.models.decode_attention.folded_gqa_attention`; the fourth is what the grpo stage runs
with `compile_generation`: that attention and :func:`~alphadrive_cli.models.graph_decoding.graph_sample`, the
model step, sampling and stop bookkeeping of every step after the first in one CUDA graph (on the CPU it runs
eagerly: the smoke test checks its tokens and logits). The floor is the fewest bytes a decode step must read
(the language model's weights once, plus the KV cache of every sequence at its mean context length) over
the device-to-device copy bandwidth measured here.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch._dynamo.utils import counters
from transformers import GenerationConfig, PretrainedConfig

from alphadrive_cli.artifacts.store import open_artifact
from alphadrive_cli.data.records import dataset_vocabulary, iter_split
from alphadrive_cli.models.decode_attention import use_folded_gqa
from alphadrive_cli.models.graph_decoding import use_graph_decoding
from alphadrive_cli.models.loading import build_random_model, load_model_and_processor, resolve_model_source
from alphadrive_cli.prompts import STUDENT_PROMPT, load_prompt, student_messages
from bench.common import bench_inputs, device_facts
from bench.entry import run_main
from bench.report import report

ROUTES = (  # (route, static cache + compiled decoding, folded-GQA attention, graph decoding)
    ("plain generate (dynamic cache, eager)", False, False, False),
    ("static KV cache + compiled decoding (CUDA graphs)", True, False, False),
    ("+ folded-GQA decode attention", True, True, False),
    ("+ graph decoding: step, sampling and stop checks in one CUDA graph (compile_generation)", True, True, True),
)


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def copy_bandwidth(gib: float = 2.0, repeats: int = 20) -> float:
    """Bytes per second of a large device-to-device copy, counting bytes read plus bytes written (median)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    source = torch.randn(int(gib * 2**30) // 4, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    times = []
    for _ in range(repeats):
        synchronize()
        started = time.perf_counter()
        target.copy_(source)
        synchronize()
        times.append(time.perf_counter() - started)
    return 2 * source.numel() * source.element_size() / statistics.median(times)


def weight_bytes(config: PretrainedConfig, element_size: int = 2) -> int:
    """Bytes of the weights one decode step reads: the language model and its output layer (a tied one once)."""
    model = build_random_model(config, device="meta")
    weights = {id(p): p for p in [*model.model.language_model.parameters(), model.lm_head.weight]}
    return sum(p.numel() for p in weights.values()) * element_size


def kv_bytes_per_token(config: PretrainedConfig, element_size: int = 2) -> int:
    """Bytes of keys and values one token holds in the cache, over all layers."""
    text = config.get_text_config()
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return text.num_hidden_layers * 2 * text.num_key_value_heads * head_dim * element_size


def floor_tokens_per_s(config: PretrainedConfig, batch: int, prompt: float, new_tokens: int, bandwidth: float) -> float:
    """Decode tokens/s if every step only streamed its bytes at ``bandwidth``: weights plus the KV cache of
    ``batch`` sequences at their mean context length over the completion."""
    context = prompt + (new_tokens - 1) / 2
    step_bytes = weight_bytes(config) + batch * context * kv_bytes_per_token(config)
    return batch * bandwidth / step_bytes


def rollout_inputs(
    model_path: Path, data_path: Path, batch: int, device: str
) -> tuple[Any, Any, dict[str, torch.Tensor]]:
    """The model (eval mode), its processor and a left-padded batch of GRPO prompts with their frames."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model, processor = load_model_and_processor(resolve_model_source(str(model_path)), dtype=dtype, device_map=device)
    model.eval()
    data = open_artifact(data_path, check=False)
    vocabulary = dataset_vocabulary(data)
    records = list(iter_split(data, "train", vocabulary))[:batch]
    template = load_prompt(STUDENT_PROMPT)
    texts = [
        processor.apply_chat_template(
            student_messages(template, record, vocabulary), add_generation_prompt=True, tokenize=False
        )
        for record in records
    ]
    images = [[Image.open(data.path / image).convert("RGB") for image in record.images] for record in records]
    processor.tokenizer.padding_side = "left"
    inputs = processor(text=texts, images=images, return_tensors="pt", padding=True).to(device)
    return model, processor, dict(inputs)


def sampling_config(model: Any, processor: Any, compiled: bool) -> GenerationConfig:
    """TRL GRPOTrainer's sampling settings; ``compiled``: static KV cache and a compiled decoding step."""
    return GenerationConfig(
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        repetition_penalty=1.0,
        pad_token_id=processor.tokenizer.pad_token_id,
        eos_token_id=processor.tokenizer.eos_token_id,
        suppress_tokens=[model.config.image_token_id],
        cache_implementation="static" if compiled else None,
        disable_compile=not compiled,
    )


def generate(
    model: Any, inputs: dict[str, torch.Tensor], config: GenerationConfig, new_tokens: int, **settings: Any
) -> Any:
    """``new_tokens`` exactly, with ``config`` updated by ``settings``."""
    config = copy.deepcopy(config)
    config.update(max_new_tokens=new_tokens, min_new_tokens=new_tokens, **settings)
    with torch.no_grad():
        return model.generate(**inputs, generation_config=config)


def seconds(model: Any, inputs: dict[str, torch.Tensor], config: GenerationConfig, new_tokens: int) -> float:
    synchronize()
    started = time.perf_counter()
    out = generate(model, inputs, config, new_tokens)
    synchronize()
    assert out.shape[1] == inputs["input_ids"].shape[1] + new_tokens
    return time.perf_counter() - started


def first_decode_logits(model: Any, inputs: dict[str, torch.Tensor], config: GenerationConfig) -> torch.Tensor:
    """Greedy logits of the first decoding step after the prefill (the first step the compiled route compiles)."""
    out = generate(model, inputs, config, 2, do_sample=False, output_logits=True, return_dict_in_generate=True)
    return out.logits[1].float()


def graph_vs_uncaptured(
    model: Any, inputs: dict[str, torch.Tensor], config: GenerationConfig, new_tokens: int = 32
) -> dict[str, float]:
    """The graph route's greedy tokens and logits against its own compiled step run without a CUDA graph (the
    same kernels: equal unless capture or replay changes something); settings as :func:`first_decode_logits`'s,
    so nothing new compiles."""
    graph, eager = (
        generate(
            model,
            inputs,
            config,
            new_tokens,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
            cuda_graph=captured,
        )
        for captured in (True, False)
    )
    difference = max(
        (a.float() - b.float()).abs().max().item() for a, b in zip(graph.logits, eager.logits, strict=False)
    )
    return {
        "greedy_tokens_vs_uncaptured": round((graph.sequences == eager.sequences).float().mean().item(), 4),
        "max_logit_difference_vs_uncaptured": difference,
    }


def sampled_spread(
    model: Any, inputs: dict[str, torch.Tensor], config: GenerationConfig, new_tokens: int = 32
) -> float:
    """Share of distinct tokens among those sampled when every logit is equal (the final norm zeroed for the
    call): about 1 when every step draws fresh noise, far less if graph replays repeated the first's."""
    norm = model.model.language_model.norm.weight
    saved = norm.detach().clone()
    with torch.no_grad():
        norm.zero_()
    try:
        new = generate(model, inputs, config, new_tokens)[:, inputs["input_ids"].shape[1] :]
    finally:
        with torch.no_grad():
            norm.copy_(saved)
    return new.unique().numel() / new.numel()


def measure(
    model: Any, inputs: dict[str, torch.Tensor], config: GenerationConfig, new_tokens: int, repeats: int
) -> dict[str, Any]:
    """Warm-up (compilation included), then median prefill-only and full times; decode per step from the difference."""
    warmup = seconds(model, inputs, config, new_tokens + 1)
    prefill = statistics.median(seconds(model, inputs, config, 1) for _ in range(repeats))
    full = statistics.median(seconds(model, inputs, config, new_tokens + 1) for _ in range(repeats))
    step = (full - prefill) / new_tokens
    batch = inputs["input_ids"].shape[0]
    return {
        "warmup_s": round(warmup, 2),
        "prefill_s": round(prefill, 3),
        "decode_ms_per_step": round(step * 1e3, 3),
        "decode_tokens_per_s": round(batch / step, 1),
        "end_to_end_tokens_per_s": round(batch * new_tokens / full, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--routes", type=int, nargs="+", default=list(range(len(ROUTES))), help="which routes to run (0: plain)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the model and data are built (reused if there)"
    )
    parser.add_argument("--tiny", action="store_true", help="the tiny model on the CPU: a smoke test of this script")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    device = "cpu" if args.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU (or --tiny)")
    model_path, data_path = bench_inputs(args.workdir, args.tiny, frames=args.batch)
    model, processor, inputs = rollout_inputs(model_path, data_path, args.batch, device)
    bandwidth = copy_bandwidth(0.25 if args.tiny else 2.0)
    prompt = inputs["attention_mask"].sum(dim=1).float().mean().item()
    floor = floor_tokens_per_s(model.config, args.batch, prompt, args.new_tokens, bandwidth)
    facts = {
        **device_facts(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch": args.batch,
        "new_tokens": args.new_tokens,
        "prompt_tokens_mean": round(prompt, 1),
        "repeats": args.repeats,
        "copy_bandwidth_gb_s": round(bandwidth / 1e9, 1),
        "weight_bytes_per_step": weight_bytes(model.config),
        "kv_bytes_per_token": kv_bytes_per_token(model.config),
        "seed": 0,
    }
    print(" ".join(f"{key}={value}" for key, value in facts.items()))
    rows: list[dict[str, Any]] = []
    logits: list[torch.Tensor] = []
    for route, compiled, folded, graphs in (ROUTES[index] for index in args.routes):
        if folded:
            use_folded_gqa(model)
        if graphs:
            use_graph_decoding(model)
        config = sampling_config(model, processor, compiled)
        torch.manual_seed(0)
        row: dict[str, Any] = {"route": route}
        rows.append(row)
        try:
            row.update(measure(model, inputs, config, args.new_tokens, args.repeats))
            row["compiled"] = hasattr(model, "_compiled_call")
            row["compiled_graphs"] = counters["stats"]["unique_graphs"]
            row["floor_tokens_per_s"] = round(floor, 1)
            row["ratio_to_floor"] = round(row["decode_tokens_per_s"] / floor, 4)
            row["speedup"] = round(row["decode_tokens_per_s"] / rows[0]["decode_tokens_per_s"], 2)
            step_logits = first_decode_logits(model, inputs, config)
            plain_logits = logits[0] if logits else step_logits
            row["logits_vs_plain"] = round(((step_logits - plain_logits).norm() / plain_logits.norm()).item(), 5)
            logits.append(step_logits)
            if graphs:
                row.update(graph_vs_uncaptured(model, inputs, config))
                row["sampled_distinct_share_uniform"] = round(sampled_spread(model, inputs, config), 4)
        except Exception as error:  # a failing route is reported, the others are still measured
            traceback.print_exc()
            row["error"] = f"{type(error).__name__}: {error}"[:300]
        # after every route, so that a run cut short keeps the routes it finished
        report(
            (
                "route",
                "decode_tokens_per_s",
                "decode_ms_per_step",
                "floor_tokens_per_s",
                "ratio_to_floor",
                "speedup",
                "prefill_s",
                "warmup_s",
                "logits_vs_plain",
                "greedy_tokens_vs_uncaptured",
                "max_logit_difference_vs_uncaptured",
                "sampled_distinct_share_uniform",
                "error",
            ),
            rows,
            args.out,
            **facts,
        )


if __name__ == "__main__":
    run_main(main)
