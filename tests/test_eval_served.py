"""``alphadrive eval --base-url``: a model behind an OpenAI-compatible endpoint, through distill's client."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image
from transformers.utils import is_torchvision_available
from transformers.utils.import_utils import is_serve_available

from alphadrive_cli.artifacts.store import OutputSpec, open_artifact
from alphadrive_cli.config.schemas import TinyModelConfig
from alphadrive_cli.models.generation import GenerationSettings, generate
from alphadrive_cli.models.loading import load_model_and_processor, resolve_model_source
from alphadrive_cli.stages import models_tiny
from tests.support.cli_checks import assert_one_line_error
from tests.support.fault_server import FaultServer, last_user_text
from tests.support.interrupts import ctrl_c_after_stored
from tests.support.labelled_data import TEST_TRUTHS as TRUTHS
from tests.support.labelled_data import make_labelled_data
from tests.support.tiny_inputs import outspoken_tiny_model

SECRET = "sk-test-eval-served-0123456789"
TOKENS = 8


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_labelled_data(tmp_path / "labelled", TRUTHS, {"test": range(6)})


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with weights that answer each frame with its own text (a plain model directory)."""
    root = tmp_path_factory.mktemp("models")
    return outspoken_tiny_model(models_tiny.run(TinyModelConfig(), OutputSpec(root)).path, root / "outspoken")


def served_args(server: FaultServer, *extra: str) -> list[str]:
    return ["--base-url", server.base_url, "--api-model", "tiny", "--concurrency", "2",
            "--set", "api.timeout_s=1.5", "--set", "api.max_retries=2", *extra]  # fmt: skip


def frame_of(body) -> int:
    """The frame a request is about, from its navigation text ("... (frame i)")."""
    return int(last_user_text(body).split("(frame ")[1].split(")")[0])


