"""``alphadrive grpo``: the reward functions as TRL sees them, and real GRPO steps on the tiny model.

The policy for the real steps is the tiny model after a short full SFT on one-line reasoning
(``<think>Check the road.</think><answer>…</answer>``, about 20 tokens), so sampled completions are a
mix of right, wrong and malformed answers: every reward component takes more than one value.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from alphadrive_cli.actions import DEFAULT_VOCABULARY
from alphadrive_cli.artifacts.store import OutputSpec, lineage, open_artifact
from alphadrive_cli.config.resolve import resolve_config
from alphadrive_cli.config.schemas import GrpoConfig, SftConfig, TinyModelConfig
from alphadrive_cli.data.records import Record, iter_split
from alphadrive_cli.errors import BadInput
from alphadrive_cli.rewards.planning import RewardConfig, format_reward, group_rewards
from alphadrive_cli.rewards.trl_adapter import (
    COMPONENTS,
    PlanningRewards,
    SampleLog,
    completion_text,
    plan_key,
    plan_of_key,
)
from alphadrive_cli.stages import grpo as grpo_stage
from alphadrive_cli.stages import models_tiny
from alphadrive_cli.stages import sft as sft_stage
from alphadrive_cli.training import callbacks as training_callbacks
from alphadrive_cli.training import run as training_run
from alphadrive_cli.training.class_balance import balanced_prompts, inverse_frequency_weights
from alphadrive_cli.training.reward_signal import RewardSignalWatch
from alphadrive_cli.ui import console
from tests.support.interrupts import InterruptAfterSave, Interrupted
from tests.support.labelled_data import judged, make_labelled_data

LABELS = [("KEEP", "STRAIGHT"), ("DECELERATE", "LEFT_TURN"), ("STOP", "STRAIGHT"), ("ACCELERATE", "RIGHT_CHANGE")] * 2
TRUTH = {f"f{i}": label for i, label in enumerate(LABELS)}


def answer(speed: str, path: str) -> str:
    return f"<think>Check the road.</think><answer>{speed}, {path}</answer>"


def batch(rng: random.Random) -> tuple[list, list[str]]:
    """Three groups of four completions (conversational, as TRL passes them), shuffled."""
    texts = {
        "f0": [answer("KEEP", "STRAIGHT"), answer("KEEP", "STRAIGHT"), answer("STOP", "STRAIGHT"), "KEEP"],
        "f1": [
            answer("DECELERATE", "LEFT_TURN"),
            answer("KEEP", "LEFT_TURN"),
            answer("DECELERATE, KEEP", "LEFT_TURN"),
            answer("DECELERATE", "LEFT_TURN"),
        ],
        "f2": [answer("STOP", "STRAIGHT")] * 4,
    }
    rows = [(frame, [{"role": "assistant", "content": text}]) for frame, group in texts.items() for text in group]
    rng.shuffle(rows)
    return [completion for _, completion in rows], [frame for frame, _ in rows]


def call(functions, completions, frames, **extra) -> list[list[float]]:
    columns = {
        "frame_id": frames,
        "speed_action": [TRUTH[f][0] for f in frames],
        "path_action": [TRUTH[f][1] for f in frames],
        **extra,
    }
    return [function(completions=completions, **columns) for function in functions]


def test_weighted_reward_functions_sum_to_the_total_and_ignore_batch_order() -> None:
    config = RewardConfig().model_copy(update={"format_coef": 0.5, "quality_coef": 2.0})
    rewards = PlanningRewards(config, DEFAULT_VOCABULARY)
    by_completion: dict[tuple[str, str], list[float]] = {}
    for seed in range(5):
        completions, frames = batch(random.Random(seed))
        outputs = call(rewards.reward_functions(), completions, frames)
        totals = [
            sum(w * out[i] for w, out in zip(rewards.reward_weights(), outputs, strict=False))
            for i in range(len(frames))
        ]
        texts = [completion_text(c) for c in completions]
        expected = group_rewards(texts, [TRUTH[f] for f in frames], frames, config)
        assert totals == pytest.approx([b.total for b in expected])
        for i, frame in enumerate(frames):  # identical completions of a group score the same, whatever the order
            key = (frame, texts[i])
            by_completion.setdefault(key, [totals[i]])
            assert totals[i] == pytest.approx(by_completion[key][0])
    exact = by_completion[("f1", answer("DECELERATE", "LEFT_TURN"))][0]
    hedge = by_completion[("f1", answer("DECELERATE, KEEP", "LEFT_TURN"))][0]
    assert exact > hedge > 0


def test_diversity_is_computed_within_each_frame_group() -> None:
    config = RewardConfig().model_copy(update={"diversity_floor": 0.7})
    rewards = PlanningRewards(config, DEFAULT_VOCABULARY)
    completions, frames = batch(random.Random(0))
    scored = rewards.score(
        completions,
        frame_id=frames,
        speed_action=[TRUTH[f][0] for f in frames],
        path_action=[TRUTH[f][1] for f in frames],
    )
    by_text = {(frame, completion_text(c)): b for b, frame, c in zip(scored, frames, completions, strict=False)}
    assert by_text[("f2", answer("STOP", "STRAIGHT"))].speed_diversity == 0.7  # 4 of 4 alike: the floor
    # 2 of f1's 4 answer exactly DECELERATE (1 - 2/4, floored at 0.7); across the batch it would be 2 of 12
    assert by_text[("f1", answer("DECELERATE", "LEFT_TURN"))].speed_diversity == 0.7
    assert by_text[("f1", answer("KEEP", "LEFT_TURN"))].speed_diversity == 0.75  # 1 of 4
    assert by_text[("f0", answer("STOP", "STRAIGHT"))].speed_diversity == 0.75  # f2's four STOPs do not count


def test_a_batch_is_scored_once_and_every_component_is_logged() -> None:
    rewards = PlanningRewards(RewardConfig(), DEFAULT_VOCABULARY)
    completions, frames = batch(random.Random(1))
    logged: dict[str, float] = {}
    call(rewards.reward_functions(), completions, frames, log_metric=logged.__setitem__)
    assert set(logged) == {f"planning/{c}/{s}" for c in COMPONENTS for s in ("mean", "std", "zero_std_groups")}
    assert logged["planning/format/mean"] == pytest.approx(11 / 12)
    assert logged["planning/speed_weight/zero_std_groups"] == 1.0  # the weight is the truth's: constant per group
    assert logged["planning/format/zero_std_groups"] == pytest.approx(2 / 3)  # only f0 has a malformed answer


def test_sample_log_writes_every_n_steps_and_drops_steps_that_rerun(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    log = SampleLog(path, every=2, groups=1)
    for step in range(6):
        log.maybe_write(step, [{"frame_id": "f0"}])
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [0, 2, 4]
    with path.open("a") as handle:
        handle.write('{"step": 6, "frame')  # a line cut by a crash
    resumed = SampleLog(path, every=2, groups=1, resume_step=4)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [0, 2]
    resumed.maybe_write(3, [{}])
    resumed.maybe_write(4, [{}])
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [0, 2, 4]


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Data (8 frames with a one-line reasoning trace), the tiny model, and that model after a short full SFT."""
    root = tmp_path_factory.mktemp("grpo-inputs") / "runs"
    data = make_labelled_data(root, LABELS, {"train": range(8)}, reasoning="Check the road.")
    model = models_tiny.run(TinyModelConfig(), OutputSpec(root)).path
    sft = sft_stage.run(
        SftConfig(
            model=str(model),
            finetune="full",
            learning_rate=1e-2,
            max_steps=120,
            per_device_batch_size=4,
            max_length=1024,
        ),
        OutputSpec(root),
        data=data,
    )
    return {"data": data, "model": model, "sft": sft.path}


