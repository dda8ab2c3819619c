"""Encoding each distinct image once (``alphadrive_cli.models.vision_dedup``) changes neither the model's
outputs nor its gradients."""

from __future__ import annotations

import copy

import pytest
import torch

from alphadrive_cli.models.vision_dedup import distinct_images, use_distinct_image_features
from tests.support.tiny_inputs import image, prompt, tiny


@pytest.fixture(scope="module")
def model_and_processor():
    model, processor = tiny()
    return model.float(), processor


def _batch(processor, images):
    texts = [prompt(f"frame {index}") for index in range(len(images))]
    return processor(text=texts, images=images, return_tensors="pt", padding=True)


def _sizes(grid_thw):
    return grid_thw.prod(-1).tolist()


def test_distinct_images_finds_exact_copies(model_and_processor):
    _, processor = model_and_processor
    a, b, small = image((1, 2, 3)), image((90, 10, 200)), image((5, 5, 5), size=56)
    batch = _batch(processor, [a, b, copy.deepcopy(a), small, b, a])
    assert distinct_images(batch["pixel_values"], _sizes(batch["image_grid_thw"])) == ([0, 1, 3], [0, 1, 0, 2, 1, 0])
    distinct = _batch(processor, [a, b, small])
    assert distinct_images(distinct["pixel_values"], _sizes(distinct["image_grid_thw"])) is None
    swapped = distinct["pixel_values"].clone()  # same patches in another order: not a copy
    one = distinct["image_grid_thw"][0].prod().item()
    pixels = torch.cat([distinct["pixel_values"][:one], swapped[:one].flip(0)])
    grids = distinct["image_grid_thw"][[0, 0]]
    assert distinct_images(pixels, _sizes(grids)) is None


def test_outputs_and_gradients_equal_encoding_every_copy(model_and_processor):
    model, processor = model_and_processor
    a, b = image((1, 2, 3)), image((90, 10, 200))
    batch = _batch(processor, [a, b, a, a, b, a])
    deduplicated = copy.deepcopy(model)
    assert use_distinct_image_features(deduplicated) == 1
    encoded = []
    visual = deduplicated.model.visual
    hook = visual.register_forward_hook(lambda module, args, output: encoded.append(args[0].shape[0]))
    results = []
    for candidate in (model, deduplicated):
        candidate.zero_grad()
        logits = candidate(**batch).logits
        (logits.float() ** 2).mean().backward()
        gradients = {name: p.grad.clone() for name, p in candidate.named_parameters() if p.grad is not None}
        results.append((logits.detach(), gradients))
    hook.remove()
    assert encoded == [2 * batch["image_grid_thw"][0].prod().item()]  # two distinct images, not six
    (logits, gradients), (logits_dedup, gradients_dedup) = results
    assert torch.allclose(logits, logits_dedup, atol=1e-5, rtol=1e-5)
    assert gradients.keys() == gradients_dedup.keys()
    assert any("visual" in name for name in gradients)
    for name, value in gradients.items():
        assert torch.allclose(value, gradients_dedup[name], atol=1e-6, rtol=1e-4), name


def test_install_is_idempotent_and_skips_models_without_vision(model_and_processor):
    model, _ = model_and_processor
    patched = copy.deepcopy(model)
    use_distinct_image_features(patched)
    first = patched.model.get_image_features
    use_distinct_image_features(patched)
    assert patched.model.get_image_features is first
    assert use_distinct_image_features(torch.nn.Linear(2, 2)) == 0
