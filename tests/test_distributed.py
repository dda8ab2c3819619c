"""Several processes per run: the accelerate configs, and ``sft`` / ``grpo`` launched as two CPU processes
(gloo) against the same run in one process.

Two processes with a per-device batch of b train on the same global batches, in the same order, as one
process with a batch of 2b: the samplers shard one seeded permutation, process 0 taking the first b of each
global batch and process 1 the next b. The multi-process tests check exactly that, step by step, from the
frame ids each process's batches held (SFT, through ``tests/support/rank_probe.py``) and from ``samples.jsonl``
(GRPO), so they fail if the processes saw the same frames or another order.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alphadrive_cli.artifacts.store import OutputSpec, begin, open_artifact
from alphadrive_cli.config.resolve import resolve_config
from alphadrive_cli.config.schemas import GrpoConfig, SftConfig, TinyModelConfig
from alphadrive_cli.errors import BadInput, StageFailure
from alphadrive_cli.stages import grpo as grpo_stage
from alphadrive_cli.stages import models_tiny
from alphadrive_cli.stages import sft as sft_stage
from alphadrive_cli.training import run as training_run
from alphadrive_cli.training.policy import Precision
from alphadrive_cli.training.sft_data import VisionSFTCollator
from alphadrive_cli.ui import fail
from tests.support.labelled_data import make_labelled_data
from tests.support.rank_probe import record_batches, recorded_batches

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "accelerate"
PROBE = Path(__file__).resolve().parent / "support" / "rank_probe.py"
LABELS = [("KEEP", "STRAIGHT"), ("DECELERATE", "LEFT_TURN"), ("STOP", "STRAIGHT"), ("ACCELERATE", "RIGHT_CHANGE")] * 3
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
ACCELERATE = [str(Path(sys.executable).with_name("accelerate")), "launch", "--config_file"]  # + a config file


def launch_settings(path: Path):
    """What ``accelerate launch --config_file path`` makes of a config: its arguments and the environment
    its processes get (from which accelerate builds the DeepSpeed / FSDP plugin)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args, defaults, _ = _validate_launch_command(
        launch_command_parser().parse_args(["--config_file", str(path), "-m", "alphadrive_cli.cli", "grpo"])
    )
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        return args, prepare_deepspeed_cmd_env(args)[1]
    return args, prepare_multi_gpu_env(args)


@pytest.mark.parametrize("name", ["ddp", "zero2", "zero3", "fsdp"])
def test_accelerate_configs_load_as_accelerate_launch_reads_them(name: str, monkeypatch) -> None:
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin
    from transformers import AutoModelForImageTextToText

    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))  # unknown keys are an error here
    assert config.num_processes == 2 and config.mixed_precision == "no"  # alphadrive picks bf16 itself on GPUs
    args, env = launch_settings(CONFIGS / f"{name}.yaml")
    for key, value in env.items():
        if key.startswith(("ACCELERATE_", "FSDP_")):
            monkeypatch.setenv(key, value)
    if name == "ddp":
        assert args.multi_gpu and not (args.use_deepspeed or args.use_fsdp)
    elif name == "fsdp":
        plugin = FullyShardedDataParallelPlugin()
        assert plugin.fsdp_version == 2 and "FULL_STATE_DICT" in str(plugin.state_dict_type)
        model = models_tiny.run(TinyModelConfig(), OutputSpec()).path
        plugin.set_auto_wrap_policy(AutoModelForImageTextToText.from_pretrained(model))
        wrapped = {cls.__name__ for cls in plugin.auto_wrap_policy.keywords["transformer_layer_cls"]}
        assert wrapped == {"Qwen2VLDecoderLayer", "Qwen2VLVisionBlock"}
    else:  # the DeepSpeed plugin is built without deepspeed installed; launching needs it
        plugin = DeepSpeedPlugin()
        zero = plugin.deepspeed_config["zero_optimization"]
        assert zero["stage"] == int(name[-1])
        assert zero["stage3_gather_16bit_weights_on_model_save"] is (name == "zero3")  # zero3 saves gathered weights


def test_a_writer_sent_to_another_process_does_not_hold_the_lock(tmp_path: Path) -> None:
    with begin("data", "locked", {}, root=tmp_path) as writer:
        copy = pickle.loads(pickle.dumps(writer))
        assert copy.dir == writer.dir and copy._lock_handle is None and writer._lock_handle is not None
        copy.release()  # a copy's release leaves the original's lock in place
        with pytest.raises(BadInput, match="another alphadrive process"):
            begin("data", "locked", {}, root=tmp_path)


