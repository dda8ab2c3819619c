"""Rollout decoding with the whole decoding step (model, logits processors, sampling, stop bookkeeping) in
one CUDA graph.

:func:`graph_sample` is a transformers ``custom_generate`` decoding method, a drop-in for
``GenerationMixin._sample``: ``generate`` still prepares the inputs, the static KV cache, the logits
processors and the stopping criteria. The prefill and the first token run as in ``_sample``; every later
step is one ``torch.compile``'d call that reads and writes only tensors allocated before it (the last token,
its positions, an attention mask over the whole static cache, the output columns, the finished flags), so
on CUDA it is captured in a CUDA graph once per ``generate`` call and replayed, and the host asks whether
every sequence has finished only every ``CHECK_EVERY`` steps. Sampling draws ``argmax(p / E)`` with
``E ~ Exp(1)`` per token (the exponential race: exactly ``torch.multinomial``'s distribution, but capturable);
greedy decoding is ``_sample``'s argmax. Tokens after a sequence's EOS are padding and the result is cut
where ``_sample`` stops. Anything else ``_sample`` supports (a dynamic cache, logits processors that read the
tokens so far, other stopping criteria, returned attentions or hidden states) falls back to ``_sample``.
:func:`use_graph_decoding` makes a model's ``generate`` use it, with :mod:`~alphadrive_cli.models.decode_attention`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import MethodType
from typing import Any

import torch
from transformers import DynamicCache, GenerationConfig, GenerationMixin, PreTrainedModel
from transformers.generation import (
    EosTokenCriteria,
    GenerationMode,
    LogitsProcessorList,
    MaxLengthCriteria,
    MinLengthLogitsProcessor,
    MinNewTokensLengthLogitsProcessor,
    MinPLogitsWarper,
    StoppingCriteriaList,
    SuppressTokensLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.generation.utils import GenerateDecoderOnlyOutput

from alphadrive_cli.models.decode_attention import use_folded_gqa
from alphadrive_cli.models.rollout_copy import rollout_copy_of

CHECK_EVERY = 8  # decoding steps between the host's checks whether every sequence has finished
WARMUP_STEPS = 2  # steps run (and compiled) outside the graph before it is captured
# logits processors whose result does not depend on the tokens so far: they run inside the graph as they are
SEQUENCE_FREE = (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    MinPLogitsWarper,
    SuppressTokensLogitsProcessor,
)


@dataclass(frozen=True)
class EosBan:
    """``min_length`` / ``min_new_tokens`` inside the graph: EOS scores -inf while fewer than ``new_tokens``
    tokens are generated (``mask`` marks the EOS ids in the vocabulary; both tensors, so that another length
    compiles nothing new)."""

    new_tokens: torch.Tensor
    mask: torch.Tensor


@dataclass
class DecodeState:
    """What one decoding step reads and updates in place (fixed addresses, so the step can be graph-captured)."""

    inputs: dict[str, Any]  # model inputs that are the same every step: the cache, logits_to_keep, ...
    token: torch.Tensor  # (batch, 1): the last token
    positions: torch.Tensor | None  # its position ids, (batch, 1) or (rope sections, batch, 1)
    attention_mask: torch.Tensor | None  # (batch, cache length); causality hides the slots not written yet
    tokens: (
        torch.Tensor
    )  # (batch, cache length, whatever the prompt's): column 0 holds the token chosen after the prefill
    column: torch.Tensor  # (1,): the column this step writes
    unfinished: torch.Tensor  # (batch,) bool
    processors: tuple[Any, ...]
    pad: torch.Tensor | None
    eos: torch.Tensor | None
    sample: bool
    scores: torch.Tensor | None = None  # (batch, vocabulary): this step's processed scores, where asked for
    logits: torch.Tensor | None = None


def choose(scores: torch.Tensor, sample: bool) -> torch.Tensor:
    """The next token of every row: argmax, or a draw from ``softmax(scores)`` by the exponential race."""
    if not sample:
        return scores.argmax(dim=-1)
    probs = scores.softmax(dim=-1)
    race = torch.empty_like(probs).exponential_().clamp_min_(torch.finfo(probs.dtype).tiny)
    return (probs / race).argmax(dim=-1)


def decode_step(model: PreTrainedModel, state: DecodeState) -> None:
    """One decoding step: the model on the last token, the processors, the choice, the bookkeeping."""
    inputs = dict(state.inputs, input_ids=state.token, attention_mask=state.attention_mask)
    if state.positions is not None:
        inputs["position_ids"] = state.positions
    logits = model(**inputs).logits[:, -1].float()
    scores = logits
    for processor in state.processors:
        if isinstance(processor, EosBan):
            scores = scores.masked_fill(processor.mask & (state.column < processor.new_tokens), -math.inf)
        else:
            scores = processor(state.token, scores)
    token = choose(scores, state.sample)
    if state.eos is not None:  # a finished sequence gets padding, as in _sample
        token = torch.where(state.unfinished, token, state.pad)
        state.unfinished.logical_and_(~torch.isin(token, state.eos))
    state.tokens.index_copy_(1, state.column, token[:, None])
    state.token.copy_(token[:, None])
    if state.positions is not None:
        state.positions.add_(1)
    state.column.add_(1)
    if state.scores is not None:
        state.scores.copy_(scores)
    if state.logits is not None:
        state.logits.copy_(logits)


compiled_decode_step = torch.compile(decode_step, fullgraph=True)


class Replay:
    """Runs a decoding step; with ``capture`` (CUDA) the first ``WARMUP_STEPS`` calls run it (compiling it) on a
    side stream, the next captures it in a CUDA graph and replays it, and every later call replays that graph."""

    def __init__(self, step: Callable[[], None], capture: bool) -> None:
        self.step, self.calls = step, 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.stream = torch.cuda.Stream() if capture else None

    def __call__(self) -> None:
        self.calls += 1
        if self.graph is not None:
            self.graph.replay()
        elif self.stream is None:
            self.step()
        elif self.calls <= WARMUP_STEPS:
            self.stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.stream):
                self.step()
            torch.cuda.current_stream().wait_stream(self.stream)
        else:
            self.graph = torch.cuda.CUDAGraph()
            # thread_local: CUDA calls of other threads (a logger asking for memory stats) do not break the capture
            with torch.cuda.graph(self.graph, stream=self.stream, capture_error_mode="thread_local"):
                self.step()  # recorded, not run
            self.graph.replay()


def unsupported(
    model: PreTrainedModel,
    logits_processor: LogitsProcessorList,
    stopping_criteria: StoppingCriteriaList,
    generation_config: GenerationConfig,
    model_kwargs: dict[str, Any],
) -> str | None:
    """Why :func:`graph_sample` cannot decode this call (it then falls back to ``_sample``), or None."""
    cache = model_kwargs.get("past_key_values")
    if (
        model.config.is_encoder_decoder
        or not getattr(cache, "is_compileable", False)
        or isinstance(cache, DynamicCache)
    ):
        return "it needs a decoder-only model and a static KV cache (cache_implementation='static')"
    if generation_config.output_attentions or generation_config.output_hidden_states:
        return "it returns no attentions or hidden states"
    for processor in logits_processor:
        if not isinstance(processor, (*SEQUENCE_FREE, MinLengthLogitsProcessor, MinNewTokensLengthLogitsProcessor)):
            return f"{type(processor).__name__} reads the tokens so far"
    for criterion in stopping_criteria:
        if not isinstance(criterion, (MaxLengthCriteria, EosTokenCriteria)):
            return f"no {type(criterion).__name__}"
    return None


def graph_processors(
    logits_processor: LogitsProcessorList, prompt_length: int, vocabulary: int, device: torch.device
) -> tuple[Any, ...]:
    """The processors as the graph runs them: minimum lengths become :class:`EosBan`, the rest as they are."""
    processors: list[Any] = []
    vocab = torch.arange(vocabulary, device=device)
    for processor in logits_processor:
        if isinstance(processor, (MinLengthLogitsProcessor, MinNewTokensLengthLogitsProcessor)):
            length = (
                processor.min_length
                if isinstance(processor, MinLengthLogitsProcessor)
                else processor.prompt_length_to_skip + processor.min_new_tokens
            )
            processors.append(
                EosBan(torch.tensor(length - prompt_length, device=device), torch.isin(vocab, processor.eos_token_id))
            )
        else:
            processors.append(processor)
    return tuple(processors)


def graph_sample(
    model: PreTrainedModel,
    input_ids: torch.LongTensor,
    logits_processor: LogitsProcessorList,
    stopping_criteria: StoppingCriteriaList,
    generation_config: GenerationConfig,
    cuda_graph: bool = True,
    **model_kwargs: Any,
) -> GenerateDecoderOnlyOutput | torch.LongTensor:
    """``GenerationMixin._sample`` with every step after the first in one CUDA graph (see the module's doc);
    ``generate(..., custom_generate=graph_sample)`` calls it. ``cuda_graph=False`` (a ``generate`` keyword too)
    runs the same compiled step on CUDA without capturing it, to check the graph against."""
    mode = generation_config.get_generation_mode()
    if mode not in (GenerationMode.SAMPLE, GenerationMode.GREEDY_SEARCH):
        raise ValueError(f"graph decoding samples or decodes greedily; {mode.value} needs transformers' own generate")
    reason = unsupported(model, logits_processor, stopping_criteria, generation_config, model_kwargs)
    if reason is not None:
        warnings.warn(f"graph decoding falls back to transformers' _sample: {reason}", stacklevel=2)
        return GenerationMixin._sample(
            model, input_ids, logits_processor, stopping_criteria, generation_config, **model_kwargs
        )
    max_length = next(c.max_length for c in stopping_criteria if isinstance(c, MaxLengthCriteria))
    eos = next((c.eos_token_id for c in stopping_criteria if isinstance(c, EosTokenCriteria)), None)
    keep_scores = generation_config.return_dict_in_generate and generation_config.output_scores
    keep_logits = generation_config.return_dict_in_generate and generation_config.output_logits
    batch, prompt = input_ids.shape
    new_tokens = max_length - prompt

    outputs = model._prefill(input_ids, generation_config, model_kwargs)
    model_kwargs = model._update_model_kwargs_for_generation(outputs, model_kwargs)
    logits = outputs.logits[:, -1].to(copy=True, dtype=torch.float32, device=input_ids.device)
    del outputs
    scores = logits_processor(input_ids, logits)
    first = choose(scores, generation_config.do_sample)
    cache = model_kwargs["past_key_values"]
    inputs = model.prepare_inputs_for_generation(
        torch.cat([input_ids, first[:, None]], dim=-1), next_sequence_length=1, **model_kwargs
    )
    positions = inputs.pop("position_ids", None)
    cache_length = cache.get_mask_sizes(1, 0)[0]
    mask = None
    if model_kwargs.get("attention_mask") is not None:
        mask = torch.ones(batch, cache_length, dtype=torch.long, device=input_ids.device)
        mask[:, :prompt] = model_kwargs["attention_mask"][:, :prompt]
    state = DecodeState(
        inputs={key: value for key, value in inputs.items() if key not in ("input_ids", "attention_mask")},
        token=inputs["input_ids"].clone(),
        positions=None if positions is None else positions.clone(),
        attention_mask=mask,
        tokens=torch.empty(batch, cache_length, dtype=torch.long, device=input_ids.device),
        column=torch.ones(1, dtype=torch.long, device=input_ids.device),
        unfinished=torch.ones(batch, dtype=torch.bool, device=input_ids.device),
        processors=graph_processors(logits_processor, prompt, scores.shape[-1], input_ids.device),
        pad=generation_config._pad_token_tensor,
        eos=eos,
        sample=generation_config.do_sample,
        scores=torch.empty_like(scores) if keep_scores else None,
        logits=torch.empty_like(logits) if keep_logits else None,
    )
    state.tokens[:, 0] = first
    if eos is not None:
        state.unfinished &= ~torch.isin(first, eos)
    kept_scores, kept_logits = [scores], [logits]

    cuda = input_ids.device.type == "cuda"
    step = Replay(lambda: (compiled_decode_step if cuda else decode_step)(model, state), cuda and cuda_graph)
    filled = 1
    while filled < new_tokens and (filled % CHECK_EVERY or state.unfinished.any()):
        step()
        filled += 1
        if keep_scores:
            kept_scores.append(state.scores.clone())
        if keep_logits:
            kept_logits.append(state.logits.clone())

    generated = state.tokens[:, :filled]
    if eos is not None:  # _sample stops once every sequence has emitted EOS
        is_eos = torch.isin(generated, eos)
        ends = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1), filled - 1)
        generated = generated[:, : int(ends.max()) + 1]
    sequences = torch.cat([input_ids, generated], dim=-1)
    if not generation_config.return_dict_in_generate:
        return sequences
    columns = generated.shape[1]
    return GenerateDecoderOnlyOutput(
        sequences=sequences,
        scores=tuple(kept_scores[:columns]) if keep_scores else None,
        logits=tuple(kept_logits[:columns]) if keep_logits else None,
        past_key_values=cache,
    )


def generate_with_graphs(model: PreTrainedModel, *args: Any, **kwargs: Any) -> Any:
    """``model.generate`` with :func:`graph_sample` as its decoding method, through the class's own ``forward``.

    accelerate's mixed precision replaces a prepared model's ``forward`` on the instance by one that runs under
    autocast; with fp32 weights (``finetune: full``) that writes fp32 keys (rotary embeddings upcast them) and
    bf16 values, which one static cache cannot hold. Decoding without that wrapper keeps the cache in the
    weights' dtype; a bf16 model decodes in bf16 either way. A model given a bf16
    :class:`~alphadrive_cli.models.rollout_copy.RolloutCopy` decodes with that copy, refreshed from its weights.
    """
    rollout_copy = rollout_copy_of(model)
    if rollout_copy is not None:
        rollout_copy.refresh()
        return type(rollout_copy.model).generate(rollout_copy.model, *args, custom_generate=graph_sample, **kwargs)
    wrapped = model.__dict__.pop("forward", None)
    try:
        return type(model).generate(model, *args, custom_generate=graph_sample, **kwargs)
    finally:
        if wrapped is not None:
            model.forward = wrapped


def use_graph_decoding(model: PreTrainedModel) -> None:
    """Make ``model.generate`` decode with :func:`graph_sample` and folded-GQA decode attention.

    An instance attribute shadows the class's ``generate`` (what transformers itself does for a model loaded
    with a ``custom_generate`` repository), so callers that cannot pass ``custom_generate``, such as TRL's
    GRPOTrainer, get it too. Generation still needs ``cache_implementation='static'`` to take the graph.
    """
    use_folded_gqa(model)
    model.generate = MethodType(generate_with_graphs, model)
