"""A model directory laid out as ``Qwen/Qwen2-VL-2B-Instruct`` is on the hub, from a ``models tiny --tokenizer
qwen2`` artifact: the flat config.json of transformers 4 (``rope_scaling`` of type ``mrope``), weights under the
old names (``model.layers.*``, ``visual.*``) in shards with an index, preprocessor_config.json, chat_template.json,
tokenizer.json beside vocab.json and merges.txt, the hub's tokenizer_config.json and generation_config.json."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from alphadrive_cli.models.qwen2_tokenizer import QWEN2_VL_SPECIAL_TOKENS

SHARD = "model-00001-of-00001.safetensors"


def _write(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def _hub_config(config: dict) -> dict:
    text = dict(config["text_config"])
    rope = text.pop("rope_parameters")
    vision = {key: config["vision_config"][key] for key in ("depth", "embed_dim", "mlp_ratio", "num_heads")}
    flat = {
        "architectures": ["Qwen2VLForConditionalGeneration"],
        "model_type": "qwen2_vl",
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "vision_start_token_id": config["vision_start_token_id"],
        "vision_end_token_id": config["vision_end_token_id"],
        "vision_token_id": 151654,
        "image_token_id": config["image_token_id"],
        "video_token_id": config["video_token_id"],
        "tie_word_embeddings": config["tie_word_embeddings"],
        "torch_dtype": "float32",
        "transformers_version": "4.41.2",
        "rope_theta": rope["rope_theta"],
        "rope_scaling": {"type": "mrope", "mrope_section": rope["mrope_section"]},
        "vision_config": {
            **vision,
            "in_chans": 3,
            "hidden_size": config["vision_config"]["hidden_size"],
            "patch_size": 14,
            "spatial_merge_size": 2,
            "spatial_patch_size": 14,
            "temporal_patch_size": 2,
        },
    }
    for key in ("hidden_act", "hidden_size", "intermediate_size", "max_position_embeddings", "num_attention_heads",
                "num_hidden_layers", "num_key_value_heads", "rms_norm_eps", "vocab_size"):  # fmt: skip
        flat[key] = text[key]
    return flat | {"use_sliding_window": False, "sliding_window": 32768, "max_window_layers": text["num_hidden_layers"]}


def _hub_weight_name(name: str) -> str:
    """The hub's name of a weight (transformers 5 saves them so already; its in-memory names are mapped back)."""
    if name.startswith("model.language_model."):
        return "model." + name.removeprefix("model.language_model.")
    return name.removeprefix("model.") if name.startswith("model.visual.") else name


def write_hub_layout(artifact: Path, target: Path) -> Path:
    """Write ``artifact`` (a ``models tiny --tokenizer qwen2`` model) into ``target`` in the hub's layout."""
    target.mkdir(parents=True)
    config = json.loads((artifact / "config.json").read_text())
    _write(target / "config.json", _hub_config(config))
    weights = load_file(str(artifact / "model.safetensors"))
    if config["tie_word_embeddings"]:
        weights.pop("lm_head.weight", None)
    renamed = {_hub_weight_name(name): tensor.contiguous() for name, tensor in weights.items()}
    save_file(renamed, str(target / SHARD), metadata={"format": "pt"})
    size = sum(tensor.numel() * tensor.element_size() for tensor in renamed.values())
    _write(target / "model.safetensors.index.json",
           {"metadata": {"total_size": size}, "weight_map": dict.fromkeys(sorted(renamed), SHARD)})  # fmt: skip
    _write(target / "generation_config.json", {
        "bos_token_id": 151643, "pad_token_id": 151643, "eos_token_id": [151645, 151643], "do_sample": True,
        "temperature": 0.01, "top_p": 0.001, "top_k": 1, "repetition_penalty": 1.0,
    })  # fmt: skip
    processor = json.loads((artifact / "processor_config.json").read_text())
    image = processor["image_processor"]
    _write(target / "preprocessor_config.json", {
        "min_pixels": image["size"]["shortest_edge"], "max_pixels": image["size"]["longest_edge"], "patch_size": 14,
        "temporal_patch_size": 2, "merge_size": 2, "image_mean": image["image_mean"], "image_std": image["image_std"],
        "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor",
    })  # fmt: skip
    template = (artifact / "chat_template.jinja").read_text()
    _write(target / "chat_template.json", {"chat_template": template})
    tokenizer = json.loads((artifact / "tokenizer.json").read_text())
    (target / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    _write(target / "vocab.json", tokenizer["model"]["vocab"])
    merges = ["#version: 0.2"] + [
        " ".join(pair) if isinstance(pair, list) else pair for pair in tokenizer["model"]["merges"]
    ]
    (target / "merges.txt").write_text("\n".join(merges) + "\n")
    _write(target / "tokenizer_config.json", {
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(151643 + i): {"content": token, "lstrip": False, "normalized": False, "rstrip": False,
                              "single_word": False, "special": True}
            for i, token in enumerate(QWEN2_VL_SPECIAL_TOKENS)
        },
        "additional_special_tokens": list(QWEN2_VL_SPECIAL_TOKENS[1:]),
        "bos_token": None, "chat_template": template, "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 32768, "pad_token": "<|endoftext|>",
        "padding_side": "left", "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
    })  # fmt: skip
    return target
