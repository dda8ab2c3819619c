"""``alphadrive models build``: a Qwen2-VL ``model`` artifact whose language model is pretrained, built offline."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import PreTrainedModel, ProcessorMixin

from alphadrive_cli.artifacts.store import Artifact, OutputSpec
from alphadrive_cli.config.schemas import BuildModelConfig
from alphadrive_cli.models.pretrained import BUILD_STEPS, LOGIT_TOLERANCE, build_pretrained_model
from alphadrive_cli.ui import progress_bar, quiet_transformers

SAMPLE_QUESTION = "The car ahead brakes hard. What should I do? Answer in one sentence."
SAMPLE_TOKENS = 40


@torch.no_grad()
def sample_answer(model: PreTrainedModel, processor: ProcessorMixin) -> str:
    """The model's greedy answer to :data:`SAMPLE_QUESTION` (text only), before any training."""
    messages = [{"role": "user", "content": [{"type": "text", "text": SAMPLE_QUESTION}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=SAMPLE_TOKENS, do_sample=False)
    return processor.tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def run(config: BuildModelConfig, output: OutputSpec) -> Artifact:
    """Build the model and publish it (``save_pretrained`` layout, safetensors) as a ``model`` artifact; the
    manifest says which parts are pretrained and where from."""
    with output.begin("model", f"{config.language}-qwen2-vl", config.model_dump()) as writer:
        with progress_bar("steps") as progress, quiet_transformers():
            task = progress.add_task(BUILD_STEPS[0], total=len(BUILD_STEPS) + 1, note="")

            def step(name: str) -> None:
                if name != BUILD_STEPS[0]:
                    progress.advance(task)
                progress.update(task, description=name)

            built = build_pretrained_model(
                config.language,
                Path(config.vision_dims) if config.vision_dims else None,
                config.seed,
                config.min_pixels,
                config.max_pixels,
                dtype=getattr(torch, config.dtype),
                on_step=step,
            )
            progress.advance(task)
            progress.update(task, description="saving")
            answer = sample_answer(built.model, built.processor)
            built.model.save_pretrained(writer.dir)
            built.processor.save_pretrained(writer.dir)
            progress.advance(task)
        model = built.model
        return writer.publish(
            counts={
                "parameters": sum(parameter.numel() for parameter in model.parameters()),
                "vision_parameters": sum(parameter.numel() for parameter in model.model.visual.parameters()),
                "vocab_size": len(built.processor.tokenizer),
            },
            metrics={"text_logit_max_abs_diff": built.logit_gap, "text_logit_tolerance": LOGIT_TOLERANCE},
            extra={
                "model": {"family": "qwen2_vl", "source": "pretrained-language", **built.provenance},
                "sample": {"question": SAMPLE_QUESTION, "answer": answer},
            },
        )
