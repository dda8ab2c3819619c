"""GPU checks (skipped without CUDA): the tiny model and the real Qwen2-VL-2B architecture on CUDA."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from alphadrive_cli.artifacts.store import OutputSpec
from alphadrive_cli.config.schemas import TinyModelConfig
from alphadrive_cli.models.loading import (
    build_random_model,
    config_from_file,
    load_model_and_processor,
    resolve_model_source,
)
from alphadrive_cli.resources import CONFIG_DIR
from alphadrive_cli.stages import distill as distill_stage
from alphadrive_cli.stages import grpo as grpo_stage
from alphadrive_cli.stages import models_tiny
from alphadrive_cli.stages import sft as sft_stage
from alphadrive_cli.training.numerics import avoid_cudnn_attention
from tests.support.labelled_data import make_labelled_data
from tests.support.tiny_inputs import image, prompt, tiny, varied_copy

pytestmark = pytest.mark.gpu


def _inputs(processor, text: str = "Plan the next manoeuvre.", size: int = 448):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return processor(text=[prompt], images=[Image.new("RGB", (size, size), (40, 120, 200))], return_tensors="pt")


def test_tiny_artifact_runs_in_bf16_on_cuda(tmp_path) -> None:
    artifact = models_tiny.run(TinyModelConfig(), OutputSpec(tmp_path))
    model, processor = load_model_and_processor(
        resolve_model_source(str(artifact.path)), dtype=torch.bfloat16, device_map="cuda"
    )
    inputs = _inputs(processor).to("cuda")
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    assert next(model.parameters()).dtype == torch.bfloat16


def test_qwen2_vl_2b_architecture_builds_and_generates_on_cuda() -> None:
    config = config_from_file(CONFIG_DIR / "models" / "qwen2-vl-2b.json")
    torch.manual_seed(0)
    model = build_random_model(config, dtype=torch.bfloat16, device="cuda").eval()
    parameters = sum(p.numel() for p in model.parameters())
    assert 2.20e9 < parameters < 2.22e9
    pixel_values = torch.randn(1024, 3 * 2 * 14 * 14, device="cuda", dtype=torch.bfloat16)  # a 448x448 image
    grid = torch.tensor([[1, 32, 32]], device="cuda")
    image_tokens = 1024 // 4
    ids = (
        [config.vision_start_token_id]
        + [config.image_token_id] * image_tokens
        + [config.vision_end_token_id]
        + list(range(100, 140))
    )
    input_ids = torch.tensor([ids], device="cuda")
    with torch.no_grad():
        out = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            pixel_values=pixel_values,
            image_grid_thw=grid,
            max_new_tokens=4,
            min_new_tokens=4,
            do_sample=False,
        )
    assert out.shape == (1, len(ids) + 4)
    assert torch.cuda.max_memory_allocated() < 20 * 2**30


def test_qlora_sft_on_cuda_trains_a_4bit_model(tmp_path) -> None:
    """QLoRA (bitsandbytes NF4) SFT of the tiny model on CUDA: really 4-bit, peak memory recorded."""
    pytest.importorskip("bitsandbytes", reason="QLoRA needs bitsandbytes, which this environment lacks")
    from alphadrive_cli.config.schemas import DistillConfig, SftConfig

    data = make_labelled_data(
        tmp_path,
        [("KEEP", "STRAIGHT"), ("STOP", "STRAIGHT"), ("DECELERATE", "LEFT_TURN"), ("ACCELERATE", "RIGHT_CHANGE")],
        {"train": range(4)},
    )
    traces = distill_stage.run(DistillConfig(splits=["train"]), OutputSpec(tmp_path), data=data)
    model = models_tiny.run(TinyModelConfig(), OutputSpec(tmp_path))
    artifact = sft_stage.run(
        SftConfig(
            model=str(model.path),
            quantization="4bit",
            max_steps=3,
            per_device_batch_size=2,
            gradient_checkpointing=True,
        ),
        OutputSpec(tmp_path),
        data=traces.path,
    )
    assert artifact.manifest["training"]["quantization"] == "4bit" and artifact.manifest["training"]["device"] == "cuda"
    assert artifact.manifest["metrics"]["peak_memory_gb"] > 0

    # GRPO continues the QLoRA adapter on the 4-bit base, with the SFT adapter as the KL reference
    from alphadrive_cli.config.schemas import GrpoConfig

    policy = grpo_stage.run(
        GrpoConfig(
            model=str(artifact.path),
            quantization="4bit",
            max_steps=2,
            per_device_batch_size=4,
            num_generations=4,
            max_completion_length=16,
            gradient_checkpointing=True,
        ),
        OutputSpec(tmp_path),
        data=data,
    )
    manifest = policy.manifest
    assert manifest["training"]["quantization"] == "4bit" and manifest["training"]["device"] == "cuda"
    assert manifest["model"]["init"] == "continued adapter" and manifest["metrics"]["steps"] == 2
    assert (policy.path / "adapter_config.json").is_file() and not (policy.path / "ref").exists()


def test_graph_decoding_replays_its_compiled_step_on_cuda() -> None:
    """graph_sample on CUDA (tiny model, bf16): the replayed CUDA graph gives the greedy tokens of the same
    compiled step run without capture, and sampling draws fresh noise at every replay (equal logits: the final
    norm zeroed, so a repeated draw would repeat each row's token)."""

    from alphadrive_cli.models.graph_decoding import use_graph_decoding

    model, processor = tiny()
    model = model.to("cuda", torch.bfloat16).eval()
    use_graph_decoding(model)
    texts = [prompt("Go?"), prompt("The lead vehicle is close and slower; what should the ego vehicle do now?")]
    batch = processor(text=texts, images=[image(), image((5, 90, 200))], return_tensors="pt", padding=True).to("cuda")
    settings = {
        "max_new_tokens": 24,
        "min_new_tokens": 24,
        "cache_implementation": "static",
        "pad_token_id": processor.tokenizer.pad_token_id,
    }
    with torch.no_grad():
        graph, eager = (
            model.generate(**batch, **settings, do_sample=False, cuda_graph=captured) for captured in (True, False)
        )
        assert torch.equal(graph, eager)
        model.model.language_model.norm.weight.zero_()
        sampled = model.generate(**batch, **settings, do_sample=True)[:, batch["input_ids"].shape[1] :]
    assert sampled.unique().numel() > 0.8 * sampled.numel()


@pytest.mark.parametrize("rollout_dtype", ["weights", "bfloat16"])
def test_grpo_full_finetune_decodes_rollouts_with_graphs_on_cuda(tmp_path, rollout_dtype, monkeypatch) -> None:
    """GRPO training every weight (fp32 master weights under bf16 autocast, as the GPU ablation runs) decodes
    its rollouts with graph decoding on CUDA, in fp32 or with a bf16 copy of the policy, and its validation
    passes through the same graphs: two steps train, each validated, and the manifest says how they decoded.
    Every batch's pixel values are assembled on the GPU."""
    import json

    from alphadrive_cli.config.schemas import GrpoConfig
    from alphadrive_cli.models.frame_cache import PatchedImages

    assembled_on = []
    assemble = PatchedImages._assemble

    def recording(self, keys):
        batch = assemble(self, keys)
        assembled_on.append(getattr(batch, "device", None))
        return batch

    monkeypatch.setattr(PatchedImages, "_assemble", recording)

    frames = [("KEEP", "STRAIGHT"), ("STOP", "STRAIGHT")]
    data = make_labelled_data(tmp_path, frames, {"train": range(2), "val": range(2)})
    model = models_tiny.run(TinyModelConfig(), OutputSpec(tmp_path))
    config = GrpoConfig(
        model=str(model.path),
        finetune="full",
        freeze_vision=False,
        max_steps=2,
        per_device_batch_size=4,
        num_generations=4,
        max_completion_length=16,
        validation={"every_steps": 1, "frames": 2, "batch_size": 2, "max_new_tokens": 16},
        rollout_dtype=rollout_dtype,
    )
    with warnings.catch_warnings():  # rollouts and validation both through the graphs, never falling back
        warnings.filterwarnings("error", message="graph decoding falls back")
        policy = grpo_stage.run(config, OutputSpec(tmp_path), data=data)
    manifest = policy.manifest
    assert manifest["generation"]["compiled"] is True and manifest["generation"]["cache"] == "static"
    assert manifest["generation"]["rollout_dtype"] == rollout_dtype
    assert manifest["training"]["device"] == "cuda" and manifest["metrics"]["steps"] == 2
    history = json.loads((policy.path / "log_history.json").read_text())
    assert [entry["step"] for entry in history if "val/planning_accuracy" in entry] == [0, 1, 2]
    assert assembled_on and all(device is not None and device.type == "cuda" for device in assembled_on)


def test_eval_decodes_with_graphs_on_cuda(tmp_path) -> None:
    """eval on CUDA decodes through graph decoding by default (the manifest says so) and plans what eager
    decoding plans (the tiny model with spread-out weights in fp32, greedy: completions that vary)."""
    import json

    from alphadrive_cli.config.schemas import EvalConfig
    from alphadrive_cli.stages import eval_open_loop

    data = make_labelled_data(tmp_path, [("KEEP", "STRAIGHT"), ("STOP", "LEFT_TURN")], {"test": range(2)})
    model = varied_copy(models_tiny.run(TinyModelConfig(), OutputSpec(tmp_path)).path, tmp_path / "varied")
    texts = {}
    for compiled in (True, False):
        config = EvalConfig(batch_size=2, max_new_tokens=16, compile_generation=compiled)
        artifact = eval_open_loop.run(config, OutputSpec(tmp_path, f"eval-{compiled}"), data=data, model=str(model))
        assert artifact.manifest["report"]["decoding"]["compiled"] is compiled
        assert artifact.manifest["report"]["device"].startswith("cuda")
        lines = (artifact.path / "predictions.jsonl").read_text().splitlines()
        texts[compiled] = [json.loads(line)["text"] for line in lines]
    assert texts[True] == texts[False] and len(set(texts[True])) == 2  # two completions that differ


def test_attention_backward_stays_finite_where_cudnn_returns_nan() -> None:
    """pytorch/pytorch#196678: with a mask, a length of 64 modulo 128 and rows whose scores are all far below
    zero (a fully masked row of a left-padded batch), cuDNN's SDPA backward gives NaN query gradients. The
    training stages switch cuDNN attention off (numerics.avoid_cudnn_attention); this checks the kernels left."""
    avoid_cudnn_attention()
    length, width = 448, 64
    generator = torch.Generator(device="cuda").manual_seed(0)
    shape = (1, 2, length, width)
    query = torch.randn(shape, device="cuda", generator=generator).mul(0.1).to(torch.bfloat16)
    key = torch.randn(shape, device="cuda", generator=generator).mul(0.1).to(torch.bfloat16)
    value = torch.randn(shape, device="cuda", generator=generator).to(torch.bfloat16)
    query[..., 0], key[..., 0] = 1.0, -100.0 * width**0.5  # every score about -100: log-sum-exp below -88.7
    query.requires_grad_()
    mask = torch.ones(length, length, dtype=torch.bool, device="cuda").tril()
    out = F.scaled_dot_product_attention(query, key.requires_grad_(), value.requires_grad_(), attn_mask=mask)
    out.backward(torch.randn(out.shape, device="cuda", generator=generator).to(out.dtype))
    assert torch.isfinite(query.grad).all() and torch.isfinite(key.grad).all()


@pytest.mark.parametrize("stage", ["sft", "grpo"])
def test_deterministic_runs_train_equal_weights_on_cuda(tmp_path, stage) -> None:
    """`deterministic: true` on CUDA: the same run twice (every weight trained, bf16 autocast; GRPO with its
    rollouts through graph decoding) trains bit-identical weights, with no kernel refusing deterministic mode."""
    from safetensors.torch import load_file

    from alphadrive_cli.config.schemas import DistillConfig, GrpoConfig, SftConfig

    frames = [("KEEP", "STRAIGHT"), ("STOP", "STRAIGHT"), ("DECELERATE", "LEFT_TURN"), ("ACCELERATE", "RIGHT_TURN")]
    data = make_labelled_data(tmp_path, frames, {"train": range(4)})
    model = models_tiny.run(TinyModelConfig(), OutputSpec(tmp_path))
    shared = {"model": str(model.path), "finetune": "full", "freeze_vision": False, "deterministic": True}
    if stage == "sft":
        traces = distill_stage.run(DistillConfig(splits=["train"]), OutputSpec(tmp_path), data=data)
        config, inputs, run = SftConfig(**shared, max_steps=4, per_device_batch_size=2), traces.path, sft_stage.run
    else:
        config = GrpoConfig(**shared, max_steps=2, per_device_batch_size=4, num_generations=4, max_completion_length=16)
        inputs, run = data, grpo_stage.run
    weights = []
    for attempt in ("first", "second"):
        artifact = run(config, OutputSpec(tmp_path, f"{stage}-{attempt}"), data=inputs)
        assert artifact.manifest["training"]["deterministic_kernels"] is True
        assert artifact.manifest["training"]["device"] == "cuda"
        weights.append(
            {
                name: tensor
                for path in sorted(artifact.path.glob("*.safetensors"))
                for name, tensor in load_file(path).items()
            }
        )
    assert weights[0] and weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
