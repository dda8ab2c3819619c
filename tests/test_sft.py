"""``alphadrive sft``: the vision-language collator's masking, LoRA targets, and short CPU runs on the tiny model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback
from transformers.utils import is_torchvision_available
from typer.testing import CliRunner

from alphadrive_cli.actions import DEFAULT_VOCABULARY
from alphadrive_cli.artifacts.store import OutputSpec, open_artifact
from alphadrive_cli.cli import app
from alphadrive_cli.config.resolve import resolve_config
from alphadrive_cli.config.schemas import DistillConfig, SftConfig, TinyModelConfig, ValidationConfig
from alphadrive_cli.data.records import iter_split
from alphadrive_cli.errors import BadInput, StageFailure
from alphadrive_cli.models import loading
from alphadrive_cli.models.loading import load_model_and_processor, resolve_model_source
from alphadrive_cli.models.lora import apply_lora, lora_target_regex, quantization_config
from alphadrive_cli.prompts import PERCEPTION_PROMPT, STUDENT_PROMPT, load_prompt, student_messages
from alphadrive_cli.stages import distill as distill_stage
from alphadrive_cli.stages import models_tiny
from alphadrive_cli.stages import sft as sft_stage
from alphadrive_cli.training import callbacks as training_callbacks
from alphadrive_cli.training import run as run_module
from alphadrive_cli.training.sft_data import END_OF_TURN, VisionSFTCollator, perception_target, sft_examples
from alphadrive_cli.training.validation import validation_sample
from alphadrive_cli.ui import console
from tests.support import labelled_data
from tests.support.interrupts import InterruptAfterSave, Interrupted
from tests.support.labelled_data import make_labelled_data

LABELS = [
    ("KEEP", "STRAIGHT"),
    ("DECELERATE", "LEFT_TURN"),
    ("STOP", "STRAIGHT"),
    ("ACCELERATE", "RIGHT_CHANGE"),
    ("KEEP", "STRAIGHT"),
    ("KEEP", "RIGHT_TURN"),
    ("DECELERATE", "STRAIGHT"),
    ("KEEP", "LEFT_CHANGE"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A data artifact (6 train frames), its grounded distillation, and the tiny model artifact."""
    root = tmp_path_factory.mktemp("sft-inputs") / "runs"
    data = make_labelled_data(root, LABELS, {"train": range(6), "val": range(6, 8)})
    distilled = distill_stage.run(DistillConfig(), OutputSpec(root), data=data)
    model = models_tiny.run(TinyModelConfig(), OutputSpec(root))
    return {"data": data, "distill": distilled.path, "model": model.path}


def config(inputs: dict[str, Path], **overrides) -> SftConfig:
    values = {
        "model": str(inputs["model"]),
        "max_steps": 3,
        "per_device_batch_size": 2,
        "save_steps": 50,
        "lora": {"r": 8, "alpha": 16},
        "max_length": 1024,
    }
    return resolve_config("sft", SftConfig, options={**values, **overrides})


def train_records(path: Path):
    return list(iter_split(open_artifact(path), "train", DEFAULT_VOCABULARY))


def test_collator_masks_prompt_tokens(inputs) -> None:
    _, processor = load_model_and_processor(resolve_model_source(str(inputs["model"])))
    records = train_records(inputs["distill"])[:2]
    examples = sft_examples(records, DEFAULT_VOCABULARY, reasoning=True)
    collator = VisionSFTCollator(processor, load_prompt(STUDENT_PROMPT), DEFAULT_VOCABULARY, inputs["distill"], 1024)
    batch = collator(examples)
    assert {"input_ids", "attention_mask", "labels", "pixel_values", "image_grid_thw"} <= set(batch)
    for row, (example, record) in enumerate(zip(examples, records, strict=False)):
        image = Image.open(inputs["distill"] / record.images[0]).convert("RGB")
        prompt_ids = processor(text=[collator.prompt_text(example)], images=[image], return_tensors="pt")["input_ids"][
            0
        ]
        labels, ids = batch["labels"][row], batch["input_ids"][row]
        assert torch.equal(ids[: len(prompt_ids)], prompt_ids)
        assert (labels[: len(prompt_ids)] == -100).all()
        supervised = labels[labels != -100]
        assert len(supervised) == int(batch["attention_mask"][row].sum()) - len(prompt_ids)
        assert labels[len(prompt_ids)] != -100  # the answer starts right after the prompt
        text = processor.tokenizer.decode(supervised)
        assert text == example["target"] + END_OF_TURN
        assert text.startswith(
            f"<think>{record.reasoning}</think><answer>{record.speed_action}, {record.path_action}</answer>"
        )
        assert (labels[batch["attention_mask"][row] == 0] == -100).all()  # padding is never supervised


