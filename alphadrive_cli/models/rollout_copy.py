"""Rollouts decoded by a bf16 copy of an fp32 policy (``grpo``'s ``rollout_dtype: bfloat16``).

A full fine-tune keeps fp32 weights and trains under bf16 autocast, but graph decoding runs without autocast (one
static cache holds one dtype, see :func:`~alphadrive_cli.models.graph_decoding.generate_with_graphs`), so every
decoding step of a rollout ran in fp32: fp32 attention and fp32 matrix products without tensor cores. A
:class:`RolloutCopy` is the same model in bf16, whose weights are refreshed from the policy's before every
``generate``: its rollouts decode with bf16 kernels and a bf16 cache. Its matrix products use the bf16-rounded
weights that the autocast loss forward's do; unlike that forward it also keeps the embeddings, norms and
residual stream in bf16, so it samples from a slightly different policy than the one GRPO scores (TRL's
transformers path does not correct for that). The copy is kept outside the policy's modules (not in its
``state_dict``, not trained, not saved).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from alphadrive_cli.models.decode_attention import use_folded_gqa
from alphadrive_cli.models.loading import use_fast_paths

ATTRIBUTE = "_alphadrive_rollout_copy"  # where the policy holds it (a plain object: nn.Module registers nothing)


@dataclass(frozen=True)
class RolloutCopy:
    """A bf16 copy of a policy and the (copy, policy) parameter pairs that :meth:`refresh` copies."""

    model: PreTrainedModel
    pairs: tuple[tuple[torch.Tensor, torch.Tensor], ...]

    def refresh(self) -> None:
        """Copy the policy's current weights into the copy, rounded to bf16."""
        with torch.no_grad():
            torch._foreach_copy_([mine for mine, _ in self.pairs], [policy for _, policy in self.pairs])


def bf16_copy(model: PreTrainedModel) -> RolloutCopy | None:
    """The same architecture in bf16 on ``model``'s device, weights and buffers copied from it, in eval mode, with
    the fast paths and the folded-GQA decode attention that graph decoding uses; None where ``model``'s weights
    are not its class's own (adapter layers injected into it). Buffers keep their dtype (the rotary frequencies
    stay fp32)."""
    config = copy.deepcopy(model.config)
    with torch.device("meta"):
        twin = type(model)(config)  # tied as the policy is (post_init ties)
    policy = dict(model.named_parameters())
    if {name: parameter.shape for name, parameter in twin.named_parameters()} != {
        name: parameter.shape for name, parameter in policy.items()
    }:
        return None
    for parameter in twin.parameters():
        parameter.data = parameter.data.to(torch.bfloat16)  # still on meta: no fp32 twin is ever allocated
    twin = twin.to_empty(device=model.device)
    twin.tie_weights()  # to_empty gave each tied module its own tensor again
    buffers = dict(model.named_buffers())
    with torch.no_grad():
        for name, buffer in twin.named_buffers():
            buffer.copy_(buffers[name])
    twin.requires_grad_(False).eval()
    twin.generation_config = copy.deepcopy(model.generation_config)
    use_fast_paths(twin)
    use_folded_gqa(twin)
    pairs = tuple((parameter, policy[name]) for name, parameter in twin.named_parameters())
    rollout_copy = RolloutCopy(twin, pairs)
    rollout_copy.refresh()
    return rollout_copy


def attach_bf16_copy(model: PreTrainedModel) -> bool:
    """Give ``model`` a bf16 :class:`RolloutCopy` for graph decoding to decode with, where it is a plain model
    whose floating weights are all fp32 (a full fine-tune); returns whether it did (a bf16 model decodes in bf16
    already; a model with adapters keeps decoding as it is)."""
    floating = [parameter for parameter in model.parameters() if parameter.is_floating_point()]
    if not floating or any(parameter.dtype != torch.float32 for parameter in floating):
        return False
    rollout_copy = bf16_copy(model)
    if rollout_copy is None:
        return False
    object.__setattr__(model, ATTRIBUTE, rollout_copy)
    return True


def rollout_copy_of(model: PreTrainedModel) -> RolloutCopy | None:
    """The copy :func:`attach_bf16_copy` gave ``model``, or None."""
    return model.__dict__.get(ATTRIBUTE)
