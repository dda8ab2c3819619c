"""The bf16 rollout copy of an fp32 policy (``alphadrive_cli.models.rollout_copy``), on the CPU.

On the CPU graph decoding runs its step eagerly; what is checked is that a policy given a copy decodes with
it, refreshed from its current weights, exactly as a bf16 cast of those weights decodes, and that the copy
stays outside the policy (its state_dict, its parameters).
"""

from __future__ import annotations

import copy

import torch

from alphadrive_cli.models.decode_attention import use_folded_gqa
from alphadrive_cli.models.graph_decoding import graph_sample, use_graph_decoding
from alphadrive_cli.models.loading import use_fast_paths
from alphadrive_cli.models.rollout_copy import attach_bf16_copy, rollout_copy_of
from tests.support.tiny_inputs import image, prompt, spread_language_weights, tiny

NEW_TOKENS = 12


def batch_of(processor):
    texts = [prompt("Go?"), prompt("The lead vehicle is close and slower; what now?"), prompt("x")]
    images = [image(), image((5, 90, 200)), image((50, 50, 50))]
    return processor(text=texts, images=images, return_tensors="pt", padding=True)


def greedy(processor) -> dict:
    return {
        "max_new_tokens": NEW_TOKENS,
        "do_sample": False,
        "cache_implementation": "static",
        "pad_token_id": processor.tokenizer.pad_token_id,
    }


def bf16_cast(model):
    """An independent bf16 cast of ``model``'s parameters (buffers as they are), set up as the copy is."""
    cast = copy.deepcopy(model)
    for parameter in cast.parameters():
        parameter.data = parameter.data.to(torch.bfloat16)
    use_fast_paths(cast)
    use_folded_gqa(cast)
    return cast.eval()


def test_the_copy_is_bf16_and_stays_outside_the_policy():
    model, _ = tiny()
    keys, count = set(model.state_dict()), len(list(model.parameters()))
    assert attach_bf16_copy(model)
    rollout_copy = rollout_copy_of(model)
    assert set(model.state_dict()) == keys and len(list(model.parameters())) == count
    assert {parameter.dtype for parameter in rollout_copy.model.parameters()} == {torch.bfloat16}
    assert len(list(rollout_copy.model.parameters())) == count  # tied weights stay tied
    buffers = dict(model.named_buffers())
    for name, buffer in rollout_copy.model.named_buffers():  # the rotary frequencies stay fp32
        assert buffer.dtype == buffers[name].dtype and torch.equal(buffer, buffers[name])
    policy = dict(model.named_parameters())
    for name, parameter in rollout_copy.model.named_parameters():
        assert torch.equal(parameter, policy[name].to(torch.bfloat16))
        assert not parameter.requires_grad


def test_a_bf16_policy_gets_no_copy():
    model, _ = tiny()
    model.to(torch.bfloat16)
    assert not attach_bf16_copy(model)
    assert rollout_copy_of(model) is None


def test_rollouts_decode_with_the_policys_current_weights_in_bf16():
    model, processor = tiny()
    spread_language_weights(model)
    model.eval()
    batch = batch_of(processor)
    plain = copy.deepcopy(model)
    use_graph_decoding(model)
    assert attach_bf16_copy(model)
    with torch.no_grad():  # an optimiser step after the copy was made: the next rollout must see it
        for policy in (model, plain):
            for parameter in policy.model.language_model.parameters():
                if parameter.dim() == 2:
                    parameter.mul_(1.5)
        decoded = model.generate(**batch, **greedy(processor))
        expected = bf16_cast(plain).generate(**batch, **greedy(processor), custom_generate=graph_sample)
        in_fp32 = plain.generate(**batch, **greedy(processor), custom_generate=graph_sample)
    new = decoded[:, batch["input_ids"].shape[1] :]
    assert len(set(new.flatten().tolist())) > 5  # completions that vary
    assert torch.equal(decoded, expected)
    assert not torch.equal(decoded, in_fp32)  # bf16 rounding changes some greedy tokens here: the copy decoded