def test_perception_examples_ask_what_the_images_show_without_speed_or_instruction(inputs) -> None:
    _, processor = load_model_and_processor(resolve_model_source(str(inputs["model"])))
    records = train_records(inputs["distill"])[:2]
    examples = sft_examples(records, DEFAULT_VOCABULARY, reasoning=True, perception=True)
    assert [example["task"] for example in examples] == ["plan", "plan", "perception", "perception"]
    perceived = examples[2:]
    # the test frames' scene: no lead, room on the left, no lane on the right
    assert all("left" in example["target"] and "right" in example["target"] for example in perceived)
    assert [example["target"] for example in perceived] == [perception_target(record) for record in records]
    template = load_prompt(PERCEPTION_PROMPT)
    collator = VisionSFTCollator(
        processor, load_prompt(STUDENT_PROMPT), DEFAULT_VOCABULARY, inputs["distill"], 1024, template
    )
    batch = collator(perceived)
    for row, example in enumerate(perceived):
        prompt = collator.prompt_text(example)
        assert template.text.strip() in prompt and records[row].navigation not in prompt and "m/s" not in prompt
        labels = batch["labels"][row]
        assert processor.tokenizer.decode(labels[labels != -100]) == example["target"] + END_OF_TURN
    with pytest.raises(StageFailure, match="perception_template"):
        VisionSFTCollator(processor, load_prompt(STUDENT_PROMPT), DEFAULT_VOCABULARY, inputs["distill"], 1024)(
            perceived
        )


def test_perception_examples_train_and_are_counted_and_need_scene_facts(inputs, tmp_path: Path, monkeypatch) -> None:
    artifact = sft_stage.run(
        config(inputs, max_steps=2, perception_examples=True), OutputSpec(tmp_path / "runs"), data=inputs["distill"]
    )
    assert artifact.manifest["training"]["perception_example_count"] == 6
    assert artifact.manifest["training"]["perception_phrasing"]["id"] == "grounded-v1"
    assert {"id": PERCEPTION_PROMPT, "sha256": load_prompt(PERCEPTION_PROMPT).sha256} in artifact.manifest["prompts"]
    monkeypatch.setattr(labelled_data, "SCENE", None)
    sceneless = make_labelled_data(tmp_path / "plain", LABELS, {"train": range(6)}, reasoning="fine")
    with pytest.raises(BadInput, match="perception_examples needs scene facts"):
        sft_stage.run(config(inputs, perception_examples=True), OutputSpec(tmp_path / "runs"), data=sceneless)


def test_no_reasoning_targets_are_answers_only(inputs) -> None:
    examples = sft_examples(train_records(inputs["distill"]), DEFAULT_VOCABULARY, reasoning=False)
    assert all("<think>" not in example["target"] for example in examples)
    assert examples[0]["target"] == f"<answer>{LABELS[0][0]}, {LABELS[0][1]}</answer>"


def test_lora_targets_the_language_model_only(inputs) -> None:
    model, _ = load_model_and_processor(resolve_model_source(str(inputs["model"])), dtype=torch.float32)
    cfg = config(inputs)
    regex = lora_target_regex(model, cfg)
    matched = [name for name, _ in model.named_modules() if re.fullmatch(regex, name)]
    assert matched and all(name.startswith("model.language_model.") for name in matched)
    assert {name.rsplit(".", 1)[1] for name in matched} == set(cfg.lora.target_modules)
    peft_model = apply_lora(model, cfg)
    trainable = [name for name, parameter in peft_model.named_parameters() if parameter.requires_grad]
    assert trainable and all("lora_" in name and "visual" not in name for name in trainable)
    if not torch.cuda.is_available():
        assert quantization_config(config(inputs, quantization="4bit")) is None
    assert quantization_config(cfg) is None


