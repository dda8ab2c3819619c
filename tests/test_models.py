"""Tests for alphadrive_cli.models: offline tokenizer, tiny model builder, loading and model artifacts.

Everything runs offline on CPU: the tiny models are built from the offline BPE tokenizer and random
weights, and nothing is ever fetched from the hub (conftest sets HF_HUB_OFFLINE for the session).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoProcessor, Qwen2VLProcessor
from transformers.utils import is_torchvision_available

from alphadrive_cli.artifacts.store import MANIFEST_NAME, OutputSpec, begin
from alphadrive_cli.config.schemas import TinyModelConfig
from alphadrive_cli.errors import BadInput
from alphadrive_cli.models.loading import (
    build_random_model,
    config_from_file,
    load_model_and_processor,
    resolve_model_source,
)
from alphadrive_cli.models.processor import image_only_processor_class
from alphadrive_cli.models.tiny import build_tiny_model
from alphadrive_cli.models.tokenizer import (
    END_OF_TURN,
    IMAGE_TOKEN,
    PAD_TOKEN,
    SPECIAL_TOKENS,
    VISION_END,
    VISION_START,
    build_tokenizer,
)
from alphadrive_cli.resources import CONFIG_DIR
from alphadrive_cli.stages import models_tiny
from alphadrive_cli.stages.models_inspect import describe_model
from tests.support.tiny_inputs import (
    ASSISTANT_HEADER,
    IMAGE_BLOCK,
    MAX_PIXELS,
    MIN_PIXELS,
    SEED,
    VOCAB,
    assistant_marked_text,
    image,
    prompt,
    tiny,
)


def user_message(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


@pytest.fixture(scope="module")
def tiny_qwen2_vl():
    model, processor = tiny()
    model.eval()
    return model, processor


@pytest.fixture(scope="module")
def tiny_artifact(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("runs")
    artifact = models_tiny.run(TinyModelConfig(), OutputSpec(root))
    return root, artifact


# --------------------------------------------------------------------------------------------------
# 1. Tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(VOCAB)


@pytest.mark.parametrize("token", SPECIAL_TOKENS)
def test_special_tokens_encode_to_one_id(tokenizer, token: str) -> None:
    ids = tokenizer.encode(token, add_special_tokens=False)
    assert len(ids) == 1
    assert tokenizer.convert_ids_to_tokens(ids[0]) == token
    # Also inside running text, next to ordinary characters.
    ids = tokenizer.encode(f"ab{token}cd", add_special_tokens=False)
    assert ids.count(tokenizer.convert_tokens_to_ids(token)) == 1


def test_special_tokens_have_distinct_ids(tokenizer) -> None:
    ids = [tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS]
    assert len(set(ids)) == len(SPECIAL_TOKENS)
    assert tokenizer.unk_token_id not in ids or tokenizer.unk_token_id is None


def test_eos_and_pad_tokens(tokenizer) -> None:
    assert tokenizer.eos_token == END_OF_TURN == "<|im_end|>"
    assert tokenizer.pad_token == PAD_TOKEN == "<|endoftext|>"
    assert tokenizer.eos_token_id != tokenizer.pad_token_id
    assert tokenizer.padding_side == "left"


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=200))
def test_text_round_trips_through_byte_level_bpe(tokenizer, text: str) -> None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False) == text


@pytest.mark.parametrize(
    "text", ["", "  leading and trailing  ", "héllo 🚗 世界\n\t", "\x00\x7f\u200b", "<think>slow down</think>"]
)
def test_text_round_trip_examples(tokenizer, text: str) -> None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids, skip_special_tokens=False) == text


def test_tokenizer_learned_merges(tokenizer) -> None:
    # Trained on driving text, common words compress well below one token per byte.
    text = "The ego vehicle should slow down"
    assert len(tokenizer.encode(text, add_special_tokens=False)) < len(text.encode()) / 2
    assert len(tokenizer) <= VOCAB


def test_tokenizer_is_deterministic(tokenizer) -> None:
    again = build_tokenizer(VOCAB)
    assert again.get_vocab() == tokenizer.get_vocab()
    text = "Approaching the roundabout: KEEP lane, 🚦 then accelerate."
    assert again.encode(text) == tokenizer.encode(text)


# --------------------------------------------------------------------------------------------------
# 2. Tiny Qwen2-VL build


def test_chat_template_user_turn_with_image(tiny_qwen2_vl) -> None:
    _, processor = tiny_qwen2_vl
    text = processor.apply_chat_template(
        user_message("What should the ego vehicle do?"), add_generation_prompt=True, tokenize=False
    )
    assert text.startswith("<|im_start|>user\n")
    assert IMAGE_BLOCK + "What should the ego vehicle do?" in text
    assert text.count(IMAGE_TOKEN) == 1
    assert text.endswith(ASSISTANT_HEADER)
    without_prompt = processor.apply_chat_template(user_message("x"), add_generation_prompt=False, tokenize=False)
    assert not without_prompt.endswith(ASSISTANT_HEADER)
    assert without_prompt.rstrip().endswith(END_OF_TURN)


@pytest.mark.parametrize(
    "content",
    ["<answer>DECELERATE, KEEP</answer>", [{"type": "text", "text": "<answer>DECELERATE, KEEP</answer>"}]],
    ids=["string", "parts"],
)
def test_chat_template_renders_assistant_turn(tiny_qwen2_vl, content) -> None:
    _, processor = tiny_qwen2_vl
    messages = user_message("What now?") + [{"role": "assistant", "content": content}]
    text = processor.apply_chat_template(messages, tokenize=False)
    assert ASSISTANT_HEADER + "<answer>DECELERATE, KEEP</answer>" + END_OF_TURN in text
    assert text.index(IMAGE_BLOCK) < text.index(ASSISTANT_HEADER)


def test_chat_template_marks_assistant_tokens(tiny_qwen2_vl) -> None:
    _, processor = tiny_qwen2_vl
    answer = "<answer>ACCELERATE, STRAIGHT</answer>"
    messages = [{"role": "user", "content": "Go?"}, {"role": "assistant", "content": answer}]
    assert assistant_marked_text(processor, messages) == answer + END_OF_TURN


def test_processor_expands_image_pad(tiny_qwen2_vl) -> None:
    _, processor = tiny_qwen2_vl
    batch = processor(text=[prompt("What now?")], images=[image()], return_tensors="pt")
    grid = batch["image_grid_thw"]
    assert grid.tolist() == [[1, 8, 8]]  # 112 px / 14 px patches
    merge = processor.image_processor.merge_size
    assert merge == 2
    expected = int(grid.prod()) // merge**2
    image_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert int((batch["input_ids"] == image_id).sum()) == expected == 16
    assert batch["pixel_values"].shape[0] == int(grid.prod())
    # The expanded pads sit between vision start and end, contiguously.
    ids = batch["input_ids"][0].tolist()
    start = ids.index(processor.tokenizer.convert_tokens_to_ids(VISION_START))
    assert ids[start + 1 : start + 1 + expected] == [image_id] * expected
    assert ids[start + 1 + expected] == processor.tokenizer.convert_tokens_to_ids(VISION_END)


def test_processor_respects_pixel_bounds(tiny_qwen2_vl) -> None:
    _, processor = tiny_qwen2_vl
    big = processor(text=[prompt("x")], images=[image(size=448)], return_tensors="pt")["image_grid_thw"][0]
    small = processor(text=[prompt("x")], images=[image(size=28)], return_tensors="pt")["image_grid_thw"][0]
    patch = 14
    assert int(big[1] * big[2]) * patch * patch <= MAX_PIXELS
    assert int(small[1] * small[2]) * patch * patch >= MIN_PIXELS


def test_forward_logits(tiny_qwen2_vl) -> None:
    model, processor = tiny_qwen2_vl
    batch = processor(text=[prompt("What now?")], images=[image()], return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], len(processor.tokenizer))
    assert model.config.text_config.vocab_size == len(processor.tokenizer)
    assert torch.isfinite(logits).all()
    # The image matters: a different picture changes the logits after the image.
    other = processor(text=[prompt("What now?")], images=[image((200, 10, 40))], return_tensors="pt")
    with torch.no_grad():
        other_logits = model(**other).logits
    assert not torch.allclose(logits[0, -1], other_logits[0, -1])


def test_generate_batch_with_left_padding(tiny_qwen2_vl) -> None:
    model, processor = tiny_qwen2_vl
    texts = [prompt("Go?"), prompt("The lead vehicle is close and slower; what should the ego vehicle do now?")]
    batch = processor(text=texts, images=[image(), image((5, 90, 200))], return_tensors="pt", padding=True)
    mask = batch["attention_mask"]
    assert mask[0, 0] == 0 and mask[0, -1] == 1 and mask[1].all()  # left padding of the shorter prompt
    pad_id = processor.tokenizer.pad_token_id
    assert (batch["input_ids"][0][mask[0] == 0] == pad_id).all()
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=5, do_sample=False)
    prompt_len = batch["input_ids"].shape[1]
    assert out.shape[0] == 2
    assert prompt_len < out.shape[1] <= prompt_len + 5
    assert torch.equal(out[:, :prompt_len], batch["input_ids"])
    new = out[:, prompt_len:]
    assert ((new >= 0) & (new < len(processor.tokenizer))).all()

    # Left padding must not change what the shorter prompt sees: its next-token logits alone
    # match its row in the padded batch.
    single = processor(text=texts[:1], images=[image()], return_tensors="pt")
    with torch.no_grad():
        alone = model(**single).logits[0, -1]
        padded = model(**batch).logits[0, -1]
    torch.testing.assert_close(padded, alone, atol=1e-4, rtol=1e-4)


def test_same_seed_same_weights_different_seed_different_weights(tiny_qwen2_vl) -> None:
    model, _ = tiny_qwen2_vl
    same, _ = tiny(seed=SEED)
    other, _ = tiny(seed=SEED + 1)
    reference = model.state_dict()
    assert reference.keys() == same.state_dict().keys() == other.state_dict().keys()
    for key, value in same.state_dict().items():
        assert torch.equal(value, reference[key]), key
    differing = [key for key, value in other.state_dict().items() if not torch.equal(value, reference[key])]
    # Every randomly initialised matrix differs (norm weights and biases start as constants).
    assert any("embed_tokens" in key for key in differing)
    assert any("visual" in key for key in differing)


def test_generation_config_tokens(tiny_qwen2_vl) -> None:
    model, processor = tiny_qwen2_vl
    tok = processor.tokenizer
    assert model.generation_config.eos_token_id == tok.convert_tokens_to_ids(END_OF_TURN)
    assert model.generation_config.pad_token_id == tok.convert_tokens_to_ids(PAD_TOKEN)
    assert model.config.image_token_id == tok.convert_tokens_to_ids(IMAGE_TOKEN)
    assert model.config.vision_start_token_id == tok.convert_tokens_to_ids(VISION_START)
    assert model.config.vision_end_token_id == tok.convert_tokens_to_ids(VISION_END)


# --------------------------------------------------------------------------------------------------
# 3. Qwen2.5-VL


def test_qwen2_5_vl_builds_and_runs() -> None:
    model, processor = tiny("qwen2_5_vl")
    model.eval()
    assert model.config.model_type == "qwen2_5_vl"
    batch = processor(text=[prompt("What now?")], images=[image()], return_tensors="pt")
    image_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert int((batch["input_ids"] == image_id).sum()) == int(batch["image_grid_thw"].prod()) // 4
    with torch.no_grad():
        logits = model(**batch).logits
        out = model.generate(**batch, max_new_tokens=5, do_sample=False)
    assert logits.shape == (1, batch["input_ids"].shape[1], len(processor.tokenizer))
    assert torch.isfinite(logits).all()
    assert batch["input_ids"].shape[1] < out.shape[1] <= batch["input_ids"].shape[1] + 5


# --------------------------------------------------------------------------------------------------
# 4. Model artifact round trip


def test_artifact_is_published(tiny_artifact) -> None:
    root, artifact = tiny_artifact
    assert artifact.path == root / "model" / "tiny-qwen2-vl-v1"
    assert (artifact.path / MANIFEST_NAME).is_file()
    assert (artifact.path / "config.json").is_file()
    assert artifact.stage == "model"
    assert artifact.manifest["model"]["family"] == "qwen2_vl"
    assert not list((root / "model").glob(".*.partial"))
    source = resolve_model_source(str(artifact.path))
    assert source.kind == "artifact"
    assert source.location == str(artifact.path)
    assert source.artifact is not None and source.artifact.content_hash == artifact.content_hash


def test_artifact_reloads_with_same_logits_and_inputs(tiny_artifact, tiny_qwen2_vl) -> None:
    _, artifact = tiny_artifact
    in_memory, in_memory_processor = tiny_qwen2_vl  # same family, seed and sizes as TinyModelConfig()
    model, processor = load_model_and_processor(resolve_model_source(str(artifact.path)))
    model.eval()
    assert model.dtype == torch.float32
    assert artifact.manifest["counts"]["parameters"] == sum(p.numel() for p in model.parameters())

    texts = [prompt("Go?"), prompt("Is the left lane free for an overtake?")]
    images = [image(), image((1, 2, 3))]
    loaded_batch = processor(text=texts, images=images, return_tensors="pt", padding=True)
    memory_batch = in_memory_processor(text=texts, images=images, return_tensors="pt", padding=True)
    assert torch.equal(loaded_batch["input_ids"], memory_batch["input_ids"])
    assert torch.equal(loaded_batch["image_grid_thw"], memory_batch["image_grid_thw"])
    torch.testing.assert_close(loaded_batch["pixel_values"], memory_batch["pixel_values"])
    assert processor.chat_template == in_memory_processor.chat_template
    assert processor.tokenizer.get_vocab() == in_memory_processor.tokenizer.get_vocab()
    assert processor.tokenizer.padding_side == "left"

    torch.manual_seed(0)
    with torch.no_grad():
        loaded_logits = model(**loaded_batch).logits
        memory_logits = in_memory(**memory_batch).logits
    torch.testing.assert_close(loaded_logits, memory_logits, atol=1e-5, rtol=1e-5)

    with torch.no_grad():
        loaded_out = model.generate(**loaded_batch, max_new_tokens=5, do_sample=False)
        memory_out = in_memory.generate(**memory_batch, max_new_tokens=5, do_sample=False)
    assert torch.equal(loaded_out, memory_out)


def test_plain_directory_copy_resolves_as_directory(tiny_artifact, tmp_path: Path) -> None:
    _, artifact = tiny_artifact
    copy = tmp_path / "plain-model"
    shutil.copytree(artifact.path, copy, ignore=shutil.ignore_patterns(MANIFEST_NAME))
    assert not (copy / MANIFEST_NAME).exists()
    source = resolve_model_source(str(copy))
    assert source.kind == "directory"
    assert source.artifact is None
    assert source.describe() == {"kind": "directory", "location": str(copy)}
    model, processor = load_model_and_processor(source)
    assert model.config.model_type == "qwen2_vl"
    assert len(processor.tokenizer) == model.config.text_config.vocab_size


def test_tampered_artifact_is_rejected(tiny_artifact, tmp_path: Path) -> None:
    _, artifact = tiny_artifact
    copy = tmp_path / "tampered"
    shutil.copytree(artifact.path, copy)
    config = json.loads((copy / "config.json").read_text())
    config["_tampered"] = True
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(BadInput, match="config.json"):
        resolve_model_source(str(copy))


# --------------------------------------------------------------------------------------------------
# 5. resolve_model_source errors


def test_missing_local_path_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadInput, match=r"no such model: '\./nope'"):
        resolve_model_source("./nope")
    with pytest.raises(BadInput, match="no such model"):
        resolve_model_source(str(tmp_path / "also-missing"))


def test_directory_without_config_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(BadInput, match="no config.json"):
        resolve_model_source(str(tmp_path))


def test_artifact_of_wrong_stage_is_bad_input(tmp_path: Path) -> None:
    with begin("data", "x", {}, root=tmp_path) as writer:
        writer.path("a.txt").write_text("not a model")
        artifact = writer.publish()
    with pytest.raises(BadInput, match=r"'data' artifact; this needs a 'model' or 'sft' or 'grpo' artifact"):
        resolve_model_source(str(artifact.path))


def test_hub_id_resolves_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # so no local directory of that name can exist

    def no_network(*args, **kwargs):
        raise AssertionError("resolve_model_source must not touch the network")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    source = resolve_model_source("Qwen/Qwen2-VL-2B-Instruct")
    assert source.kind == "hub"
    assert source.location == "Qwen/Qwen2-VL-2B-Instruct"
    assert source.artifact is None
    assert source.describe() == {"kind": "hub", "location": "Qwen/Qwen2-VL-2B-Instruct"}


@pytest.mark.parametrize("reference", ["not a model", "a/b/c", "/", ""])
def test_other_unusable_references(reference: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadInput):
        resolve_model_source(reference)


# --------------------------------------------------------------------------------------------------
# 6. Real-scale config on the meta device


def test_qwen2_vl_2b_config_on_meta_device() -> None:
    config = config_from_file(CONFIG_DIR / "models" / "qwen2-vl-2b.json")
    assert config.model_type == "qwen2_vl"
    text = config.text_config
    assert (text.hidden_size, text.num_hidden_layers, text.vocab_size) == (1536, 28, 151936)
    assert config.vision_config.depth == 32
    model = build_random_model(config, device="meta")
    parameters = list(model.parameters())
    assert all(p.device.type == "meta" for p in parameters)
    count = sum(p.numel() for p in parameters)
    assert abs(count - 2.21e9) <= 0.01e9, count


def test_config_from_file_overrides_merge(tmp_path: Path) -> None:
    config = config_from_file(
        CONFIG_DIR / "models" / "tiny-qwen2-vl.json", text_config={"vocab_size": 500}, image_token_id=7
    )
    assert config.text_config.vocab_size == 500
    assert config.text_config.hidden_size == 64  # kept from the file, not replaced by the override
    assert config.image_token_id == 7


# --------------------------------------------------------------------------------------------------
# 7. describe_model


def test_describe_model_on_tiny_artifact(tiny_artifact) -> None:
    _, artifact = tiny_artifact
    description = describe_model(str(artifact.path))
    model, processor = load_model_and_processor(resolve_model_source(str(artifact.path)))
    assert description["family"] == "qwen2_vl"
    assert description["source"] == "artifact"
    assert description["artifact"] == "model/tiny-qwen2-vl-v1"
    assert description["parameters"] == sum(p.numel() for p in model.parameters())
    assert description["vocab_size"] == len(processor.tokenizer)
    assert description["text_hidden_size"] == 64
    assert description["image_token_id"] == processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)


# --------------------------------------------------------------------------------------------------
# 8. config_from_file errors


def test_config_from_file_bad_model_type(tmp_path: Path) -> None:
    path = tmp_path / "llama.json"
    path.write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    with pytest.raises(BadInput, match=r"model_type must be one of qwen2_vl, qwen2_5_vl, got 'llama'"):
        config_from_file(path)
    path.write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(BadInput, match="got None"):
        config_from_file(path)


@pytest.mark.parametrize(
    "content",
    [None, "directory", b"{not json", b"\xff\xfe\x00binary", b"[1, 2, 3]", b"null"],
    ids=["missing", "directory", "invalid-json", "not-utf8", "json-list", "json-null"],
)
def test_config_from_file_unreadable(tmp_path: Path, content) -> None:
    path = tmp_path / "model.json"
    if content == "directory":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(BadInput, match="model.json"):
        config_from_file(path)


@pytest.mark.skipif(
    not is_torchvision_available(), reason="needs torchvision (the GPU image has it; the CPU build has none)"
)
def test_processor_files_cross_between_machines_with_and_without_torchvision(tmp_path: Path) -> None:
    """Saved by the image-only processor, loaded by AutoProcessor with torchvision, and the reverse."""
    _, full = tiny()
    image_only_class = image_only_processor_class(Qwen2VLProcessor)
    image_only = image_only_class(
        image_processor=full.image_processor, tokenizer=full.tokenizer, chat_template=full.chat_template
    )
    image_only.save_pretrained(tmp_path / "from-cpu")
    loaded = AutoProcessor.from_pretrained(tmp_path / "from-cpu")
    assert type(loaded) is Qwen2VLProcessor and loaded.video_processor is not None
    full.save_pretrained(tmp_path / "from-gpu")
    reloaded = image_only_class.from_pretrained(tmp_path / "from-gpu")
    text = prompt("Plan.")
    ids = [p(text=[text], images=[image()], return_tensors="pt")["input_ids"] for p in (full, loaded, reloaded)]
    assert torch.equal(ids[0], ids[1]) and torch.equal(ids[0], ids[2])


def test_adapter_config_without_a_base_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": None}))
    with pytest.raises(BadInput, match="does not name its base model"):
        resolve_model_source(str(tmp_path))
    (tmp_path / "adapter_config.json").write_text("{oops")
    with pytest.raises(BadInput, match="not a readable PEFT adapter config"):
        resolve_model_source(str(tmp_path))
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tmp_path / "gone")}))
    with pytest.raises(BadInput, match="no such model"):
        resolve_model_source(str(tmp_path))


def test_other_dimensions_keep_their_vocabulary_and_take_the_offline_token_ids(tmp_path: Path) -> None:
    dims = json.loads((CONFIG_DIR / "models" / "tiny-qwen2-vl.json").read_text())
    dims["text_config"]["vocab_size"] = 5000
    dims["image_token_id"] = 4999  # a real config's ids are replaced by the offline tokenizer's
    (tmp_path / "wide.json").write_text(json.dumps(dims))
    model, processor = build_tiny_model(
        "qwen2_vl", 0, VOCAB, MIN_PIXELS, MAX_PIXELS, dimensions=tmp_path / "wide.json", dtype=torch.bfloat16
    )
    assert model.config.text_config.vocab_size == 5000 and next(model.parameters()).dtype == torch.bfloat16
    assert model.config.image_token_id == processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    with pytest.raises(BadInput, match="describes a qwen2_vl model, not qwen2_5_vl"):
        build_tiny_model("qwen2_5_vl", 0, VOCAB, MIN_PIXELS, MAX_PIXELS, dimensions=tmp_path / "wide.json")
    artifact = models_tiny.run(TinyModelConfig(dimensions=str(tmp_path / "wide.json")), OutputSpec(tmp_path / "runs"))
    assert artifact.path.name == "wide-v1" and artifact.manifest["model"]["dimensions"] == "wide.json"
