"""Graph decoding (``alphadrive_cli.models.graph_decoding``) against transformers' own ``generate``, fp32 on CPU.

On the CPU the decoding step runs eagerly (no compilation, no CUDA graph): the loop, the processors,
the EOS handling and the return format are what is checked here. The tiny model's language weights are
redrawn with a larger spread so that greedy completions vary from token to token and between prompts.
"""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch

from alphadrive_cli.models.graph_decoding import choose, graph_sample, use_graph_decoding
from alphadrive_cli.models.tokenizer import IMAGE_TOKEN
from tests.support.tiny_inputs import image, prompt, spread_language_weights, tiny

NEW_TOKENS = 16


@pytest.fixture(scope="module")
def setup():
    """The tiny model with spread-out language weights, its processor and a left-padded batch of 4 prompts."""
    model, processor = tiny()
    spread_language_weights(model)
    texts = [
        prompt("Go?"),
        prompt("The lead vehicle is close and slower; what should the ego vehicle do now?"),
        prompt("x"),
        prompt("Stop here please"),
    ]
    images = [image(), image((5, 90, 200)), image((50, 50, 50)), image((1, 2, 3))]
    batch = processor(text=texts, images=images, return_tensors="pt", padding=True)
    return model.eval(), processor, batch


def settings(processor, **overrides):
    """Greedy decoding with a static cache and the image token suppressed, as GRPO rollouts run."""
    return {
        "max_new_tokens": NEW_TOKENS,
        "do_sample": False,
        "cache_implementation": "static",
        "pad_token_id": processor.tokenizer.pad_token_id,
        "suppress_tokens": [processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)],
        **overrides,
    }


def generate(model, batch, **kwargs):
    with torch.no_grad():
        return model.generate(**batch, **kwargs)


def test_greedy_tokens_match_generate_with_and_without_folded_attention(setup) -> None:
    model, processor, batch = setup
    plain = generate(model, batch, **settings(processor))
    new = plain[:, batch["input_ids"].shape[1] :]
    assert new.shape == (4, NEW_TOKENS) and len(set(new.flatten().tolist())) > 20  # completions that vary
    assert torch.equal(generate(model, batch, **settings(processor), custom_generate=graph_sample), plain)
    folded = copy.deepcopy(model)
    use_graph_decoding(folded)
    assert torch.equal(generate(folded, batch, **settings(processor)), plain)


def test_eos_pads_finished_rows_and_stops_where_generate_stops(setup) -> None:
    model, processor, batch = setup
    prompt_length = batch["input_ids"].shape[1]
    free = generate(model, batch, **settings(processor))[:, prompt_length:]
    eos = [int(free[0, 3]), int(free[1, 6]), int(free[2, 9]), int(free[3, 5])]  # every row stops by column 9
    plain = generate(model, batch, **settings(processor, eos_token_id=eos))
    graph = generate(model, batch, **settings(processor, eos_token_id=eos), custom_generate=graph_sample)
    assert torch.equal(graph, plain) and prompt_length < plain.shape[1] < prompt_length + NEW_TOKENS
    pad = processor.tokenizer.pad_token_id
    for row in graph[:, prompt_length:].tolist():
        end = next(i for i, token in enumerate(row) if token in eos)
        assert all(token == pad for token in row[end + 1 :])
    # min_new_tokens bans EOS inside the graph until the 12th token: both run to the same, longer end
    plain = generate(model, batch, **settings(processor, eos_token_id=eos, min_new_tokens=12))
    graph = generate(
        model, batch, **settings(processor, eos_token_id=eos, min_new_tokens=12), custom_generate=graph_sample
    )
    assert torch.equal(graph, plain) and plain.shape[1] >= prompt_length + 12


def test_scores_and_logits_are_returned_like_generate(setup) -> None:
    model, processor, batch = setup
    asked = settings(
        processor,
        max_new_tokens=5,
        return_dict_in_generate=True,
        output_scores=True,
        output_logits=True,
        temperature=0.7,
        top_k=20,
    )
    plain = generate(model, batch, **asked)
    graph = generate(model, batch, **asked, custom_generate=graph_sample)
    assert torch.equal(graph.sequences, plain.sequences)
    for ours, theirs in ((graph.scores, plain.scores), (graph.logits, plain.logits)):
        assert len(ours) == len(theirs) == 5
        for a, b in zip(ours, theirs, strict=False):
            torch.testing.assert_close(a, b)


def test_sampling_runs_with_temperature_top_k_and_top_p(setup) -> None:
    model, processor, batch = setup
    torch.manual_seed(0)
    out = generate(
        model,
        batch,
        **settings(processor, do_sample=True, temperature=0.7, top_k=50, top_p=0.9, min_new_tokens=NEW_TOKENS),
        custom_generate=graph_sample,
    )
    new = out[:, batch["input_ids"].shape[1] :]
    image_token = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert new.shape == (4, NEW_TOKENS) and not (new == image_token).any()  # the suppressed token never comes


def test_the_exponential_race_draws_from_the_softmax() -> None:
    torch.manual_seed(0)
    scores = torch.tensor([[0.0, 1.0, 2.0, -math.inf, 0.5]]).expand(40_000, -1)
    counts = torch.bincount(choose(scores, sample=True), minlength=5).float() / 40_000
    expected = scores[0].softmax(-1)
    assert counts[3] == 0
    torch.testing.assert_close(counts, expected, atol=0.01, rtol=0)
    assert torch.equal(choose(scores[:2], sample=False), torch.tensor([2, 2]))


def test_a_dynamic_cache_falls_back_to_generate(setup) -> None:
    model, processor, batch = setup
    dynamic = settings(processor, cache_implementation=None, max_new_tokens=4)
    plain = generate(model, batch, **dynamic)
    with pytest.warns(UserWarning, match="falls back"):
        graph = generate(model, batch, **dynamic, custom_generate=graph_sample)
    assert torch.equal(graph, plain)


def test_beam_search_is_refused(setup) -> None:
    model, processor, batch = setup
    with pytest.raises(ValueError, match="beam_search needs transformers' own generate"):
        generate(model, batch, **settings(processor, num_beams=2), custom_generate=graph_sample)


def test_a_model_set_up_for_graphs_is_recognised_through_a_peft_wrapper(setup, monkeypatch) -> None:
    """What validation during training asks before it picks a static cache: a model set up for graph decoding,
    bare or under a LoRA adapter (as `grpo` trains it), decodes through the graph without falling back."""
    from peft import LoraConfig, get_peft_model

    from alphadrive_cli.models import graph_decoding
    from alphadrive_cli.models.generation import decodes_with_graphs

    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return graph_sample(*args, **kwargs)

    monkeypatch.setattr(graph_decoding, "graph_sample", counted)
    model, processor, batch = setup
    plain = generate(model, batch, **settings(processor))
    fresh = copy.deepcopy(model)
    assert not decodes_with_graphs(fresh)
    use_graph_decoding(fresh)
    adapted = get_peft_model(fresh, LoraConfig(r=2, target_modules=["q_proj"]))  # B starts at 0: same outputs
    assert decodes_with_graphs(fresh) and decodes_with_graphs(adapted)
    assert not decodes_with_graphs(get_peft_model(copy.deepcopy(model), LoraConfig(r=2, target_modules=["q_proj"])))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="graph decoding falls back")
        assert torch.equal(generate(adapted, batch, **settings(processor)), plain)
    assert calls == [1]