def grpo_config(init: Path, **overrides) -> GrpoConfig:
    values = {
        "model": str(init),
        "max_steps": 4,
        "per_device_batch_size": 8,
        "num_generations": 4,
        "max_completion_length": 32,
        "learning_rate": 1e-3,
        "sample_every": 2,
        "sample_groups": 1,
        "lora": {"r": 8, "alpha": 16},
    }
    return resolve_config("grpo", GrpoConfig, options={**values, **overrides})


def test_real_grpo_steps_exercise_every_reward(policy, tmp_path: Path) -> None:
    with console.capture() as captured:
        artifact = grpo_stage.run(grpo_config(policy["sft"]), OutputSpec(tmp_path / "runs"), data=policy["data"])
    assert "step 4/4: reward" in captured.get()
    manifest = artifact.manifest
    assert manifest["stage"] == "grpo" and manifest["metrics"]["steps"] == 4
    assert [i["role"] for i in manifest["inputs"]] == ["data", "init"]
    assert manifest["training"]["finetune"] == "lora"
    history = json.loads((artifact.path / "log_history.json").read_text())
    steps = [entry for entry in history if "reward" in entry]
    assert len(steps) == 4
    for entry in steps:  # every component, every step
        for component in COMPONENTS:
            for stat in ("mean", "std", "zero_std_groups"):
                assert f"planning/{component}/{stat}" in entry
        for function in ("format", "speed_planning", "path_planning"):
            assert f"rewards/{function}/mean" in entry
        weighted = (
            entry["rewards/format/mean"] + entry["rewards/speed_planning/mean"] + entry["rewards/path_planning/mean"]
        )
        assert entry["reward"] == pytest.approx(weighted, abs=1e-5)
        assert entry["planning/total/mean"] == pytest.approx(entry["reward"], abs=1e-5)
    # the SFT policy answers in format mostly, but not always right: real, varying rewards
    assert max(entry["planning/format/mean"] for entry in steps) > 0.5
    assert max(entry["planning/speed_accuracy/mean"] for entry in steps) > 0
    assert min(entry["frac_reward_zero_std"] for entry in steps) < 1
    samples = [json.loads(line) for line in (artifact.path / "samples.jsonl").read_text().splitlines()]
    assert {row["step"] for row in samples} == {0, 2}
    assert all(len([r for r in samples if r["step"] == step]) == 4 for step in (0, 2))  # one group of 4
    for row in samples:
        assert tuple(row["truth"].values()) == TRUTH[row["frame_id"]]
        assert set(row["rewards"]) == set(COMPONENTS)
    assert (artifact.path / "reward_curves.png").stat().st_size > 10_000
    assert any((artifact.path / "tensorboard").rglob("events.out.tfevents*"))
    assert (artifact.path / "adapter_config.json").is_file() and not (artifact.path / "ref").exists()
    assert not (artifact.path / "checkpoints").exists()