class TinyModelServer:
    """Answers a chat-completions body as a model server would: the tiny model's greedy completion of the
    messages rendered by its own chat template, images decoded from their data URLs."""

    def __init__(self, model_path: Path) -> None:
        self.model, self.processor = load_model_and_processor(resolve_model_source(str(model_path)))

    def __call__(self, body) -> str:
        images, messages = [], []
        for message in body["messages"]:
            content = []
            for part in message["content"]:
                if part["type"] == "image_url":
                    data = part["image_url"]["url"].split(",", 1)[1]
                    images.append(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
                    content.append({"type": "image"})
                else:
                    content.append(part)
            messages.append({**message, "content": content})
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        settings = GenerationSettings(body["max_tokens"])
        assert body["temperature"] == 0.0  # one answer per frame: greedy
        return generate(self.model, self.processor, [prompt], [images], settings)[0][0]


def test_a_served_tiny_model_scores_as_eval_model_does(cli, data: Path, tiny_model: Path) -> None:
    local = cli("eval", "--model", tiny_model, "--data", data, "--name", "local",
                "--set", f"max_new_tokens={TOKENS}", "--set", "batch_size=1")  # fmt: skip
    assert local.exit_code == 0, local.stderr
    with FaultServer(answer=TinyModelServer(tiny_model)) as server:
        served = cli("eval", "--data", data, "--name", "served", *served_args(server),
                     "--set", f"max_new_tokens={TOKENS}")  # fmt: skip
    assert served.exit_code == 0, served.stderr
    local_dir, served_dir = Path(local.stdout.strip()), Path(served.stdout.strip())
    assert json.loads((served_dir / "metrics.json").read_text()) == json.loads((local_dir / "metrics.json").read_text())
    local_rows = (local_dir / "predictions.jsonl").read_text()
    assert (served_dir / "predictions.jsonl").read_text() == local_rows
    texts = [json.loads(row)["text"] for row in local_rows.splitlines()]
    # random weights answer most frames with their own text (which ones collide moves with the tiny tokenizer,
    # built from prompts/): rows equal above mean the same prompt and images, not one answer for all
    assert len(set(texts)) >= 4 and all(text.strip() for text in texts)
    manifest = open_artifact(served_dir).manifest
    assert manifest["scored"] == {"api_model": "tiny", "base_url": server.base_url}
    assert manifest["report"]["outcomes"] == {"ok": 6} and len(server.requests) == 6


def test_faults_are_retried_the_key_stays_off_disk_and_scripted_answers_are_scored(
    cli, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FaultServer(retry_after_headers={"Retry-After": "0.05"}) as server:  # answers KEEP, STRAIGHT
        server.script_sample("(frame 0)", ["429", "ok"])
        server.script_sample("(frame 1)", ["500", "503", "ok"])
        server.script_sample("(frame 2)", ["refusal"])  # the model's answer: no plan
        result = cli("eval", "--data", data, *served_args(server))
    assert result.exit_code == 0, result.stderr
    artifact = Path(result.stdout.strip())
    metrics = json.loads((artifact / "metrics.json").read_text())
    assert metrics["planning_accuracy"] == pytest.approx(2 / 6)  # f0 and f5 are KEEP, STRAIGHT; f2 refused
    assert metrics["format_valid_rate"] == pytest.approx(5 / 6)
    assert open_artifact(artifact).manifest["report"]["outcomes"] == {"ok": 5, "refused": 1}
    assert len(server.requests) == 6 + 1 + 2 and server.max_in_flight <= 2
    assert all(request.headers["authorization"] == f"Bearer {SECRET}" for request in server.requests)
    assert all(request.body["max_tokens"] == 256 and request.body["model"] == "tiny" for request in server.requests)
    for file in artifact.rglob("*"):  # the key reaches the server, never the disk
        assert not file.is_file() or SECRET.encode() not in file.read_bytes(), file
    assert SECRET not in result.stderr + result.stdout
    assert (artifact / "requests.jsonl").is_file()


def test_interrupted_or_stopped_by_a_budget_it_resumes_without_asking_twice(
    cli, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FaultServer() as server:
        with ctrl_c_after_stored(monkeypatch, 2):
            interrupted = cli("eval", "--data", data, *served_args(server, "--concurrency", "1"))
        assert interrupted.exit_code == 130 and interrupted.stdout == ""
        stopped = cli("eval", "--data", data, *served_args(server, "--concurrency", "1", "--max-requests", "2"))
        assert stopped.exit_code == 1 and "--max-requests 2" in stopped.stderr and "re-run" in stopped.stderr
        assert_one_line_error(stopped, 1)
        finished = cli("eval", "--data", data, *served_args(server))
    assert finished.exit_code == 0, finished.stderr
    assert Counter(frame_of(request.body) for request in server.requests) == {i: 1 for i in range(6)}
    manifest = open_artifact(Path(finished.stdout.strip())).manifest
    assert manifest["resumed"] is True and manifest["report"]["asked_now"] == 2


def test_samples_are_separate_requests_at_the_temperature_and_the_cost_budget_stops(cli, data: Path) -> None:
    with FaultServer() as server:
        stopped = cli("eval", "--data", data, *served_args(server, "--concurrency", "1", "--max-cost", "0.000001"))
        assert_one_line_error(stopped, 1, "--max-cost 1e-06", "re-run")
        assert len(server.requests) == 1
        sampled = cli("eval", "--data", data, "--name", "sampled", *served_args(server), "--samples", "3",
                      "--set", "temperature=0.7")  # fmt: skip
    assert sampled.exit_code == 0, sampled.stderr
    assert Counter(frame_of(request.body) for request in server.requests[1:]) == {i: 3 for i in range(6)}
    assert {request.body["temperature"] for request in server.requests[1:]} == {0.7}
    metrics = json.loads((Path(sampled.stdout.strip()) / "metrics.json").read_text())
    assert metrics["multimodality"]["samples"] == 18 and metrics["multimodality"]["frames"] == 6


def test_unanswered_frames_fail_the_run_and_a_rerun_asks_only_them(cli, data: Path) -> None:
    with FaultServer() as server:
        server.script_sample("(frame 3)", ["500", "500", "500"])
        failed = cli("eval", "--data", data, *served_args(server))
        assert_one_line_error(failed, 1, "answered 5 of 6 requests", "HTTP 500")
        again = cli("eval", "--data", data, *served_args(server))
    assert again.exit_code == 0, again.stderr
    assert [frame_of(request.body) for request in server.requests[-1:]] == [3] and len(server.requests) == 6 + 2 + 1


def test_a_rejected_key_and_bad_arguments_are_one_line_errors(cli, data: Path, tiny_model: Path) -> None:
    with FaultServer(default="401") as server:
        rejected = cli("eval", "--data", data, *served_args(server, "--concurrency", "1"))
        assert_one_line_error(rejected, 2, "401", "OPENAI_API_KEY")
        assert len(server.requests) == 1  # not one failed request per frame
        base = ("eval", "--data", data)
        assert_one_line_error(cli(*base, "--base-url", server.base_url), 2, "--api-model")
        assert_one_line_error(cli(*base, "--model", tiny_model, *served_args(server)), 2, "exactly one of")
        assert_one_line_error(cli(*base, "--model", tiny_model, "--max-requests", "3"), 2, "go with --base-url")
        assert_one_line_error(cli(*base, *served_args(server), "--closed-loop"), 2, "--closed-loop needs --model")
        # an endpoint set through the config counts as --base-url: it never silently replaces a predictions file
        predictions = ("--predictions", str(data / "test.jsonl"), "--set", f"api.base_url={server.base_url}")
        assert_one_line_error(cli(*base, *predictions), 2, "exactly one of")


def _why_transformers_serve_cannot_run() -> str | None:
    if not is_torchvision_available():
        return (
            "transformers serve loads the model's processor with AutoProcessor, whose Qwen-VL video part needs "
            "torchvision (the CPU build of torch here has no matching one)"
        )
    if not is_serve_available():
        return "transformers serve needs its extras: pip install 'transformers[serving]'"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_healthy(url: str, process: subprocess.Popen, log: Path, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"transformers serve exited: {log.read_text()[-2000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"transformers serve not healthy after {seconds:g} s: {log.read_text()[-2000:]}")


@pytest.mark.skipif(_why_transformers_serve_cannot_run() is not None, reason=str(_why_transformers_serve_cannot_run()))
def test_a_tiny_model_under_a_real_transformers_serve_scores_as_eval_model_does(
    cli, data: Path, tiny_model: Path, tmp_path: Path
) -> None:
    port, log = _free_port(), tmp_path / "serve.log"
    command = [sys.executable, "-c", "from transformers.cli.transformers import app; app()", "serve", str(tiny_model),
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        _wait_until_healthy(f"http://127.0.0.1:{port}/health", process, log)
        served = cli("eval", "--data", data, "--name", "served", "--base-url", f"http://127.0.0.1:{port}/v1",
                     "--api-model", str(tiny_model), "--set", f"max_new_tokens={TOKENS}")  # fmt: skip
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert served.exit_code == 0, served.stderr + log.read_text()[-2000:]
    local = cli("eval", "--model", tiny_model, "--data", data, "--name", "local",
                "--set", f"max_new_tokens={TOKENS}", "--set", "batch_size=1")  # fmt: skip
    assert local.exit_code == 0, local.stderr
    local_dir, served_dir = Path(local.stdout.strip()), Path(served.stdout.strip())
    assert json.loads((served_dir / "metrics.json").read_text()) == json.loads((local_dir / "metrics.json").read_text())
    assert (served_dir / "predictions.jsonl").read_text() == (local_dir / "predictions.jsonl").read_text()
