"""SFT examples and the vision-language collator: loss on the assistant turn only.

Each example is the student prompt of a frame (its images, navigation and speed, rendered with the
student template exactly as at evaluation time) followed by the target
``<think>reasoning</think><answer>SPEED, PATH</answer>`` (answer only without reasoning). The
collator tokenises the prompt through the processor (which expands the image placeholders) and the
target with the tokenizer alone, then concatenates them: the model is trained on the very token
boundary it continues from at generation time. Prompt and padding tokens get label -100; the target
and the end-of-turn token ``<|im_end|>`` are supervised. Real Qwen2-VL chat templates have no
``{% generation %}`` markers, so masking is done here rather than by TRL's ``assistant_only_loss``.
With ``perception_examples`` a frame also teaches a question only its images answer (``prompts/perception-v1.txt``,
no speed, no instruction), answered with what its scene facts say one image shows.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import ProcessorMixin

from alphadrive_cli.actions import ActionVocabulary, format_answer, format_completion
from alphadrive_cli.data.records import Record
from alphadrive_cli.errors import StageFailure
from alphadrive_cli.prompts import PromptTemplate, scene_phrasing, student_messages, user_turn
from alphadrive_cli.teacher.grounded import scene_description

END_OF_TURN = "<|im_end|>"
IGNORE_INDEX = -100


def sft_target(record: Record, vocabulary: ActionVocabulary, reasoning: bool) -> str:
    """The assistant text a record teaches (without the end-of-turn token)."""
    if reasoning:
        if not record.reasoning:
            raise ValueError(f"record {record.id} has no reasoning trace")
        return format_completion(record.reasoning, record.speed_action, record.path_action, vocabulary)
    return f"<answer>{format_answer(record.speed_action, record.path_action, vocabulary)}</answer>"


def sft_examples(
    records: Iterable[Record], vocabulary: ActionVocabulary, reasoning: bool, perception: bool = False
) -> list[dict[str, Any]]:
    """Plain-dict training examples (what ``datasets.Dataset.from_list`` takes): the frame and its target; with
    ``perception``, after them one more for each frame whose scene facts one image shows: the perception prompt
    (its images alone) answered with what they show (:func:`perception_target`)."""
    records = list(records)
    examples = [_example(record, "plan", sft_target(record, vocabulary, reasoning)) for record in records]
    if perception:
        targets = ((record, perception_target(record)) for record in records)
        examples += [_example(record, "perception", target) for record, target in targets if target]
    return examples


def perception_target(record: Record) -> str:
    """What the record's images show, from its scene facts in the grounded teacher's phrasing (a draw fixed by
    the record's id); empty where it has none."""
    return scene_description(record.scene or {}, random.Random(f"{record.id}/perception"), scene_phrasing())


def _example(record: Record, task: str, target: str) -> dict[str, Any]:
    # the whole record as one JSONL line: the prompt is built from it as eval builds it (its scene facts included),
    # and an Arrow table cannot hold scene dicts whose keys differ by frame
    return {"id": record.id, "task": task, "images": list(record.images), "target": target, "record": record.to_json()}


def _record(example: dict[str, Any]) -> Record:
    return Record.model_validate_json(example["record"])


class VisionSFTCollator:
    """Batches SFT examples into ``input_ids``, ``attention_mask``, ``pixel_values``, ``image_grid_thw``,
    ``labels`` (and ``mm_token_type_ids`` where the processor gives them, as transformers 5 does)."""

    def __init__(
        self,
        processor: ProcessorMixin,
        template: PromptTemplate,
        vocabulary: ActionVocabulary,
        data_root: Path,
        max_length: int,
        perception_template: PromptTemplate | None = None,
    ) -> None:
        self.processor = processor
        self.perception_template = perception_template
        self.tokenizer = processor.tokenizer
        self.template = template
        self.vocabulary = vocabulary
        self.data_root = Path(data_root)
        self.max_length = max_length
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.tokenizer.convert_tokens_to_ids(END_OF_TURN)

    def prompt_text(self, example: dict[str, Any]) -> str:
        if example.get("task") == "perception":
            if self.perception_template is None:
                raise StageFailure("a perception example needs the collator's perception_template")
            messages = user_turn(self.perception_template.render(), len(example["images"]))
        else:
            messages = student_messages(self.template, _record(example), self.vocabulary)
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows: list[tuple[list[int], list[int]]] = []
        token_types: list[list[int] | None] = []
        pixel_values, grids = [], []
        for example in examples:
            images = [Image.open(self.data_root / image).convert("RGB") for image in example["images"]]
            prompt = self.processor(text=[self.prompt_text(example)], images=images or None, return_tensors="pt")
            prompt_ids = prompt["input_ids"][0].tolist()
            if len(prompt_ids) >= self.max_length:
                raise StageFailure(
                    f"the prompt of {example['id']} is {len(prompt_ids)} tokens, more than max_length "
                    f"{self.max_length}: raise max_length or lower the processor's max_pixels"
                )
            target_ids = self.tokenizer(example["target"] + END_OF_TURN, add_special_tokens=False)["input_ids"]
            target_ids = target_ids[: self.max_length - len(prompt_ids)]
            rows.append((prompt_ids, target_ids))
            # transformers 5 computes M-RoPE positions from which tokens are image tokens
            token_types.append(prompt["mm_token_type_ids"][0].tolist() if "mm_token_type_ids" in prompt else None)
            if "pixel_values" in prompt:
                pixel_values.append(prompt["pixel_values"])
                grids.append(prompt["image_grid_thw"])
        width = max(len(p) + len(t) for p, t in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        types = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (prompt_ids, target_ids) in enumerate(rows):  # right padding: training needs no left alignment
            length = len(prompt_ids) + len(target_ids)
            input_ids[i, :length] = torch.tensor(prompt_ids + target_ids)
            attention[i, :length] = 1
            labels[i, len(prompt_ids) : length] = torch.tensor(target_ids)
            if token_types[i] is not None:
                types[i, : len(prompt_ids)] = torch.tensor(token_types[i])
        batch = {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
        if any(row is not None for row in token_types):
            batch["mm_token_type_ids"] = types
        if pixel_values:
            batch["pixel_values"] = torch.cat(pixel_values)
            batch["image_grid_thw"] = torch.cat(grids)
        return batch