def test_sft_publishes_an_adapter_that_loads_for_eval(inputs, tmp_path: Path, capsys) -> None:
    with console.capture() as captured:
        artifact = sft_stage.run(
            config(inputs, quantization="4bit"), OutputSpec(tmp_path / "runs"), data=inputs["distill"]
        )
    assert capsys.readouterr().out == ""  # stdout is left to the CLI (the artifact path)
    messages = captured.get().replace("\n", " ")
    assert "step 3/3: loss" in messages
    if not torch.cuda.is_available():
        assert "4-bit quantization (QLoRA) needs CUDA" in messages
    assert artifact.stage == "sft"
    files = {path.name for path in artifact.path.iterdir()}
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "training_curves.png",
        "log_history.json",
        "processor_config.json",
    } <= files
    assert "checkpoints" not in files
    adapter = json.loads((artifact.path / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(inputs["model"].resolve())
    manifest = artifact.manifest
    assert manifest["metrics"]["steps"] == 3 and manifest["metrics"]["train_loss"] > 0
    assert manifest["metrics"]["train_samples_per_second"] > 0
    assert {entry["role"]: entry["stage"] for entry in manifest["inputs"]} == {"data": "distill", "model": "model"}
    assert manifest["training"]["quantization"] == ("4bit" if torch.cuda.is_available() else "none")
    assert (artifact.path / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    source = resolve_model_source(str(artifact.path))
    assert source.base is not None and source.base.location == str(inputs["model"].resolve())
    model, processor = load_model_and_processor(source, dtype=torch.float32)
    assert type(model).__name__ == "PeftModel" or "lora" in json.dumps([n for n, _ in model.named_modules()])


def test_loss_decreases_when_overfitting(inputs, tmp_path: Path) -> None:
    artifact = sft_stage.run(
        config(inputs, max_steps=30, learning_rate=5e-2, lora={"r": 16, "alpha": 32, "dropout": 0.0}),
        OutputSpec(tmp_path / "runs"),
        data=inputs["distill"],
    )
    losses = [
        entry["loss"] for entry in json.loads((artifact.path / "log_history.json").read_text()) if "loss" in entry
    ]
    assert len(losses) == 30
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first - 0.1 and min(losses[-5:]) < min(losses[:5]), (
        losses
    )  # a random 200k-parameter model learns slowly


def test_deterministic_runs_its_training_on_deterministic_kernels(inputs, tmp_path: Path, monkeypatch) -> None:
    """`deterministic: true` holds torch's deterministic mode over the training and says so in the manifest;
    the process is as before afterwards (tests/test_gpu.py checks that two such runs on CUDA train equal weights)."""
    seen = []
    train = run_module.train_and_save

    def recording(*args, **kwargs):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return train(*args, **kwargs)

    monkeypatch.setattr(run_module, "train_and_save", recording)
    artifact = sft_stage.run(
        config(inputs, max_steps=2, deterministic=True), OutputSpec(tmp_path / "runs"), data=inputs["distill"]
    )
    assert seen == [True] and not torch.are_deterministic_algorithms_enabled()
    assert artifact.manifest["training"]["deterministic_kernels"] is True


def test_no_reasoning_trains_on_plain_data(inputs, tmp_path: Path) -> None:
    artifact = sft_stage.run(
        config(inputs, reasoning=False, max_steps=2), OutputSpec(tmp_path / "runs"), data=inputs["data"]
    )
    assert artifact.manifest["training"]["reasoning"] is False
    assert artifact.manifest["inputs"][0]["stage"] == "data"


def test_undistilled_data_is_refused_before_loading(inputs, tmp_path: Path, monkeypatch) -> None:
    def forbidden(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(loading, "load_model", forbidden)
    with pytest.raises(BadInput, match="without reasoning traces.*--no-reasoning"):
        sft_stage.run(config(inputs), OutputSpec(tmp_path / "runs"), data=inputs["data"])
    with pytest.raises(BadInput, match="no such model"):
        sft_stage.run(
            config(inputs, model=str(tmp_path / "missing")), OutputSpec(tmp_path / "runs"), data=inputs["distill"]
        )
    with pytest.raises(BadInput, match="--model"):
        sft_stage.run(config(inputs, model=None), OutputSpec(tmp_path / "runs"), data=inputs["distill"])
    assert not (tmp_path / "runs" / "sft").exists() or not any((tmp_path / "runs" / "sft").glob(".sft*"))


def test_interrupted_run_resumes_from_its_checkpoint(inputs, tmp_path: Path, monkeypatch) -> None:
    cfg = config(inputs, max_steps=4, save_steps=2)
    monkeypatch.setattr(training_callbacks, "EXTRA_CALLBACKS", [InterruptAfterSave()])
    with pytest.raises(Interrupted):
        sft_stage.run(cfg, OutputSpec(tmp_path / "runs"), data=inputs["distill"])
    partial = tmp_path / "runs" / "sft" / ".sft.partial"
    assert (partial / "checkpoints" / "checkpoint-2").is_dir(), list(partial.rglob("*"))
    monkeypatch.setattr(training_callbacks, "EXTRA_CALLBACKS", [])
    artifact = sft_stage.run(cfg, OutputSpec(tmp_path / "runs"), data=inputs["distill"])
    manifest = artifact.manifest
    assert manifest["resumed"] is True
    assert manifest["training"]["resumed_from_step"] == 2
    assert manifest["metrics"]["steps"] == 4
    history = [entry for entry in json.loads((artifact.path / "log_history.json").read_text()) if "loss" in entry]
    assert [entry["step"] for entry in history] == [1, 2, 3, 4]
    assert not (artifact.path / "checkpoints").exists()
    # the metrics cover the whole run, not only the resumed session: the same loss as an uninterrupted run,
    # and the training time of both sessions (the clock goes on from the checkpoint's stamp)
    whole = sft_stage.run(cfg, OutputSpec(tmp_path / "runs", "whole"), data=inputs["distill"]).manifest["metrics"]
    metrics = manifest["metrics"]
    assert metrics["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-4)
    assert metrics["train_loss"] == pytest.approx(sum(entry["loss"] for entry in history) / 4, rel=1e-5)
    clock = [entry["train_elapsed_s"] for entry in history]
    assert clock == sorted(clock) and metrics["train_runtime_s"] >= clock[-1] > clock[1] > 0
    batch = cfg.per_device_batch_size * cfg.gradient_accumulation_steps
    assert metrics["train_samples_per_second"] == pytest.approx(4 * batch / metrics["train_runtime_s"], rel=1e-3)


def test_merge_needs_an_adapter(cli, inputs) -> None:
    result = cli(
        "sft", "--data", inputs["distill"], "--model", inputs["model"], "--merge"
    )  # tiny preset: finetune full
    assert result.exit_code == 2 and "merge applies to LoRA adapters" in result.stderr


@pytest.fixture(scope="module")
def merged_sft(inputs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An `sft --merge` artifact: 2 LoRA steps on the tiny model, merged into `merged/`."""
    result = CliRunner().invoke(
        app,
        [
            *("sft", "--data", str(inputs["distill"]), "--model", str(inputs["model"]), "--merge"),
            *("--out-root", str(tmp_path_factory.mktemp("merged-sft"))),
            *("--set", "finetune=lora", "--set", "max_steps=2", "--set", "learning_rate=0.05"),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip())


def student_batch(inputs, processor):
    """The first distilled training frame's student prompt and image, as model inputs."""
    record = train_records(inputs["distill"])[0]
    prompt = processor.apply_chat_template(
        student_messages(load_prompt(STUDENT_PROMPT), record, DEFAULT_VOCABULARY),
        add_generation_prompt=True,
        tokenize=False,
    )
    image = Image.open(inputs["distill"] / record.images[0]).convert("RGB")
    return processor(text=[prompt], images=[image], return_tensors="pt")


def test_merge_saves_full_weights_equal_to_base_plus_adapter(inputs, merged_sft: Path) -> None:
    artifact = open_artifact(merged_sft, stage="sft")
    assert artifact.manifest["model"]["merged"] == "merged" and len(artifact.manifest["model"]["config_sha256"]) == 64
    adapted, processor = load_model_and_processor(resolve_model_source(str(artifact.path)))
    merged, _ = load_model_and_processor(resolve_model_source(str(artifact.path / "merged")))
    batch = student_batch(inputs, processor)
    with torch.no_grad():
        assert torch.allclose(adapted(**batch).logits, merged(**batch).logits, atol=1e-4)
        base, _ = load_model_and_processor(resolve_model_source(str(inputs["model"])))
        assert not torch.allclose(base(**batch).logits, merged(**batch).logits, atol=1e-4)  # the adapter did change it


def test_the_merged_model_loads_with_auto_model_for_image_text_to_text(inputs, merged_sft: Path) -> None:
    """What vLLM and `transformers serve` do with `merged/`: the stock auto class, no alphadrive code."""
    merged = AutoModelForImageTextToText.from_pretrained(merged_sft / "merged")
    assert type(merged).__name__ == "Qwen2VLForConditionalGeneration"
    ours, processor = load_model_and_processor(resolve_model_source(str(merged_sft / "merged")))
    batch = student_batch(inputs, processor)
    with torch.no_grad():
        assert torch.equal(merged(**batch).logits, ours(**batch).logits)


@pytest.mark.skipif(
    not is_torchvision_available(), reason="AutoProcessor builds Qwen-VL's video part, which needs torchvision"
)
def test_the_merged_model_directory_loads_with_auto_processor(inputs, merged_sft: Path) -> None:
    processor = AutoProcessor.from_pretrained(merged_sft / "merged")
    _, ours = load_model_and_processor(resolve_model_source(str(merged_sft / "merged")))
    assert torch.equal(student_batch(inputs, processor)["input_ids"], student_batch(inputs, ours)["input_ids"])


class WeightsPerStep(TrainerCallback):
    """Copies of the trainable weights after every optimiser step."""

    def __init__(self) -> None:
        self.steps: dict[int, list[torch.Tensor]] = {}

    def on_step_end(self, args, state, control, model=None, **kwargs) -> None:
        self.steps[state.global_step] = [p.detach().clone() for p in model.parameters() if p.requires_grad]


def test_validation_scores_every_n_steps_and_keep_best_publishes_that_step(inputs, tmp_path: Path, monkeypatch) -> None:
    recorder = WeightsPerStep()
    monkeypatch.setattr(training_callbacks, "EXTRA_CALLBACKS", [recorder])
    validation = {"every_steps": 2, "frames": 2, "max_new_tokens": 8, "keep": "best"}
    artifact = sft_stage.run(
        config(inputs, max_steps=5, validation=validation), OutputSpec(tmp_path / "runs"), data=inputs["distill"]
    )
    history = json.loads((artifact.path / "log_history.json").read_text())
    scored = {entry["step"]: entry["val/planning_accuracy"] for entry in history if "val/planning_accuracy" in entry}
    assert sorted(scored) == [0, 2, 4, 5]  # the start, every 2 steps and the last one
    assert all(0 <= value <= 1 for value in scored.values())
    step_two = next(entry for entry in history if entry["step"] == 2 and "val/planning_accuracy" in entry)
    assert all(f"val/recall/path/{action}" in step_two for action in DEFAULT_VOCABULARY.path)
    scored.pop(0)  # the starting policy is logged, never kept
    summary = artifact.manifest["validation"]
    best = max(sorted(scored), key=lambda step: (scored[step], -step))  # the earlier step on a tie
    assert summary["best_step"] == summary["published_step"] == best and summary["scored_steps"] == [0, 2, 4, 5]
    assert "val/planning_accuracy" in artifact.manifest["curves"]["plotted"]
    published = load_file(artifact.path / "adapter_model.safetensors")

    def matches(step: int) -> bool:
        return all(
            any(t.shape == w.shape and torch.equal(t, w) for t in published.values()) for w in recorder.steps[step]
        )

    assert matches(best), summary
    if best != 5:
        assert not matches(5)


def test_the_validation_sample_depends_on_its_own_seed_only(tmp_path: Path) -> None:
    data = open_artifact(make_labelled_data(tmp_path / "runs", [("KEEP", "STRAIGHT")] * 12, {"val": range(12)}))
    for_every_seed = validation_sample(data, DEFAULT_VOCABULARY, ValidationConfig(frames=4))
    training = resolve_config("sft", SftConfig, overrides=["seed=7"])  # the training seed does not reach the draw
    assert validation_sample(data, DEFAULT_VOCABULARY, training.validation.model_copy(update={"frames": 4})) == (
        for_every_seed
    )
    drawn = {
        tuple(
            record.id
            for record in validation_sample(data, DEFAULT_VOCABULARY, ValidationConfig(frames=4, sample_seed=s))
        )
        for s in range(5)
    }
    assert len(for_every_seed) == 4 and len(drawn) > 1


def test_keep_best_needs_validation_scores(inputs) -> None:
    with pytest.raises(BadInput, match="keep: best needs validation scores"):
        config(inputs, validation={"keep": "best"})


@pytest.mark.parametrize("workers", [0, 2])
def test_trainer_arguments_keep_loader_workers_through_the_run_when_there_are_some(
    tmp_path: Path, workers: int
) -> None:
    """A worker restarted at every epoch loses its frame caches and stalls the first batch (0.4 s an epoch on an
    H100, docs/benchmarks.md): with workers, the trainer keeps them; without, there is nothing to keep."""
    from alphadrive_cli.training.policy import Precision
    from alphadrive_cli.training.run import trainer_arguments

    config = SftConfig(model="m", dataloader_workers=workers)
    arguments = trainer_arguments(config, Precision(cuda=False, bf16=False), tmp_path)
    assert arguments["dataloader_num_workers"] == workers
    assert arguments["dataloader_persistent_workers"] is (workers > 0)


class _WeightWatch(TrainerCallback):
    """Per optimiser step: whether the language model's and the vision tower's weights differ from the start."""

    def __init__(self) -> None:
        self.start: dict[str, torch.Tensor] = {}
        self.moved: list[tuple[bool, bool]] = []

    def _snapshot(self, model) -> dict[str, torch.Tensor]:
        return {name: parameter.detach().clone() for name, parameter in model.named_parameters()}

    def on_train_begin(self, args, state, control, model=None, **kwargs) -> None:
        self.start = self._snapshot(model)

    def on_step_end(self, args, state, control, model=None, **kwargs) -> None:
        now = self._snapshot(model)
        changed = {name for name, value in now.items() if not torch.equal(value, self.start[name])}
        self.moved.append(
            (any(".visual." not in f".{name}" for name in changed), any(".visual." in f".{name}" for name in changed))
        )


def test_language_frozen_epochs_train_the_vision_tower_alone_then_every_weight(
    inputs, tmp_path: Path, monkeypatch
) -> None:
    watch = _WeightWatch()
    monkeypatch.setattr(training_callbacks, "EXTRA_CALLBACKS", [watch])
    frozen = {"finetune": "full", "freeze_vision": False, "language_frozen_epochs": 1}
    cfg = config(inputs, max_steps=-1, epochs=2, learning_rate=1e-2, **frozen)
    sft_stage.run(cfg, OutputSpec(tmp_path / "runs"), data=inputs["distill"])
    # 6 train frames in batches of 2: the first epoch's 3 steps move the vision tower alone, the next every weight
    assert watch.moved == [(False, True)] * 3 + [(True, True)] * 3


def test_language_frozen_epochs_must_leave_epochs_for_the_language_model(inputs) -> None:
    frozen = {"finetune": "full", "freeze_vision": False, "max_steps": -1, "epochs": 2}
    with pytest.raises(BadInput, match="language model would never train"):
        config(inputs, language_frozen_epochs=2, **frozen)
    assert config(inputs, language_frozen_epochs=1.5, **frozen).language_frozen_epochs == 1.5


@pytest.mark.parametrize("settings", [["finetune=lora"], ["freeze_vision=true"]])
def test_language_frozen_epochs_need_a_trainable_vision_tower_of_a_full_model(cli, inputs, settings) -> None:
    extra = [] if "freeze_vision=true" in settings else ["--set", "freeze_vision=false"]
    flags = [part for setting in settings for part in ("--set", setting)]
    result = cli(
        "sft",
        "--data",
        inputs["distill"],
        "--model",
        inputs["model"],
        "--set",
        "language_frozen_epochs=1",
        *flags,
        *extra,
    )
    assert result.exit_code == 2 and "language_frozen_epochs trains the vision tower alone" in result.stderr


def test_a_label_only_the_image_tells_is_learnt_through_the_vision_tower(tmp_path: Path) -> None:
    """The whole path from pixels to the answer learns: every frame has the same prompt, dark frames are STOP and
    bright ones KEEP. Planned from its own images the model answers right; from other frames' images
    (eval images=shuffled) about half of its answers are wrong."""
    from alphadrive_cli.config.schemas import EvalConfig
    from alphadrive_cli.stages import eval_open_loop

    labels = [("STOP", "STRAIGHT") if index % 2 == 0 else ("KEEP", "STRAIGHT") for index in range(48)]
    shades = [20 + index % 7 if index % 2 == 0 else 230 - index % 7 for index in range(48)]
    root = tmp_path / "runs"
    data = make_labelled_data(root, labels, {"train": range(32), "test": range(32, 48)}, shades=shades)
    model = models_tiny.run(TinyModelConfig(), OutputSpec(root)).path
    cfg = resolve_config(
        "sft",
        SftConfig,
        scale="tiny",
        options={
            "model": str(model),
            "reasoning": False,
            "freeze_vision": False,
            "epochs": 40,
            "per_device_batch_size": 8,
        },
    )
    trained = sft_stage.run(cfg, OutputSpec(root), data=data).path
    accuracy = {}
    for images in ("own", "shuffled"):
        settings = EvalConfig(batch_size=16, max_new_tokens=16, images=images)
        scored = eval_open_loop.run(settings, OutputSpec(root, images), data=data, model=str(trained))
        accuracy[images] = scored.manifest["metrics"]["planning_accuracy"]
    assert accuracy["own"] >= 0.9 and accuracy["shuffled"] <= accuracy["own"] - 0.25, accuracy


def test_keep_best_in_frozen_epochs_publishes_every_weight_of_that_step(inputs, tmp_path: Path, monkeypatch) -> None:
    """With language_frozen_epochs, the best step's snapshot holds the language model too (as it stood then, not
    as the last step left it)."""
    from alphadrive_cli.training import validation as validation_module

    accuracies, real = iter([0.0, 1.0, 0.5]), validation_module.validation_scores
    monkeypatch.setattr(
        validation_module,
        "validation_scores",
        lambda *args: {**real(*args), validation_module.ACCURACY_KEY: next(accuracies)},
    )
    per_step: dict[int, list[torch.Tensor]] = {}

    class EveryWeight(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs) -> None:
            per_step[state.global_step] = [weight.detach().clone() for weight in model.parameters()]

    monkeypatch.setattr(training_callbacks, "EXTRA_CALLBACKS", [EveryWeight()])
    frozen = {"finetune": "full", "freeze_vision": False, "language_frozen_epochs": 1, "learning_rate": 1e-2}
    validation = {"every_steps": 3, "frames": 2, "max_new_tokens": 4, "keep": "best"}
    cfg = config(inputs, max_steps=-1, epochs=2, validation=validation, **frozen)
    artifact = sft_stage.run(cfg, OutputSpec(tmp_path / "runs"), data=inputs["distill"])
    assert artifact.manifest["validation"]["published_step"] == 3
    assert artifact.manifest["training"]["language_thawed_at_step"] == 4
    published = list(load_file(artifact.path / "model.safetensors").values())

    def kept(weights: list[torch.Tensor]) -> bool:
        return all(any(t.shape == w.shape and torch.equal(t, w) for t in published) for w in weights)

    assert kept(per_step[3]) and not kept(per_step[6])
