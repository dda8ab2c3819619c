"""The real 151k-token Qwen2 vocabulary through sft -> grpo -> eval, on a tiny random-weight Qwen2-VL laid out
as the ``Qwen/Qwen2-VL-2B-Instruct`` hub directory (tests/support/hub_layout.py): its files load, the SFT loss
falls on the assistant turn only, EOS and padding are Qwen2-VL's, and answers survive the tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from alphadrive_cli.actions import DEFAULT_VOCABULARY, format_completion, parse_answer
from alphadrive_cli.artifacts.store import OutputSpec, open_artifact
from alphadrive_cli.config.schemas import TinyModelConfig
from alphadrive_cli.data.records import iter_split
from alphadrive_cli.models.loading import load_model_and_processor, resolve_model_source
from alphadrive_cli.prompts import STUDENT_PROMPT, load_prompt
from alphadrive_cli.stages import models_tiny
from alphadrive_cli.training.sft_data import IGNORE_INDEX, VisionSFTCollator, sft_examples
from tests.support.hub_layout import write_hub_layout
from tests.support.labelled_data import make_labelled_data
from tests.test_qwen2_tokenizer import needs_dashscope

pytestmark = needs_dashscope

END_OF_TURN_ID, PAD_ID, IMAGE_PAD_ID = 151645, 151643, 151655
LABELS = [("KEEP", "STRAIGHT"), ("DECELERATE", "LEFT_CHANGE"), ("STOP", "STRAIGHT"), ("ACCELERATE", "RIGHT_TURN")]
REASONING = "The lead vehicle is slower; the left lane is free."


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("qwen2") / "runs"
    artifact = models_tiny.run(TinyModelConfig(tokenizer="qwen2"), OutputSpec(root)).path
    hub = write_hub_layout(artifact, root.parent / "Qwen2-VL-2B-Instruct")
    data = make_labelled_data(root, LABELS, {"train": range(4), "test": range(4)}, reasoning=REASONING)
    return {"artifact": artifact, "hub": hub, "data": data}


def test_the_hub_layout_loads_as_the_artifact_it_was_written_from(inputs) -> None:
    assert {"config.json", "model.safetensors.index.json", "preprocessor_config.json", "chat_template.json",
            "tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "generation_config.json"} <= {
        path.name for path in inputs["hub"].iterdir()}  # fmt: skip
    assert "text_config" not in json.loads((inputs["hub"] / "config.json").read_text())  # transformers 4's flat form
    names = json.loads((inputs["hub"] / "model.safetensors.index.json").read_text())["weight_map"]
    assert "model.embed_tokens.weight" in names and "visual.patch_embed.proj.weight" in names  # the hub's names
    assert not any(name.startswith(("model.language_model.", "model.visual.")) for name in names)
    hub_model, processor = load_model_and_processor(resolve_model_source(str(inputs["hub"])), dtype=torch.float32)
    own_model, _ = load_model_and_processor(resolve_model_source(str(inputs["artifact"])), dtype=torch.float32)
    assert hub_model.config.text_config.vocab_size == 151936 and len(processor.tokenizer) == 151657
    assert hub_model.config.text_config.rope_parameters["mrope_section"] == [2, 3, 3]
    assert hub_model.config.image_token_id == IMAGE_PAD_ID
    assert processor.tokenizer.eos_token_id == END_OF_TURN_ID and processor.tokenizer.pad_token_id == PAD_ID
    assert hub_model.generation_config.eos_token_id == [END_OF_TURN_ID, PAD_ID]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What now?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    batch = processor(text=[text], images=[Image.new("RGB", (64, 64), (90, 90, 90))], return_tensors="pt")
    assert int((batch["input_ids"] == IMAGE_PAD_ID).sum()) == batch["image_grid_thw"].prod() // 4
    with torch.no_grad():
        assert torch.equal(hub_model.eval()(**batch).logits, own_model.eval()(**batch).logits)


def test_sft_loss_falls_on_the_assistant_turn_and_its_end_only(inputs) -> None:
    _, processor = load_model_and_processor(resolve_model_source(str(inputs["hub"])))
    records = list(iter_split(open_artifact(inputs["data"]), "train", DEFAULT_VOCABULARY))[:2]
    examples = sft_examples(records, DEFAULT_VOCABULARY, reasoning=True)
    examples[1]["target"] += " And more words, so that the first row is padded."
    collator = VisionSFTCollator(processor, load_prompt(STUDENT_PROMPT), DEFAULT_VOCABULARY, inputs["data"], 1024)
    batch = collator(examples)
    for row, example in enumerate(examples):
        ids, labels, attention = batch["input_ids"][row], batch["labels"][row], batch["attention_mask"][row]
        supervised = ids[labels != IGNORE_INDEX].tolist()
        assert processor.tokenizer.decode(supervised) == example["target"] + "<|im_end|>"
        assert supervised.count(END_OF_TURN_ID) == 1 and supervised[-1] == END_OF_TURN_ID
        prompt = ids[(labels == IGNORE_INDEX) & (attention == 1)].tolist()
        assert processor.tokenizer.decode(prompt).startswith("<|im_start|>system\n")
        assert prompt[-3:] == processor.tokenizer("<|im_start|>assistant\n")["input_ids"]
        assert set(ids[attention == 0].tolist()) <= {PAD_ID}
    assert (batch["attention_mask"][0] == 0).any()  # the shorter row was padded, with <|endoftext|>


@pytest.mark.parametrize(("speed", "path"), [(s, p) for s in DEFAULT_VOCABULARY.speed for p in DEFAULT_VOCABULARY.path])
def test_answers_survive_the_tokenizer_eos_and_padding(inputs, speed: str, path: str) -> None:
    tokenizer = _tokenizer(inputs["hub"])
    completion = format_completion(REASONING, speed, path, DEFAULT_VOCABULARY)
    ids = tokenizer(completion + "<|im_end|>", add_special_tokens=False)["input_ids"] + [PAD_ID] * 3
    assert ids[-4] == END_OF_TURN_ID and max(ids[:-4]) < PAD_ID  # plain text never becomes a special token
    decoded = tokenizer.decode(ids + [151900], skip_special_tokens=True)  # 151900: an embedding row with no token
    assert decoded == completion
    parsed = parse_answer(decoded, DEFAULT_VOCABULARY)
    assert (parsed.speed, parsed.path) == ({speed}, {path})


_TOKENIZERS: dict[Path, object] = {}


def _tokenizer(hub: Path):
    if hub not in _TOKENIZERS:
        _TOKENIZERS[hub] = load_model_and_processor(resolve_model_source(str(hub)))[1].tokenizer
    return _TOKENIZERS[hub]


@pytest.mark.slow
def test_sft_grpo_eval_on_the_hub_layout(inputs, cli, tmp_path: Path) -> None:
    def run(*args: str) -> Path:
        result = cli(*args, "--out-root", tmp_path)
        assert result.exit_code == 0, result.stderr
        return Path(result.stdout.strip())

    data = str(inputs["data"])
    student = run("sft", "--data", data, "--model", str(inputs["hub"]), "--set", "max_steps=2")
    policy = run("grpo", "--data", data, "--init", str(student), "--set", "max_steps=1",
                 "--set", "max_completion_length=8")  # fmt: skip
    report = run("eval", "--model", str(policy), "--data", data, "--set", "max_new_tokens=8")
    manifest = open_artifact(report).manifest
    assert manifest["counts"]["frames"] == 4
    predictions = [json.loads(line) for line in (report / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 4 and all("<|" not in prediction["text"] for prediction in predictions)
    history = json.loads((policy / "log_history.json").read_text())
    assert any("reward" in entry for entry in history)
