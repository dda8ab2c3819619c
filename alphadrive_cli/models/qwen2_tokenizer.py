"""Qwen2's real tokenizer, rebuilt offline from the BPE table that the ``dashscope`` package ships.

``qwen.tiktoken`` lists each of Qwen's 151,643 tokens as base64 bytes and a rank. A byte-level BPE
tokenizer needs the same table as a vocabulary (each token's bytes written in GPT-2's byte-to-unicode
alphabet) and as merges: every token longer than one byte is the merge of the two parts BPE reaches when it
encodes that token's bytes with only the lower-ranked tokens. transformers' ``Qwen2Tokenizer`` supplies
Qwen2's pre-tokenizer (its split regex, NFC) around them; Qwen2-VL's special tokens follow the table at
their usual ids (``<|endoftext|>`` 151643 … ``<|image_pad|>`` 151655, ``<|video_pad|>`` 151656).
"""

from __future__ import annotations

import base64
from functools import cache

from tokenizers import AddedToken
from transformers import PreTrainedTokenizerBase, Qwen2Tokenizer

from alphadrive_cli.errors import BadInput
from alphadrive_cli.models.packaged import PackagedFile, packaged_file
from alphadrive_cli.models.tokenizer import END_OF_TURN, PAD_TOKEN

QWEN_TABLE = ("dashscope", "dashscope/resources/qwen.tiktoken")
QWEN_TABLE_INSTALL = "pip install --no-deps dashscope==2.0.2 (make install does it on a fresh install)"
# Qwen2-VL's special tokens in id order, from 151643 (Qwen2-VL-2B-Instruct's tokenizer_config.json)
QWEN2_VL_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)


def qwen_table() -> PackagedFile:
    """The installed ``qwen.tiktoken`` (one line naming the install command if dashscope is missing)."""
    return packaged_file(*QWEN_TABLE, install=QWEN_TABLE_INSTALL)


@cache
def byte_alphabet() -> tuple[str, ...]:
    """GPT-2's byte-to-unicode map: printable bytes stand for themselves, the rest for code points from 256."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    alphabet: dict[int, str] = {byte: chr(byte) for byte in printable}
    shifted = 256
    for byte in range(256):
        if byte not in alphabet:
            alphabet[byte] = chr(shifted)
            shifted += 1
    return tuple(alphabet[byte] for byte in range(256))


def read_ranks(text: bytes) -> dict[bytes, int]:
    """A tiktoken table (``base64-token rank`` per line) as token bytes -> rank; ranks must be 0..n-1."""
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except ValueError as exc:
            raise BadInput(f"line {number} of the tiktoken table is not 'base64-token rank': {exc}") from None
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise BadInput("the tiktoken table's ranks are not 0..n-1, each once")
    return ranks


def merge_parts(token: bytes, ranks: dict[bytes, int]) -> tuple[bytes, bytes]:
    """The two tokens BPE merges last to make ``token``: its bytes merged pair by pair, lowest rank first,
    with only tokens ranked below it."""
    limit = ranks[token]
    parts = [token[i : i + 1] for i in range(len(token))]
    while len(parts) > 2:
        best, at = limit, -1
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1], limit)
            if rank < best:
                best, at = rank, i
        if at < 0:
            break
        parts[at : at + 2] = [parts[at] + parts[at + 1]]
    if len(parts) != 2:
        raise BadInput(f"token {token!r} (rank {limit}) is not a merge of two lower-ranked tokens")
    return parts[0], parts[1]


def vocabulary_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE vocabulary (token -> id) and merges (in rank order) from tiktoken ranks."""
    alphabet = byte_alphabet()

    def spelled(token: bytes) -> str:
        return "".join(alphabet[byte] for byte in token)

    ordered = sorted(ranks, key=ranks.__getitem__)
    vocab = {spelled(token): ranks[token] for token in ordered}
    merges = [tuple(map(spelled, merge_parts(token, ranks))) for token in ordered if len(token) > 1]
    return vocab, merges


def build_qwen2_tokenizer(table: PackagedFile | None = None) -> PreTrainedTokenizerBase:
    """Qwen2's tokenizer with Qwen2-VL's special tokens, end of turn ``<|im_end|>``, padding on the left."""
    table = table or qwen_table()
    vocab, merges = vocabulary_and_merges(read_ranks(table.path.read_bytes()))
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, padding_side="left", model_max_length=32768)
    tokenizer.add_tokens([AddedToken(token, special=True, normalized=False) for token in QWEN2_VL_SPECIAL_TOKENS[1:]])
    tokenizer.add_special_tokens(
        {"eos_token": END_OF_TURN, "pad_token": PAD_TOKEN, "extra_special_tokens": list(QWEN2_VL_SPECIAL_TOKENS[1:])}
    )
    return tokenizer
