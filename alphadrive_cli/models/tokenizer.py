"""An offline byte-level BPE tokenizer for tiny models: Qwen-VL's special tokens, trained on driving text."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from alphadrive_cli.actions import DEFAULT_VOCABULARY
from alphadrive_cli.resources import PROMPT_DIR

PAD_TOKEN = "<|endoftext|>"
END_OF_TURN = "<|im_end|>"
IMAGE_TOKEN = "<|image_pad|>"
VIDEO_TOKEN = "<|video_pad|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
SPECIAL_TOKENS = (PAD_TOKEN, "<|im_start|>", END_OF_TURN, VISION_START, VISION_END, IMAGE_TOKEN, VIDEO_TOKEN)

_DRIVING_TEXT = (
    "The ego vehicle is driving on a highway with other vehicles ahead and in the adjacent lanes.",
    "The lead vehicle is close and slower, so the ego vehicle should slow down and keep a safe gap.",
    "The left lane is free, so a lane change to the left lets the ego vehicle overtake.",
    "The right lane is occupied; stay in the current lane.",
    "Approaching an intersection: the navigation says turn left, so prepare to turn left.",
    "At the roundabout, take the exit on the right. The merge lane joins from the right.",
    "The road ahead is clear and the speed is below the limit, so accelerate and go straight.",
    "A vehicle is stopped ahead at the junction; stop and wait until it is clear.",
)


def training_corpus() -> list[str]:
    """Text the tiny tokenizer learns its merges from: prompts, actions and driving sentences."""
    prompts = [path.read_text() for path in sorted(PROMPT_DIR.glob("*.txt"))]
    actions = [" ".join(DEFAULT_VOCABULARY.speed + DEFAULT_VOCABULARY.path)]
    plans = [
        f"<think>{text}</think><answer>{speed}, {path}</answer>"
        for text in _DRIVING_TEXT
        for speed in DEFAULT_VOCABULARY.speed
        for path in DEFAULT_VOCABULARY.path
    ]
    return prompts + actions + list(_DRIVING_TEXT) + plans


def build_tokenizer(vocab_size: int, corpus: Iterable[str] | None = None) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer offline; any text stays encodable through the byte alphabet."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(corpus if corpus is not None else training_corpus()), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=END_OF_TURN,
        pad_token=PAD_TOKEN,
        padding_side="left",
        extra_special_tokens=list(SPECIAL_TOKENS[1:]),
        model_max_length=4096,
    )