def one_cli_step(cli, policy, tmp_path: Path, *extra: str) -> Path:
    """`alphadrive grpo` for one short step from the SFT policy, with ``extra`` arguments: its artifact."""
    result = cli(
        "grpo",
        "--data",
        policy["data"],
        "--init",
        policy["sft"],
        "--out-root",
        tmp_path,
        "--set",
        "max_steps=1",
        "--set",
        "max_completion_length=24",
        *extra,
    )
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip())


def test_grpo_artifact_evaluates_and_traces_back_to_the_data(policy, cli, tmp_path: Path) -> None:
    grpo = one_cli_step(cli, policy, tmp_path)
    evaluated = cli(
        "eval",
        "--model",
        grpo,
        "--data",
        policy["data"],
        "--split",
        "train",
        "--out-root",
        tmp_path,
        "--set",
        "max_new_tokens=24",
    )
    assert evaluated.exit_code == 0, evaluated.stderr
    tree = lineage(open_artifact(Path(evaluated.stdout.strip())))
    # the tiny preset trains every weight: the grpo artifact is a whole model, its lineage runs through --init
    assert walk(tree) == {("eval", None), ("grpo", "model"), ("data", "data"), ("sft", "init"), ("model", "model")}


def test_no_reasoning_flag_rewards_answers_alone(policy, cli, tmp_path: Path) -> None:
    """grpo --no-reasoning (after sft --no-reasoning, the paper's ablation) asks for <answer>…</answer> alone:
    the flag reaches the rewards, and the sampled completions are scored by that format."""
    artifact = open_artifact(one_cli_step(cli, policy, tmp_path, "--no-reasoning", "--set", "sample_every=1"))
    assert artifact.manifest["config"]["rewards"]["reasoning"] is False
    samples = [json.loads(line) for line in (artifact.path / "samples.jsonl").read_text().splitlines()]
    assert samples
    for row in samples:
        assert row["rewards"]["format"] == format_reward(row["completion"], reasoning=False)


def walk(node) -> set[tuple[str, str | None]]:
    """(stage, role) of every artifact in a lineage tree; every recorded input must be found."""
    assert node.problem is None, node.problem
    found = {(node.artifact.stage, None if node.role == "artifact" else node.role)}
    for parent in node.parents:
        found |= walk(parent)
    return found


def test_rl_only_from_the_base_model_trains_fresh_adapters(policy, tmp_path: Path) -> None:
    with console.capture() as captured:
        artifact = grpo_stage.run(
            grpo_config(policy["model"], max_steps=1), OutputSpec(tmp_path / "runs"), data=policy["data"]
        )
    assert "no step had a reward signal" in " ".join(captured.get().split())
    assert artifact.manifest["model"]["init"] == "fresh LoRA on the base model"
    # a random base model never answers in format: no group had unequal rewards, and the manifest says so
    history = json.loads((artifact.path / "log_history.json").read_text())
    assert [entry["frac_reward_zero_std"] for entry in history if "frac_reward_zero_std" in entry] == [1.0]
    assert artifact.manifest["metrics"]["steps_with_reward_signal"] == 0
    config = json.loads((artifact.path / "adapter_config.json").read_text())
    assert config["r"] == 8 and Path(config["base_model_name_or_path"]) == policy["model"].resolve()


def test_rl_only_without_reward_signal_stops_when_asked_and_leaves_the_model_as_it_was(policy, tmp_path: Path) -> None:
    with console.capture() as captured:
        artifact = grpo_stage.run(
            grpo_config(policy["model"], max_steps=4, stop_without_signal=1),
            OutputSpec(tmp_path / "runs"),
            data=policy["data"],
        )
    assert "stopping: no reward signal in the first 1 logged steps" in " ".join(captured.get().split())
    metrics = artifact.manifest["metrics"]
    assert metrics["steps"] == 1 and metrics["stopped_without_reward_signal"] is True
    # every advantage was zero: the fresh adapter's B matrices are still zero, so the policy is the base model
    adapter = load_file(str(artifact.path / "adapter_model.safetensors"))
    lora_b = [tensor for name, tensor in adapter.items() if "lora_B" in name]
    assert lora_b and all(torch.count_nonzero(tensor) == 0 for tensor in lora_b)


def test_the_reward_signal_watch_stops_a_run_only_while_no_step_has_had_signal() -> None:
    flat = RewardSignalWatch(steps=10, stop_after=2)
    control = SimpleNamespace(should_training_stop=False)
    with console.capture():
        for _ in range(2):
            flat.on_log(None, None, control, logs={"frac_reward_zero_std": 1.0})
    assert flat.stopped and control.should_training_stop
    learning = RewardSignalWatch(steps=10, stop_after=2)
    control = SimpleNamespace(should_training_stop=False)
    for value in (0.5, 1.0, 1.0, 1.0):
        learning.on_log(None, None, control, logs={"frac_reward_zero_std": value})
    assert not learning.stopped and not control.should_training_stop


