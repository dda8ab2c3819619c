"""Does a model follow the student prompt's answer format before any training, with and without its image?

Usage: python -m bench.format_following --model M --data D [--split val] [--frames 8] [--samples 8] [--prefill TEXT]
[--example TEXT] [--out FILE]

For the first --frames frames of D's split, K sampled completions (temperature 1) of the student prompt, once
with the frame's images and once with the text alone, each scored as `eval --samples K` scores them
(`reward_signal`: share of samples in each reward format, groups whose rewards differ) and counted for each tag
of the format. It tells whether a model that `eval` finds out of format is derailed by its vision tokens (a random
vision tower in front of a pretrained language model) or does not follow the instruction at all. --prefill TEXT
starts every answer with TEXT (e.g. ``<think>``), which then counts as part of each completion; --example TEXT
adds TEXT to the instruction (e.g. one answer in the format), to see whether showing the format is enough.
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import PreTrainedModel, ProcessorMixin

from alphadrive_cli.actions import ActionVocabulary
from alphadrive_cli.artifacts.store import open_artifact
from alphadrive_cli.data.records import Record, dataset_vocabulary, iter_split
from alphadrive_cli.evaluation.metrics import reward_signal
from alphadrive_cli.models.generation import GenerationSettings, generate
from alphadrive_cli.models.loading import load_model_and_processor, resolve_model_source
from alphadrive_cli.prompts import STUDENT_PROMPT, driving_messages, load_prompt
from bench.common import device_facts
from bench.entry import run_main

TAGS = ("<think>", "</think>", "<answer>", "</answer>")


@dataclass(frozen=True)
class Variant:
    """How the student prompt is put: with the frame's images or not, a prefilled answer start, an added example."""

    images: bool
    prefill: str = ""
    example: str = ""


def sampled(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    data: Path,
    records: Sequence[Record],
    vocabulary: ActionVocabulary,
    samples: int,
    variant: Variant,
) -> list[list[str]]:
    """K completions per record of the student prompt put as ``variant`` says (the prefill included in each)."""
    template = load_prompt(STUDENT_PROMPT)
    prompts = []
    for record in records:
        images = len(record.images) if variant.images else 0
        messages = driving_messages(template, record.navigation, record.ego_speed_mps, images, vocabulary)
        if variant.example:
            messages[-1]["content"][-1]["text"] += "\n" + variant.example
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        prompts.append(prompt + variant.prefill)
    pictures = [
        [Image.open(data / path).convert("RGB") for path in record.images] if variant.images else []
        for record in records
    ]
    completions = generate(model, processor, prompts, pictures, GenerationSettings(256, samples, 1.0))
    return [[variant.prefill + text for text in row] for row in completions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model artifact, directory or hub id")
    parser.add_argument("--data", type=Path, required=True, help="data artifact")
    parser.add_argument("--split", default="val")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prefill", default="", help="text every answer starts with (e.g. '<think>')")
    parser.add_argument("--example", default="", help="text added to the instruction (e.g. one answer in the format)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    data = open_artifact(args.data)
    vocabulary = dataset_vocabulary(data)
    records = list(iter_split(data, args.split, vocabulary))[: args.frames]
    if not records:
        raise SystemExit(f"no frames to sample: the {args.split} split of {data.path.name} is empty or --frames is 0")
    model, processor = load_model_and_processor(resolve_model_source(args.model), dtype="auto", device_map="auto")
    model.eval()
    truths = [(record.speed_action, record.path_action) for record in records]
    model_name = Path(args.model).name if Path(args.model).exists() else args.model  # no path of this machine
    result: dict[str, Any] = {"model": model_name, "data": data.path.name, "split": args.split, "frames": len(records)}
    result.update(samples=args.samples, seed=args.seed, prefill=args.prefill, example=args.example, **device_facts())
    options = ["--split", args.split, "--frames", str(args.frames), "--samples", str(args.samples)]
    options += ["--seed", str(args.seed), *(["--prefill", args.prefill] if args.prefill else [])]
    options += ["--example", args.example] if args.example else []
    result["command"] = shlex.join(
        ["python", "-m", "bench.format_following", "--model", model_name, "--data", data.path.name, *options]
    )
    for name, images in (("with_images", True), ("text_only", False)):
        variant = Variant(images, args.prefill, args.example)
        texts = sampled(model, processor, data.path, records, vocabulary, args.samples, variant)
        flat = [text for row in texts for text in row]
        result[name] = {
            "tags": {tag: sum(tag in text for text in flat) for tag in TAGS},
            "reward_signal": reward_signal(texts, truths, vocabulary),
            "first_sample": flat[0][:300],
        }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    run_main(main)
