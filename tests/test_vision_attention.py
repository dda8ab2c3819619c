"""Attending over every image of a batch in one call (``alphadrive_cli.models.vision_attention``) changes neither
the model's outputs nor its gradients, for Qwen2-VL and Qwen2.5-VL, and leaves unequal images to transformers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional

from alphadrive_cli.models.vision_attention import CommonLength, use_batched_vision_attention
from tests.support.tiny_inputs import image, prompt, tiny


def _batch(processor, images):
    texts = [prompt(f"frame {index}") for index in range(len(images))]
    return processor(text=texts, images=images, return_tensors="pt", padding=True)


def _outputs_and_gradients(model, batch):
    model.zero_grad()
    logits = model(**batch).logits
    (logits.float() ** 2).mean().backward()
    return logits.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def _attention_calls(monkeypatch) -> list[int]:
    """The batch size of every scaled_dot_product_attention call from here on."""
    calls: list[int] = []
    original = functional.scaled_dot_product_attention

    def counting(query, *args, **kwargs):
        calls.append(query.shape[0])
        return original(query, *args, **kwargs)

    monkeypatch.setattr(functional, "scaled_dot_product_attention", counting)
    return calls


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_outputs_and_gradients_equal_one_call_per_image(family: str, monkeypatch) -> None:
    model, processor = tiny(family)
    model = model.float()
    batch = _batch(processor, [image((1, 2, 3)), image((90, 10, 200)), image((7, 7, 7)), image((200, 0, 50))])
    batched = copy.deepcopy(model)
    blocks = use_batched_vision_attention(batched)
    assert blocks == model.config.vision_config.depth
    calls = _attention_calls(monkeypatch)
    reference = _outputs_and_gradients(model, batch)
    per_image = list(calls)
    calls.clear()
    result = _outputs_and_gradients(batched, batch)
    text_layers = model.config.text_config.num_hidden_layers  # one call each, the 4 prompts as a batch
    assert len(calls) == blocks + text_layers  # one call per vision block
    assert len(per_image) >= 4 * blocks + text_layers  # one per image (Qwen2.5-VL: per window) and block before
    assert torch.allclose(reference[0], result[0], atol=1e-5, rtol=1e-5)
    assert reference[1].keys() == result[1].keys() and any("visual" in name for name in result[1])
    for name, value in reference[1].items():
        assert torch.allclose(value, result[1][name], atol=1e-6, rtol=1e-4), name


def test_unequal_images_go_through_transformers(monkeypatch) -> None:
    model, processor = tiny()
    model = model.float().eval()
    batch = _batch(processor, [image((1, 2, 3)), image((5, 5, 5), size=56)])
    batched = copy.deepcopy(model)
    use_batched_vision_attention(batched)
    with torch.no_grad():
        expected = model(**batch).logits
        calls = _attention_calls(monkeypatch)
        got = batched(**batch).logits
    assert torch.equal(expected, got)
    assert calls.count(1) >= 2 * model.config.vision_config.depth  # one call per image per block, as before


def test_lengths_are_read_once_per_tensor_and_install_is_idempotent() -> None:
    common = CommonLength()
    equal, unequal = torch.tensor([0, 4, 8, 12]), torch.tensor([0, 4, 6])
    assert common(equal) == 4 and common(unequal) is None
    equal[1] = 3  # a cached tensor is not read again (the tower hands one tensor to every block)
    assert common(equal) == 4
    model, _ = tiny()
    assert use_batched_vision_attention(model) > 0
    assert use_batched_vision_attention(model) == 0
    assert use_batched_vision_attention(torch.nn.Linear(2, 2)) == 0
    copied = copy.deepcopy(model)  # the copy's blocks are bound to the copy, not to the original
    block = copied.model.visual.blocks[0].attn
    assert block.forward.__self__ is block