def test_interrupted_run_resumes_without_repeating_samples(policy, tmp_path: Path, monkeypatch) -> None:
    cfg = grpo_config(policy["sft"], save_steps=2, sample_every=1, finetune="full")
    monkeypatch.setattr(training_callbacks, "EXTRA_CALLBACKS", [InterruptAfterSave()])
    with pytest.raises(Interrupted):
        grpo_stage.run(cfg, OutputSpec(tmp_path / "runs"), data=policy["data"])
    partial = tmp_path / "runs" / "grpo" / ".grpo.partial"
    assert (partial / "checkpoints" / "checkpoint-2").is_dir()
    monkeypatch.setattr(training_callbacks, "EXTRA_CALLBACKS", [])
    artifact = grpo_stage.run(cfg, OutputSpec(tmp_path / "runs"), data=policy["data"])
    assert artifact.manifest["training"]["resumed_from_step"] == 2
    metrics = artifact.manifest["metrics"]
    assert metrics["steps"] == 4
    # samples/s over both sessions' training time: the clock goes on from checkpoint-2's stamp
    clock = [
        entry["train_elapsed_s"]
        for entry in json.loads((artifact.path / "log_history.json").read_text())
        if "loss" in entry
    ]
    assert len(clock) == 4 and clock == sorted(clock) and metrics["train_runtime_s"] >= clock[-1] > clock[1] > 0
    completions = 4 * cfg.per_device_batch_size * cfg.gradient_accumulation_steps
    assert metrics["train_samples_per_second"] == pytest.approx(completions / metrics["train_runtime_s"], rel=1e-3)
    samples = [json.loads(line)["step"] for line in (artifact.path / "samples.jsonl").read_text().splitlines()]
    assert sorted(set(samples)) == [0, 1, 2, 3] and len(samples) == 16  # each step once, 4 completions each
    assert (artifact.path / "model.safetensors").is_file()  # finetune: full saves the whole model
    assert artifact.manifest["model"]["init"] == "every weight trained"


def test_one_batched_rollout_feeds_several_optimiser_steps(policy, tmp_path: Path) -> None:
    """generation_batch_size reaches TRL: 16 completions generated at once serve two steps of 8; compiled
    decoding is CUDA-only, so on the CPU the rollout uses the dynamic cache."""
    artifact = grpo_stage.run(
        grpo_config(policy["sft"], generation_batch_size=16), OutputSpec(tmp_path / "runs"), data=policy["data"]
    )
    assert artifact.manifest["generation"] == {
        "batch_size": 16,
        "steps_per_generation": 2,
        "scoring_batch_size": 8,
        "compiled": torch.cuda.is_available(),
        "cache": "static" if torch.cuda.is_available() else "dynamic",
        "rollout_dtype": "weights",
    }
    assert artifact.manifest["metrics"]["steps"] == 4
    with pytest.raises(BadInput, match="generation_batch_size = 12 is not a multiple"):
        grpo_stage.run(
            grpo_config(policy["sft"], generation_batch_size=12), OutputSpec(tmp_path / "runs"), data=policy["data"]
        )
    # 40 completions of 4 a frame are 10 frames a rollout, more than the 8 train frames: said before any loading
    with pytest.raises(BadInput, match="one rollout takes 10 frames .* has 8 train frames: .* at most 32 completions"):
        grpo_stage.run(
            grpo_config(policy["sft"], generation_batch_size=40), OutputSpec(tmp_path / "runs"), data=policy["data"]
        )