def test_only_the_main_process_reports_bad_input_and_others_tag_their_own_failures(monkeypatch, capsys) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert fail("bad --set", BadInput.exit_code).exit_code == 2
    assert capsys.readouterr().err == ""
    assert fail("out of memory", StageFailure.exit_code).exit_code == 1
    assert "error (rank 1): out of memory" in capsys.readouterr().err


def test_stages_other_than_training_refuse_several_processes(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    result = cli("show", tmp_path)
    assert result.exit_code == 2 and "show runs in one process" in result.stderr and result.stdout == ""


def test_grpo_refuses_groups_split_across_processes(tmp_path: Path, monkeypatch) -> None:
    """2 processes x 2 completions would score each frame's group of 4 in two halves (diversity is per group)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(BadInput, match="each process generates 2 completions per rollout.*num_generations = 4"):
        grpo_stage.run(
            GrpoConfig(model="m", per_device_batch_size=2, num_generations=4), OutputSpec(tmp_path), data=tmp_path
        )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """12 train frames with a one-line reasoning trace, and the tiny model."""
    root = tmp_path_factory.mktemp("distributed-inputs") / "runs"
    data = make_labelled_data(root, LABELS, {"train": range(len(LABELS))}, reasoning="Check the road.")
    model = models_tiny.run(TinyModelConfig(), OutputSpec(root)).path
    return {"data": data, "model": model}


@pytest.fixture
def cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Train on the CPU on any machine: launched processes see no GPU, and in-process stages train as without one."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(training_run, "training_precision", lambda: Precision(cuda=False, bf16=False))


def launch(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def layout(artifact: Path) -> list[str]:
    """The artifact's files; TensorBoard's event files are named after the time, host and process (a resumed
    run has one per launch)."""
    return sorted(
        {
            re.sub(r"events\.out\.tfevents\..*", "events.out.tfevents", path.relative_to(artifact).as_posix())
            for path in artifact.rglob("*")
            if path.is_file()
        }
    )


def published(root: Path, stage: str) -> Path:
    """The one artifact of ``stage`` under ``root``, with no unfinished run left beside it."""
    entries = sorted((root / stage).iterdir())
    versions = [entry for entry in entries if entry.is_dir()]
    assert [entry.name for entry in versions] == [f"{stage}-v1"], entries
    return versions[0]


def said_once(stderr: str, *messages: str) -> None:
    for message in messages:
        assert stderr.count(message) == 1, stderr


@pytest.mark.slow
def test_sft_on_two_processes_trains_the_same_batches_as_one_and_resumes(
    inputs, cpu_only, tmp_path: Path, monkeypatch
) -> None:
    settings = ["--set", "max_steps=4", "--set", "save_steps=2"]  # 12 frames, 4 a step: step 4 opens epoch 2
    single = tmp_path / "single"
    single.mkdir()
    monkeypatch.setattr(VisionSFTCollator, "__call__", VisionSFTCollator.__call__)  # restored after the test
    record_batches(single)
    config = resolve_config(
        "sft",
        SftConfig,
        scale="tiny",
        overrides=[*settings[1::2], "per_device_batch_size=4"],
        options={"model": str(inputs["model"])},
    )
    one = sft_stage.run(config, OutputSpec(single / "runs"), data=inputs["data"]).path

    probes, root = tmp_path / "probes", tmp_path / "runs"
    probes.mkdir()
    command = [
        *TORCHRUN,
        str(PROBE),
        str(probes),
        "interrupt",
        "sft",
        "--data",
        str(inputs["data"]),
        "--model",
        str(inputs["model"]),
        "--out-root",
        str(root),
        *settings,
        "--set",
        "per_device_batch_size=2",
    ]
    crashed = launch(command)
    assert crashed.returncode != 0 and crashed.stdout == ""
    assert "interrupted after the checkpoint of step 2" in crashed.stderr
    checkpoint = root / "sft" / ".sft.partial" / "checkpoints" / "checkpoint-2"
    assert {"rng_state_0.pth", "rng_state_1.pth", "trainer_state.json"} <= {path.name for path in checkpoint.iterdir()}
    before = [recorded_batches(probes, rank)[:2] for rank in (0, 1)]  # steps 1 and 2
    for rank in (0, 1):
        (probes / f"batches-rank{rank}.jsonl").unlink()

    command[command.index("interrupt")] = "run"
    resumed = launch(command)
    assert resumed.returncode == 0, resumed.stderr
    two = published(root, "sft")
    assert resumed.stdout == f"{two}\n"  # the launcher's whole stdout: one path, from the main process
    said_once(resumed.stderr, "resuming from checkpoint checkpoint-2", "step 4/4: loss", "sft sft: 4 steps")
    assert layout(two) == layout(one)
    manifest = open_artifact(two).manifest
    assert manifest["resumed"] is True and manifest["training"]["resumed_from_step"] == 2

    after = [recorded_batches(probes, rank)[:2] for rank in (0, 1)]  # steps 3 and 4
    ranks = [before[rank] + after[rank] for rank in (0, 1)]
    steps = recorded_batches(single)[:4]
    assert [ranks[0][step] + ranks[1][step] for step in range(4)] == steps
    assert all(len(set(batch)) == 4 for batch in steps)  # so processes seeing the same frames would fail
    assert sorted(sum(steps[:3], [])) == sorted(f"f{i}" for i in range(12))  # the first epoch sees each frame once

    def losses(artifact: Path) -> list[float]:
        return [entry["loss"] for entry in json.loads((artifact / "log_history.json").read_text()) if "loss" in entry]

    assert losses(two) == pytest.approx(losses(one), rel=1e-3)  # same batches, averaged over both processes


@pytest.mark.slow
def test_grpo_under_accelerate_launch_scores_the_same_groups_as_one_process(inputs, cpu_only, tmp_path: Path) -> None:
    settings = ["max_steps=2", "max_completion_length=8", "sample_every=1", "sample_groups=2"]  # 2 frames x 4 a step
    config = resolve_config(
        "grpo",
        GrpoConfig,
        scale="tiny",
        overrides=[*settings, "per_device_batch_size=8"],
        options={"model": str(inputs["model"])},
    )
    one = grpo_stage.run(config, OutputSpec(tmp_path / "single"), data=inputs["data"]).path

    root = tmp_path / "runs"
    overrides = [argument for setting in [*settings, "per_device_batch_size=4"] for argument in ("--set", setting)]
    result = launch(
        [
            *ACCELERATE,
            str(CONFIGS / "ddp.yaml"),
            "-m",
            "alphadrive_cli.cli",
            "grpo",
            "--data",
            str(inputs["data"]),
            "--init",
            str(inputs["model"]),
            "--out-root",
            str(root),
            *overrides,
        ]
    )
    assert result.returncode == 0, result.stderr
    two = published(root, "grpo")
    assert result.stdout == f"{two}\n"
    said_once(result.stderr, "step 2/2: reward", "grpo grpo: 2 steps")
    assert layout(two) == layout(one)

    def groups(artifact: Path) -> list[tuple[int, str]]:
        rows = [json.loads(line) for line in (artifact / "samples.jsonl").read_text().splitlines()]
        return [(row["step"], row["frame_id"]) for row in rows]

    # each step: process 0's group, then process 1's, gathered into the main process's samples.jsonl
    assert groups(two) == groups(one) and len(groups(two)) == 2 * 2 * 4
    assert all(groups(two)[i][1] != groups(two)[i + 4][1] for i in (0, 8))  # the two processes had different frames
    history = json.loads((two / "log_history.json").read_text())
    assert [entry["step"] for entry in history if "planning/total/mean" in entry] == [1, 2]


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["ddp", "zero2", "zero3", "fsdp"])
def test_sft_then_grpo_on_two_gpus(name: str, inputs, tmp_path: Path) -> None:
    """Each launch config on two GPUs: a few SFT steps, then GRPO continuing them (never run yet: no GPUs here)."""
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA GPUs")
    if name.startswith("zero") and importlib.util.find_spec("deepspeed") is None:
        pytest.skip("needs deepspeed (pip install deepspeed)")
    launcher = [*ACCELERATE, str(CONFIGS / f"{name}.yaml"), "-m", "alphadrive_cli.cli"]
    common = ["--data", str(inputs["data"]), "--out-root", str(tmp_path), "--set", "max_steps=2"]
    sft = launch([*launcher, "sft", "--model", str(inputs["model"]), *common, "--set", "per_device_batch_size=2"])
    assert sft.returncode == 0, sft.stderr
    grpo = launch(
        [
            *launcher,
            "grpo",
            "--init",
            sft.stdout.strip(),
            *common,
            "--set",
            "per_device_batch_size=4",
            "--set",
            "max_completion_length=8",
        ]
    )
    assert grpo.returncode == 0, grpo.stderr
    for result, stage in ((sft, "sft"), (grpo, "grpo")):
        assert result.stdout == f"{published(tmp_path, stage)}\n"
        assert open_artifact(published(tmp_path, stage)).manifest["metrics"]["steps"] == 2
