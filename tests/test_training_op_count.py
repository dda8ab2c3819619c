"""bench/training_op_count.py: the operations one GRPO optimiser step dispatches, counted phase by phase."""

from __future__ import annotations

import torch

from alphadrive_cli.models.tiny import TINY_CONFIG_FILES
from bench import training_op_count


def test_the_counter_counts_every_op_and_views_apart() -> None:
    x = torch.ones(4, 4)
    with training_op_count.OpCounter() as counter:
        y = (x + 1).view(16)
        y.mul_(2)
    assert counter.ops == {"add": 1, "view": 1, "mul_": 1}
    assert counter.views == 1


def test_a_step_counts_its_forward_backward_and_optimiser_and_the_count_barely_grows_with_the_batch() -> None:
    model, processor, optimizer = training_op_count.trained_model(TINY_CONFIG_FILES["qwen2_vl"], 56, "cpu")
    counts = []
    for batch in (1, 3):
        inputs = training_op_count.batch_inputs(processor, batch, tokens=40, image_size=56, device="cpu")
        assert inputs["input_ids"].shape == (batch, 40) and (inputs["labels"][:, :20] == -100).all()
        training_op_count.step_ops(model, optimizer, inputs)
        counts.append(training_op_count.step_ops(model, optimizer, inputs))
    for phases in counts:
        assert set(phases) == {"forward", "backward", "optimiser"}
        assert phases["forward"]["ops"] > phases["forward"]["views"] > 0
        assert phases["backward"]["ops"] > 0 and sum(phases["forward"]["top"].values()) <= phases["forward"]["ops"]
        assert 0 < phases["optimiser"]["ops"] < 20  # fused AdamW: a few ops for every parameter at once
    one, three = (phases["forward"]["ops"] + phases["backward"]["ops"] for phases in counts)
    assert abs(three - one) < 0.1 * one