def test_scoring_in_larger_chunks_changes_no_number(policy, tmp_path: Path, monkeypatch) -> None:
    """scoring_batch_size: a rollout of 16 is scored (old-policy and reference log-probabilities, no gradient) in
    one pass instead of two of 8, the loss passes keep their chunk of 8, and the run's numbers stay the same."""
    from trl import GRPOTrainer

    chunks: list[tuple[bool, int | None]] = []
    original = GRPOTrainer._get_per_token_logps_and_entropies

    def spy(self, *args, **kwargs):
        chunks.append((torch.is_grad_enabled(), kwargs.get("batch_size")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GRPOTrainer, "_get_per_token_logps_and_entropies", spy)
    settings = {"generation_batch_size": 16, "per_device_batch_size": 8, "beta": 0.04, "finetune": "full"}
    histories = {}
    for scoring in (None, 16):
        chunks.clear()
        artifact = grpo_stage.run(
            grpo_config(policy["sft"], **settings, scoring_batch_size=scoring),
            OutputSpec(tmp_path / f"runs-{scoring}"),
            data=policy["data"],
        )
        scored = {size for grad, size in chunks if not grad}
        assert scored == {scoring or 8}
        assert {size for grad, size in chunks if grad} <= {None, 8}  # the loss passes: TRL's own chunk
        assert artifact.manifest["generation"]["scoring_batch_size"] == (scoring or 8)
        history = json.loads((artifact.path / "log_history.json").read_text())
        histories[scoring] = [entry for entry in history if "reward" in entry]
    for before, after in zip(histories[None], histories[16], strict=True):
        for key in ("reward", "loss", "kl", "grad_norm"):
            assert after[key] == pytest.approx(before[key], rel=1e-4, abs=1e-6), key


def test_each_prompt_of_a_rollout_is_tokenized_once(policy, tmp_path: Path, monkeypatch) -> None:
    """TRL tokenizes a rollout's prompts twice, each repeated num_generations times; the tokenizer itself gets each
    distinct prompt once (models/distinct_texts.py), never the repeated batch."""
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    from alphadrive_cli.models.distinct_texts import DistinctTexts

    given: list[list[str]] = []  # what TRL asks the processor's tokenizer for
    tokenized: list[list[str]] = []  # what the tokenizer itself tokenizes
    for cls, seen in ((DistinctTexts, given), (PreTrainedTokenizerBase, tokenized)):
        original = cls.__call__

        def spy(self, text=None, *args, _original=original, _seen=seen, **kwargs):
            if isinstance(text, list):
                _seen.append(list(text))
            return _original(self, text, *args, **kwargs)

        monkeypatch.setattr(cls, "__call__", spy)
    grpo_stage.run(grpo_config(policy["sft"], max_steps=1), OutputSpec(tmp_path), data=policy["data"])
    rollouts = [texts for texts in given if len(texts) == 8]  # 2 frames x 4 completions
    assert len(rollouts) >= 2  # generation and scoring
    assert all(list(dict.fromkeys(texts)) in tokenized for texts in rollouts)
    assert not any(len(texts) > len(set(texts)) for texts in tokenized)


def test_prompt_rows_hold_no_tensor_and_are_not_pinned(policy, tmp_path: Path, monkeypatch) -> None:
    """TRL fetches a whole rollout's prompt rows at every optimiser step; a row holds no tensor, so the stage asks
    the loader not to pin them (pinning would only walk every row's nested messages each step). torch ignores
    ``pin_memory`` without CUDA, so what the stage passes and what the trainer holds are what is checked."""
    import trl
    from trl import GRPOTrainer

    asked: list[dict] = []
    rows: list[dict] = []
    held: list[bool] = []

    original_init = trl.GRPOConfig.__init__

    def recording_init(self, **kwargs) -> None:
        asked.append(kwargs)
        original_init(self, **kwargs)

    original = GRPOTrainer.get_train_dataloader

    def spy(self):
        rows.append(self.train_dataset[0])
        held.append(self.args.dataloader_pin_memory)
        return original(self)

    monkeypatch.setattr(trl.GRPOConfig, "__init__", recording_init)
    monkeypatch.setattr(GRPOTrainer, "get_train_dataloader", spy)
    grpo_stage.run(grpo_config(policy["sft"], max_steps=1), OutputSpec(tmp_path), data=policy["data"])

    def leaves(value: object) -> list[object]:
        if isinstance(value, dict):
            return [leaf for item in value.values() for leaf in leaves(item)]
        if isinstance(value, (list, tuple)):
            return [leaf for item in value for leaf in leaves(item)]
        return [value]

    assert [kwargs.get("dataloader_pin_memory") for kwargs in asked] == [False]
    assert held == [False]
    assert set(rows[0]) >= {"prompt", "images", "frame_id"}
    assert not any(isinstance(leaf, torch.Tensor) for leaf in leaves(rows[0]))


def test_a_rollouts_prompt_rows_are_read_once_and_stay_on_the_host(policy, tmp_path: Path, monkeypatch) -> None:
    """TRL's loader hands the trainer a whole rollout's prompt rows at every optimiser step: with 2 steps a rollout
    (generation_batch_size 16 of per_device_batch_size 8) and 4 steps, the table is read twice, not 4 times, and
    no batch goes through accelerate's walk to the device (a row holds no tensor)."""
    import accelerate.data_loader
    import datasets

    reads: list[int] = []
    moved: list[object] = []
    original_read, original_move = datasets.Dataset.__getitems__, accelerate.data_loader.send_to_device

    def read(self, keys):
        reads.append(len(keys))
        return original_read(self, keys)

    def move(batch, *args, **kwargs):
        moved.append(batch)
        return original_move(batch, *args, **kwargs)

    monkeypatch.setattr(datasets.Dataset, "__getitems__", read)
    monkeypatch.setattr(accelerate.data_loader, "send_to_device", move)
    config = grpo_config(policy["sft"], max_steps=4, generation_batch_size=16)
    artifact = grpo_stage.run(config, OutputSpec(tmp_path), data=policy["data"])
    assert artifact.manifest["metrics"]["steps"] == 4
    assert reads.count(16) == 2
    assert moved == []


@pytest.mark.parametrize("disable_dropout", [True, False])
def test_rollouts_are_scored_without_dropout_unless_asked(
    policy, tmp_path: Path, monkeypatch, disable_dropout: bool
) -> None:
    """The policy stays in train mode while TRL samples and scores a rollout: by default every dropout (the LoRA
    adapter's 0.05 here) is 0 there, so the sampled policy is the trained one; disable_dropout: false keeps it."""
    from trl import GRPOTrainer

    active: list[float] = []
    original = GRPOTrainer._get_per_token_logps_and_entropies

    def spy(self, model, *args, **kwargs):
        if not torch.is_grad_enabled():  # a rollout's scoring pass
            active.extend(m.p for m in model.modules() if isinstance(m, torch.nn.Dropout) and m.training)
        return original(self, model, *args, **kwargs)

    monkeypatch.setattr(GRPOTrainer, "_get_per_token_logps_and_entropies", spy)
    config = grpo_config(policy["sft"], max_steps=1, disable_dropout=disable_dropout)
    artifact = grpo_stage.run(config, OutputSpec(tmp_path), data=policy["data"])
    assert active, "no dropout module seen in a scoring pass"
    assert max(active) == (0.0 if disable_dropout else config.lora.dropout)
    assert artifact.manifest["config"]["disable_dropout"] is disable_dropout


@pytest.mark.parametrize(
    ("full_under_autocast", "rollout_dtype"),
    [(False, "weights"), (True, "weights"), (True, "bfloat16"), (False, "bfloat16")],
    ids=["lora", "full-fp32-weights-bf16-autocast", "full-bf16-rollout-copy", "lora-bf16-asked"],
)
def test_compiled_generation_decodes_rollouts_through_graph_sample(
    policy, tmp_path: Path, monkeypatch, recwarn, capsys, full_under_autocast: bool, rollout_dtype: str
) -> None:
    """The compile_generation route, forced on the CPU (eager steps, no CUDA graph): TRL's generate call on the
    PEFT-wrapped policy reaches graph_sample with the static cache and TRL's sampling settings (no fallback to
    transformers' loop), and the rollouts train. Also for finetune: full under bf16 autocast (as on a GPU),
    whose fp32 weights once put fp32 keys and bf16 values into one static cache, and there with
    rollout_dtype: bfloat16, whose rollouts decode with a bf16 copy of the policy (a LoRA policy gets none: its
    weights are not its class's own, the adapters' layers are in them)."""
    from alphadrive_cli.models import graph_decoding
    from alphadrive_cli.stages import grpo
    from alphadrive_cli.training.policy import Precision

    calls = []

    def spy(model, input_ids, *args, **kwargs):
        calls.append((type(kwargs["past_key_values"]).__name__, next(model.parameters()).dtype))
        return sample(model, input_ids, *args, **kwargs)

    sample = graph_decoding.graph_sample
    monkeypatch.setattr(grpo, "_compiled_generation", lambda *args: True)
    monkeypatch.setattr(graph_decoding, "graph_sample", spy)
    settings = {"finetune": "full"} if full_under_autocast else {}
    if full_under_autocast:
        monkeypatch.setattr(training_run, "training_precision", lambda: Precision(cuda=False, bf16=True))
    artifact = grpo_stage.run(
        grpo_config(policy["model"], max_steps=1, rollout_dtype=rollout_dtype, **settings),
        OutputSpec(tmp_path / "runs"),
        data=policy["data"],
    )
    copied = full_under_autocast and rollout_dtype == "bfloat16"
    assert calls == [("StaticCache", torch.bfloat16 if copied else torch.float32)]
    assert not [warning for warning in recwarn if "falls back" in str(warning.message)]
    assert artifact.manifest["generation"]["compiled"] and artifact.manifest["metrics"]["steps"] == 1
    assert artifact.manifest["generation"]["rollout_dtype"] == ("bfloat16" if copied else "weights")
    refused = rollout_dtype == "bfloat16" and not copied
    assert (
        "rollout_dtype: bfloat16 is not used: the policy is not a plain fp32 model" in capsys.readouterr().err
    ) == refused


@pytest.mark.parametrize(
    ("settings", "expected"), [({}, True), ({"finetune": "full"}, True), ({"gradient_checkpointing": True}, False)]
)
def test_compiled_generation_only_where_the_static_cache_works(settings: dict, expected: bool) -> None:
    from alphadrive_cli.stages import grpo

    config = GrpoConfig(compile_generation=True, **settings)
    assert grpo._compiled_generation(config, cuda=True, quantized=False) is expected
    assert grpo._compiled_generation(config, cuda=False, quantized=False) is False


def test_validation_curves_are_logged_during_grpo(policy, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no validation records"):  # the fixture's data has a train split only
        grpo_stage.run(
            grpo_config(policy["sft"], validation={"every_steps": 2}), OutputSpec(tmp_path), data=policy["data"]
        )
    validation = {"every_steps": 2, "frames": 2, "max_new_tokens": 8}
    data = make_labelled_data(tmp_path / "runs", LABELS, {"train": range(8), "val": range(6, 8)}, reasoning="Look.")
    artifact = grpo_stage.run(
        grpo_config(policy["sft"], validation=validation), OutputSpec(tmp_path / "runs"), data=data
    )
    history = json.loads((artifact.path / "log_history.json").read_text())
    scored = [entry["step"] for entry in history if "val/planning_accuracy" in entry]
    assert scored == [0, 2, 4] and artifact.manifest["validation"]["published_step"] == 4  # keep: last
    assert any("reward" in key for entry in history if entry.get("step") == 2 for key in entry)  # GRPO's own logs kept
    assert "val/planning_accuracy" in artifact.manifest["curves"]["plotted"]


def _labelled(pairs: list[tuple[str, str]]) -> list[Record]:
    return [
        Record(
            id=f"r{i}",
            images=["images/r.png"],
            navigation="go straight",
            ego_speed_mps=5.0,
            speed_action=speed,
            path_action=path,
            source={"origin": "test"},
        )
        for i, (speed, path) in enumerate(pairs)
    ]


def test_balanced_prompts_draw_every_class_alike_with_distinct_group_ids() -> None:
    records = _labelled([("KEEP", "STRAIGHT")] * 90 + [("STOP", "STRAIGHT")] * 9 + [("KEEP", "LEFT_TURN")])
    drawn = balanced_prompts(records, seed=0)
    assert len(drawn) == 100 and len({record.id for record in drawn}) == 100
    classes = Counter((record.speed_action, record.path_action) for record in drawn)
    assert set(classes) == {("KEEP", "STRAIGHT"), ("STOP", "STRAIGHT"), ("KEEP", "LEFT_TURN")}
    assert all(20 <= count <= 47 for count in classes.values())  # a third each, give or take the draw
    assert [r.id for r in balanced_prompts(records, seed=0)] == [r.id for r in drawn]  # seeded


def test_inverse_frequency_weights_by_head() -> None:
    records = _labelled([("KEEP", "STRAIGHT")] * 6 + [("STOP", "STRAIGHT")] * 2 + [("STOP", "LEFT_TURN")] * 2)
    weights = inverse_frequency_weights(records, DEFAULT_VOCABULARY)
    # speed: n = 10 over 2 classes present: KEEP 10 / (2 * 6), STOP 10 / (2 * 4); path: STRAIGHT 10 / (2 * 8)...
    assert weights["KEEP"] == pytest.approx(10 / 12, abs=1e-4) and weights["STOP"] == pytest.approx(10 / 8)
    assert weights["STRAIGHT"] == pytest.approx(10 / 16) and weights["LEFT_TURN"] == pytest.approx(2.5)
    assert weights["ACCELERATE"] == weights["RIGHT_CHANGE"] == 4.0  # absent: the largest weight
    roots = inverse_frequency_weights(records, DEFAULT_VOCABULARY, power=0.5)  # inverse_sqrt_frequency
    assert roots["KEEP"] == pytest.approx((10 / 12) ** 0.5, abs=1e-4) and roots["STOP"] == pytest.approx(
        1.25**0.5, abs=1e-4
    )
    assert roots["LEFT_TURN"] == pytest.approx(2.5**0.5, abs=1e-4) and roots["ACCELERATE"] == 4.0


def test_inverse_frequency_weights_make_the_expected_accuracy_reward_the_mean_recall() -> None:
    """What docs/grpo.md says the weighting optimises: under inverse-frequency weights (unclipped here) the
    accuracy reward a policy earns on the train labels is, in expectation, its mean per-class recall (balanced
    accuracy), not its accuracy. Giving up the rare class for a little more of the majority raises accuracy and
    lowers the weighted reward."""
    counts = {"KEEP": 50, "ACCELERATE": 7, "DECELERATE": 25, "STOP": 18}
    records = _labelled([(action, "STRAIGHT") for action, count in counts.items() for _ in range(count)])
    weights = inverse_frequency_weights(records, DEFAULT_VOCABULARY)
    share = {action: count / sum(counts.values()) for action, count in counts.items()}
    kept = {"KEEP": 0.9, "ACCELERATE": 0.5, "DECELERATE": 0.7, "STOP": 0.8}
    dropped = {**kept, "KEEP": 0.98, "ACCELERATE": 0.0}

    def accuracy(recall: dict[str, float]) -> float:
        return sum(share[action] * recall[action] for action in counts)

    def weighted_reward(recall: dict[str, float]) -> float:
        return sum(share[action] * weights[action] * recall[action] for action in counts)

    for recall in (kept, dropped):
        assert weighted_reward(recall) == pytest.approx(sum(recall.values()) / len(recall), abs=1e-3)
    assert accuracy(dropped) > accuracy(kept) and weighted_reward(dropped) < weighted_reward(kept)


@pytest.mark.parametrize(("weighting", "power"), [("inverse_frequency", 1.0), ("inverse_sqrt_frequency", 0.5)])
def test_grpo_takes_balanced_prompts_and_inverse_frequency_weights(
    policy, tmp_path: Path, weighting: str, power: float
) -> None:
    config = grpo_config(
        policy["sft"],
        max_steps=2,
        prompt_sampling="balanced",
        action_weighting=weighting,
        scale_rewards="batch",
    )
    artifact = grpo_stage.run(config, OutputSpec(tmp_path / "runs"), data=policy["data"])
    manifest = artifact.manifest
    assert manifest["prompt_sampling"]["sampling"] == "balanced"
    assert sum(manifest["prompt_sampling"]["classes"].values()) == 8
    records = list(iter_split(open_artifact(policy["data"]), "train", DEFAULT_VOCABULARY))
    trained_on = balanced_prompts(records, config.seed)  # the weights come from the prompts trained on
    assert manifest["rewards"]["action_weights"] == inverse_frequency_weights(trained_on, DEFAULT_VOCABULARY, power)


@pytest.mark.parametrize(
    ("levers", "message"),
    [
        ({"action_weighting": "inverse_frequency"}, "use scale_rewards batch or none"),
        ({"action_weighting": "inverse_sqrt_frequency"}, "inverse_sqrt_frequency is divided out"),
        (
            {"action_weighting": "inverse_frequency", "scale_rewards": "none", "rewards": {"style": "released_code"}},
            "use style algorithm1",
        ),
    ],
)
def test_levers_that_cannot_work_together_are_refused(policy, levers: dict, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        grpo_config(policy["sft"], **levers)


def test_safety_reward_trains_on_judged_data(policy, tmp_path: Path) -> None:
    """rewards.safety_coef > 0 serves a fourth reward function that pays every sampled plan the simulator judged
    acceptable at its frame; the weighted functions still sum to the logged total."""
    plans = {
        index: [judged(*label, True), judged("KEEP", "STRAIGHT", True), judged("ACCELERATE", "STRAIGHT", False)]
        for index, label in enumerate(LABELS)
    }
    data = make_labelled_data(tmp_path / "runs", LABELS, {"train": range(8)}, plans=plans)
    config = grpo_config(policy["sft"], max_steps=2, sample_every=1, rewards={"safety_coef": 0.5})
    artifact = grpo_stage.run(config, OutputSpec(tmp_path / "runs"), data=data)
    rewards = artifact.manifest["rewards"]
    assert rewards["functions"] == ["format", "speed_planning", "path_planning", "safety"]
    assert rewards["weights"] == [1.0, 1.0, 1.0, 0.5]
    history = json.loads((artifact.path / "log_history.json").read_text())
    for entry in (entry for entry in history if "reward" in entry):
        weighted = sum(
            weight * entry[f"rewards/{name}/mean"]
            for name, weight in zip(rewards["functions"], rewards["weights"], strict=True)
        )
        assert entry["reward"] == pytest.approx(weighted, abs=1e-5)
        assert entry["rewards/safety/mean"] == pytest.approx(entry["planning/safety/mean"], abs=1e-6)
    assert max(entry["planning/safety/mean"] for entry in history if "reward" in entry) > 0  # some plan earned it
    acceptable = {index: {(p["speed"], p["path"]) for p in frame if p["acceptable"]} for index, frame in plans.items()}
    samples = [json.loads(line) for line in (artifact.path / "samples.jsonl").read_text().splitlines()]
    assert samples
    for row in samples:  # each sampled plan earns by its frame's verdicts, not by the label alone
        plan = (row["answer"]["speed"], row["answer"]["path"])
        single = len(plan[0]) == len(plan[1]) == 1 and row["rewards"]["format"] == 1.0
        ok = single and (plan[0][0], plan[1][0]) in acceptable[int(row["frame_id"][1:])]
        assert row["rewards"]["safety"] == (1.0 if ok else 0.0)


def test_safety_reward_refuses_data_without_verdicts(policy, tmp_path: Path) -> None:
    config = grpo_config(policy["sft"], rewards={"safety_coef": 1.0})
    with pytest.raises(BadInput, match="8 of 8 train frames have no judged plans .*alphadrive data judge"):
        grpo_stage.run(config, OutputSpec(tmp_path / "runs"), data=policy["data"])


def test_plan_keys_round_trip() -> None:
    plans = [(speed, path) for speed in DEFAULT_VOCABULARY.speed for path in DEFAULT_VOCABULARY.path]
    assert [plan_of_key(plan_key(plan)) for plan in plans] == plans


def test_the_reward_signal_watch_warns_once_when_the_first_steps_cannot_learn() -> None:
    """Logs without TRL's zero-std fraction (evaluation, the final summary) are not steps; a step with any group of
    unequal rewards settles the watch for good."""
    flat_start = RewardSignalWatch(steps=2)
    with console.capture() as captured:
        for logs in ({"loss": 0.0}, {"frac_reward_zero_std": 1.0}, {"eval_loss": 1.0}, {"frac_reward_zero_std": 1.0}):
            flat_start.on_log(None, None, None, logs=logs)
        flat_start.on_log(None, None, None, logs={"frac_reward_zero_std": 1.0})
    text = " ".join(captured.get().split())
    assert text.count("no reward signal in the first 2 logged steps") == 1
    learning = RewardSignalWatch(steps=2)
    with console.capture() as captured:
        for value in (1.0, 0.5, 1.0, 1.0, 1.0):
            learning.on_log(None, None, None, logs={"frac_reward_zero_std": value})
    assert captured.get() == ""


def test_reward_summary_counts_the_steps_with_a_reward_signal() -> None:
    history = [
        {"reward": 0.0, "frac_reward_zero_std": 1.0},
        {"reward": 0.4, "frac_reward_zero_std": 0.75},
        {"reward": 0.9, "frac_reward_zero_std": 0.0},
        {"train_runtime": 3.0},
    ]
    assert grpo_stage.reward_summary(history)["steps_with_reward_signal"] == 2
