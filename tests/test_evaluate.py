"""``alphadrive eval``: scoring predictions, evaluating the tiny model end to end, comparing runs."""

from __future__ import annotations

import json
import re
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from alphadrive_cli.actions import DEFAULT_VOCABULARY
from alphadrive_cli.artifacts.store import Artifact, OutputSpec, open_artifact
from alphadrive_cli.config.schemas import EvalConfig, TinyModelConfig
from alphadrive_cli.errors import BadInput
from alphadrive_cli.stages import eval_open_loop as evaluate_stage
from alphadrive_cli.stages import models_tiny
from tests.support.labelled_data import TEST_TRUTHS as TRUTHS
from tests.support.labelled_data import judged, make_labelled_data
from tests.support.tiny_inputs import varied_copy


def make_data(root: Path) -> Path:
    """A data artifact whose test split holds the six frames above (and whose train split the first)."""
    return make_labelled_data(root, TRUTHS, {"train": [0], "test": range(6)})


def answer(speed: str, path: str) -> str:
    return f"<think>because</think><answer>{speed}, {path}</answer>"


def write_predictions(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_data(tmp_path / "runs")


def test_scoring_a_hand_made_predictions_file_gives_the_hand_computed_numbers(cli, data: Path, tmp_path: Path) -> None:
    predictions = write_predictions(
        tmp_path / "pred.jsonl",
        [
            {"id": "f0", "text": answer("KEEP", "STRAIGHT")},  # both right
            {"id": "f1", "text": answer("KEEP", "RIGHT_TURN")},  # speed right, path wrong
            {"id": "f2", "text": answer("KEEP", "STRAIGHT")},  # speed wrong, path right
            {"id": "f3", "text": "<answer>STOP, STRAIGHT</answer>"},  # right, but no <think>: format invalid
            {"id": "f4", "text": "I would speed up."},  # no answer at all
            {"id": "f5", "text": answer("KEEP", "STRAIGHT")},  # both right
        ],
    )
    result = cli("eval", "--predictions", predictions, "--data", data, "--name", "hand")
    assert result.exit_code == 0, result.stderr
    artifact = open_artifact(Path(result.stdout.strip()), stage="eval")
    metrics = json.loads((artifact.path / "metrics.json").read_text())
    # planning: f0, f3, f5 right -> 3/6; format: f0, f1, f2, f5 -> 4/6
    assert metrics["planning_accuracy"] == pytest.approx(0.5)
    assert metrics["format_valid_rate"] == pytest.approx(4 / 6)
    keep = metrics["speed"]["per_class"]["KEEP"]
    # KEEP predicted for f0 f1 f2 f5 (f2 wrong) -> precision 3/4; truth KEEP f0 f1 f5 all found -> recall 1
    assert keep["precision"] == pytest.approx(0.75) and keep["recall"] == pytest.approx(1.0)
    assert keep["f1"] == pytest.approx(2 * 0.75 / 1.75)
    # DECELERATE never predicted -> 0; STOP predicted once correctly -> 1; ACCELERATE: f4 invalid -> 0
    assert metrics["speed"]["per_class"]["DECELERATE"]["f1"] == 0.0
    assert metrics["speed"]["per_class"]["STOP"]["f1"] == pytest.approx(1.0)
    assert metrics["speed"]["per_class"]["ACCELERATE"]["recall"] == 0.0
    straight = metrics["path"]["per_class"]["STRAIGHT"]
    # STRAIGHT predicted f0 f2 f3 f5, all right (precision 1); truth STRAIGHT f0 f2 f3 f5 -> recall 1
    assert straight["precision"] == pytest.approx(1.0) and straight["recall"] == pytest.approx(1.0)
    # confusion: the invalid answer f4 (truth ACCELERATE) lands in the last column
    assert metrics["speed"]["confusion_matrix"][DEFAULT_VOCABULARY.speed.index("ACCELERATE")][-1] == 1
    rows = [json.loads(line) for line in (artifact.path / "predictions.jsonl").read_text().splitlines()]
    assert [row["plan_correct"] for row in rows] == [True, False, False, True, False, True]
    assert [row["speed_correct"] for row in rows] == [True, True, False, True, False, True]
    assert artifact.manifest["inputs"][0]["role"] == "data"
    for picture in ("confusion_speed.png", "confusion_path.png", "f1_per_class.png"):
        with Image.open(artifact.path / picture) as image:
            assert image.width > 400 and np.asarray(image.convert("L")).std() > 10
    assert "planning accuracy" in result.stderr


def test_unknown_duplicate_and_missing_ids_are_reported(cli, data: Path, tmp_path: Path) -> None:
    predictions = write_predictions(
        tmp_path / "pred.jsonl",
        [
            {"id": "f0", "text": answer("KEEP", "STRAIGHT")},
            {"id": "f0", "text": answer("STOP", "STRAIGHT")},
            {"id": "nope", "text": answer("KEEP", "STRAIGHT")},
        ]
        + [{"id": f"f{i}", "text": answer(*TRUTHS[i])} for i in (1, 2, 3)],
    )
    result = cli("eval", "--predictions", predictions, "--data", data)
    assert result.exit_code == 0, result.stderr
    assert "1 unknown ids" in result.stderr and "1 duplicate ids" in result.stderr and "2 missing ids" in result.stderr
    report = open_artifact(Path(result.stdout.strip())).manifest["report"]
    assert report == {"unknown_ids": ["nope"], "duplicate_ids": ["f0"], "missing_ids": ["f4", "f5"]}
    metrics = json.loads((Path(result.stdout.strip()) / "metrics.json").read_text())
    assert metrics["planning_accuracy"] == pytest.approx(4 / 6)  # the first f0 is kept; f4, f5 count as no answer


@pytest.mark.parametrize("line", ['{"id": "f0"}', "not json", '{"id": "f0", "text": 3}'])
def test_malformed_predictions_are_one_line_exit_2(cli, data: Path, tmp_path: Path, line: str) -> None:
    (tmp_path / "bad.jsonl").write_text(line + "\n")
    result = cli("eval", "--predictions", tmp_path / "bad.jsonl", "--data", data)
    assert result.exit_code == 2 and "line 1" in result.stderr and result.stdout == ""


def test_bad_eval_arguments(cli, data: Path, tmp_path: Path) -> None:
    assert cli("eval", "--data", data).exit_code == 2
    assert cli("eval", "--data", data, "--predictions", tmp_path / "missing.jsonl").exit_code == 2
    assert cli("eval", "--data", data, "--model", "./no/such/model").exit_code == 2
    assert cli("eval", "--data", data, "--model", "x", "--split", "dev").exit_code == 2


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models_tiny.run(TinyModelConfig(), OutputSpec(tmp_path_factory.mktemp("models"))).path


def test_a_model_whose_weights_hold_nan_is_refused_in_one_line(
    cli, data: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """What a diverged run publishes (every weight NaN) would decode only garbage and score 0: eval says so instead."""
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "diverged"
    shutil.copytree(tiny_model, broken, ignore=shutil.ignore_patterns("manifest.json"))  # a plain model directory
    [weights_file] = broken.glob("*.safetensors")
    weights = load_file(weights_file)
    name = sorted(weights)[-1]
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, weights_file, metadata={"format": "pt"})
    result = cli("eval", "--model", broken, "--data", data)
    assert result.exit_code == 2 and result.stdout == ""
    assert re.search(
        rf"1 of \d+ weight tensors hold NaN or infinity \((\w+\.)?{re.escape(name)}\); it was not used",
        " ".join(result.stderr.split()),
    )
    assert "Traceback" not in result.stderr


def test_tiny_model_end_to_end_with_samples(cli, data: Path, tiny_model: Path) -> None:
    result = cli(
        "eval",
        "--model",
        tiny_model,
        "--data",
        data,
        "--samples",
        "3",
        "--set",
        "max_new_tokens=6",
        "--set",
        "batch_size=4",
    )
    assert result.exit_code == 0, result.stderr
    artifact = open_artifact(Path(result.stdout.strip()), stage="eval")
    rows = [json.loads(line) for line in (artifact.path / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(len(row["samples"]) == 3 for row in rows)
    metrics = json.loads((artifact.path / "metrics.json").read_text())
    assert metrics["multimodality"]["frames"] == 6
    assert metrics["reward_signal"]["samples"] == 18
    # six new tokens of a random model: no sample in either format, so no group a GRPO step could learn from
    for form in ("reasoning", "answer_only"):
        assert metrics["reward_signal"][form] == {
            "format_rate": 0.0,
            "mean_reward": 0.0,
            "groups_with_signal_rate": 0.0,
        }
    assert {ref["role"] for ref in artifact.manifest["inputs"]} == {"data", "model"}
    assert artifact.manifest["report"]["frames_per_s"] > 0
    assert artifact.manifest["prompts"][0]["id"] == "student-v1"
    assert "frames/s" in result.stderr


def test_batched_and_single_generation_agree_greedily(data: Path, tiny_model: Path, tmp_path: Path) -> None:
    """Left padding must not change greedy outputs: batch of 6 == six batches of 1."""
    outputs = {}
    for batch_size in (6, 1):
        config = EvalConfig(batch_size=batch_size, max_new_tokens=8)
        artifact = evaluate_stage.run(config, OutputSpec(tmp_path, f"b{batch_size}"), data=data, model=str(tiny_model))
        outputs[batch_size] = [
            json.loads(line)["text"] for line in (artifact.path / "predictions.jsonl").read_text().splitlines()
        ]
    assert outputs[6] == outputs[1]


def test_graph_decoding_plans_what_eager_decoding_plans(
    data: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """eval's CUDA path (graph decoding over a static cache), forced on the CPU where its step runs eagerly: the
    same greedy texts as transformers' own decoding, without falling back to it; the manifest says how it decoded."""
    from alphadrive_cli.models import generation

    def texts(artifact) -> list[str]:
        return [json.loads(line)["text"] for line in (artifact.path / "predictions.jsonl").read_text().splitlines()]

    varied = varied_copy(tiny_model, tmp_path / "varied")
    config = EvalConfig(batch_size=4, max_new_tokens=12, compile_generation=True)
    eager = evaluate_stage.run(config, OutputSpec(tmp_path, "eager"), data=data, model=str(varied))
    assert len(set(texts(eager))) == 6  # six different completions
    assert eager.manifest["report"]["decoding"] == {"compiled": False, "cache": "dynamic"}  # the CPU default
    monkeypatch.setattr(generation, "graph_decoding_blocker", lambda model: None)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="graph decoding falls back")
        graphs = evaluate_stage.run(config, OutputSpec(tmp_path, "graphs"), data=data, model=str(varied))
    assert graphs.manifest["report"]["decoding"] == {"compiled": True, "cache": "static"}
    assert texts(graphs) == texts(eager)
    off = config.model_copy(update={"compile_generation": False})
    assert evaluate_stage.run(off, OutputSpec(tmp_path, "off"), data=data, model=str(varied)).manifest["report"][
        "decoding"
    ] == {"compiled": False, "cache": "dynamic"}


def test_interrupted_generation_resumes_from_the_cache(
    data: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = evaluate_stage.complete_records
    calls: list[int] = []

    def flaky(model, processor, template, records, *args):
        if calls:
            raise KeyboardInterrupt
        calls.append(len(records))
        return real(model, processor, template, records, *args)

    monkeypatch.setattr(evaluate_stage, "complete_records", flaky)
    config = EvalConfig(batch_size=2, max_new_tokens=4)
    with pytest.raises(KeyboardInterrupt):
        evaluate_stage.run(config, OutputSpec(tmp_path, "r"), data=data, model=str(tiny_model))
    monkeypatch.setattr(evaluate_stage, "complete_records", real)
    artifact = evaluate_stage.run(config, OutputSpec(tmp_path, "r"), data=data, model=str(tiny_model))
    assert artifact.manifest["resumed"] and artifact.manifest["report"]["cached_frames"] == 2
    assert artifact.manifest["report"]["generated_frames"] == 4
    assert ".completions.jsonl" not in artifact.manifest["outputs"]


def test_compare_shows_deltas_against_the_first(cli, data: Path, tmp_path: Path) -> None:
    perfect = write_predictions(
        tmp_path / "perfect.jsonl", [{"id": f"f{i}", "text": answer(*t)} for i, t in enumerate(TRUTHS)]
    )
    texts = [answer(*t) for t in TRUTHS[:3]] + [answer("DECELERATE", "STRAIGHT"), "no", "no"]  # f3: truly STOP
    half = write_predictions(tmp_path / "half.jsonl", [{"id": f"f{i}", "text": text} for i, text in enumerate(texts)])
    first = cli("eval", "--predictions", perfect, "--data", data, "--name", "perfect").stdout.strip()
    second = cli("eval", "--predictions", half, "--data", data, "--name", "half").stdout.strip()
    table = cli("eval", "compare", first, second, "--markdown")
    assert table.exit_code == 0
    lines = table.stdout.strip().splitlines()
    assert lines[0].startswith("| artifact | frames |") and len(lines) == 4
    assert "| eval/perfect-v1 | 6 |" in lines[2] and "1.000 |" in lines[2]
    assert "0.500 (-0.500)" in lines[3]  # planning accuracy
    # the same six frames: the difference frame by frame, with its paired bootstrap interval
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    first_row, second_row = ([cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:])
    paired = header.index("planning accuracy vs first, same frames [95% CI]")
    assert first_row[paired:] == ["–", "–", "–"]
    low, high = map(float, second_row[paired].split("[")[1].rstrip("]").split(","))
    assert second_row[paired].startswith("-0.500 [") and low < -0.5 < high <= 0.0
    # which answers changed, on which true actions (frames in id order where counts tie)
    assert header[paired + 1 :] == [
        f"{head} answers changed from the first's: first → this on the true action" for head in ("speed", "path")
    ]
    assert (
        second_row[paired + 1] == "3: STOP→DECELERATE on STOP 1, ACCELERATE→none on ACCELERATE 1, KEEP→none on KEEP 1"
    )
    assert second_row[paired + 2] == "2: RIGHT_CHANGE→none on RIGHT_CHANGE 1, STRAIGHT→none on STRAIGHT 1"
    assert cli("eval", "compare", first).exit_code == 2
    assert cli("eval", "compare", first, str(data)).exit_code == 2  # not an eval artifact


def test_compare_pairs_the_same_frames_of_data_sets_that_differ_elsewhere(cli, tmp_path: Path) -> None:
    # the same six test frames; the second data set has another train frame and traces: its content hash differs
    plain = make_labelled_data(tmp_path / "plain", TRUTHS, {"train": [0], "test": range(6)})
    traced = make_labelled_data(tmp_path / "traced", TRUTHS, {"train": [0, 1], "test": range(6)}, reasoning="because")
    assert open_artifact(plain).content_hash != open_artifact(traced).content_hash
    predictions = write_predictions(
        tmp_path / "p.jsonl", [{"id": f"f{i}", "text": answer(*t)} for i, t in enumerate(TRUTHS)]
    )
    evals = [cli("eval", "--predictions", predictions, "--data", data).stdout.strip() for data in (plain, traced)]
    lines = cli("eval", "compare", *evals, "--markdown").stdout.strip().splitlines()
    assert "planning accuracy vs first, same frames [95% CI]" in lines[0]
    assert "| +0.000 [+0.000, +0.000] |" in lines[3]


def test_simulator_frames_are_scored_scenario_by_scenario_and_compared_so(cli, tmp_path: Path) -> None:
    scenarios = ["highway", "highway", "blocked", "blocked", "merge", "merge"]
    data = make_labelled_data(tmp_path / "sim", TRUTHS, {"train": [0], "test": range(6)}, scenarios=scenarios)
    texts = [answer(*t) for t in TRUTHS[:3]] + ["no"] * 3  # the highway frames and the first blocked one right
    evals = []
    for name, rows in (("all", [answer(*t) for t in TRUTHS]), ("half", texts)):
        predictions = write_predictions(
            tmp_path / f"{name}.jsonl", [{"id": f"f{i}", "text": t} for i, t in enumerate(rows)]
        )
        result = cli("eval", "--predictions", predictions, "--data", data, "--name", name)
        assert result.exit_code == 0, result.stderr
        evals.append(result.stdout.strip())
    by_scenario = json.loads((Path(evals[1]) / "metrics.json").read_text())["by_scenario"]
    assert {scenario: scores["planning_accuracy"] for scenario, scores in by_scenario.items()} == {
        "blocked": 0.5,
        "highway": 1.0,
        "merge": 0.0,
    }
    assert by_scenario["merge"] == {"frames": 2, "planning_accuracy": 0.0, "speed_accuracy": 0.0, "path_accuracy": 0.0}
    lines = cli("eval", "compare", *evals, "--markdown").stdout.strip().splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    half = [cell.strip() for cell in lines[3].strip("|").split("|")]
    # each scenario's difference with its paired interval over that scenario's frames (both merge frames lost)
    assert half[header.index("planning accuracy, merge frames")] == "0.000 (-1.000 [-1.000, -1.000])"
    assert half[header.index("planning accuracy, highway frames")] == "1.000 (+0.000 [+0.000, +0.000])"
    blocked = half[header.index("planning accuracy, blocked frames")]
    assert blocked.startswith("0.500 (-0.500 [-1.000, ") and blocked.endswith("])")
    rows = [json.loads(line) for line in (Path(evals[1]) / "predictions.jsonl").read_text().splitlines()]
    assert [row["scenario"] for row in rows] == scenarios
    # frames without a scenario (the helper's own data) have no such numbers, nor columns
    plain = cli("eval", "--predictions", tmp_path / "all.jsonl", "--data", make_data(tmp_path / "plain")).stdout.strip()
    assert "by_scenario" not in json.loads((Path(plain) / "metrics.json").read_text())
    assert "planning accuracy, " not in cli("eval", "compare", plain, plain, "--markdown").stdout


def test_compare_resamples_whole_episodes_where_the_predictions_name_them(cli, tmp_path: Path) -> None:
    """Frames of one simulator episode are right or wrong together: `eval` writes each frame's episode and
    `eval compare` resamples episodes. The two blocked frames are one episode, one frame lost: every resample of
    episodes loses exactly half of it, where resampling frames spreads it from -1 to 0."""
    scenarios = ["highway", "highway", "blocked", "blocked", "merge", "merge"]
    evals = {}
    for episodes in (None, [0, 0, 1, 1, 2, 2]):
        data = make_labelled_data(
            tmp_path / f"sim{episodes is None}",
            TRUTHS,
            {"train": [0], "test": range(6)},
            scenarios=scenarios,
            episodes=episodes,
        )
        evals[episodes is None] = []
        for name, texts in (
            ("all", [answer(*t) for t in TRUTHS]),
            ("half", [answer(*t) for t in TRUTHS[:3]] + ["no"] * 3),
        ):
            predictions = write_predictions(
                tmp_path / f"{name}.jsonl", [{"id": f"f{i}", "text": t} for i, t in enumerate(texts)]
            )
            out = cli(
                "eval",
                "--predictions",
                predictions,
                "--data",
                data,
                "--name",
                name,
                "--out-root",
                tmp_path / str(episodes is None),
            )
            evals[episodes is None].append(out.stdout.strip())
    rows = [json.loads(line) for line in (Path(evals[False][1]) / "predictions.jsonl").read_text().splitlines()]
    assert [row["episode"] for row in rows] == ["0", "0", "1", "1", "2", "2"]
    cells = {}
    for without_episodes, pair in evals.items():
        lines = cli("eval", "compare", *pair, "--markdown").stdout.strip().splitlines()
        header = [cell.strip() for cell in lines[0].strip("|").split("|")]
        half = [cell.strip() for cell in lines[3].strip("|").split("|")]
        cells[without_episodes] = (header, half[header.index("planning accuracy, blocked frames")])
    assert "planning accuracy vs first, same frames, episodes resampled [95% CI]" in cells[False][0]
    assert "planning accuracy vs first, same frames [95% CI]" in cells[True][0]
    assert cells[False][1] == "0.500 (-0.500 [-0.500, -0.500])"
    assert cells[True][1].startswith("0.500 (-0.500 [-1.000, ")


def test_the_frames_hash_changes_with_a_scored_frame_s_label_or_pixels_only(tmp_path: Path) -> None:
    from alphadrive_cli.data.records import frames_hash, iter_split

    data = open_artifact(make_labelled_data(tmp_path, TRUTHS, {"train": [0], "test": [1, 2]}))
    test = list(iter_split(data, "test", DEFAULT_VOCABULARY))
    scored = frames_hash(data, test)
    assert frames_hash(data, test[::-1]) == scored  # in id order
    assert frames_hash(data, [test[0].model_copy(update={"reasoning": "a trace"}), test[1]]) == scored
    assert frames_hash(data, [test[0].model_copy(update={"speed_action": "STOP"}), test[1]]) != scored
    for image, changed in (("images/0.png", False), ("images/1.png", True)):  # a train frame's, a test frame's
        outputs = {**data.manifest["outputs"], image: "0" * 64}
        other = Artifact(path=data.path, manifest={**data.manifest, "outputs": outputs})
        assert (frames_hash(other, test) != scored) is changed


def test_answer_changes_count_each_kind_and_a_compare_cell_names_the_most_frequent() -> None:
    from alphadrive_cli.evaluation.paired import answer_changes
    from alphadrive_cli.stages.eval_compare import _changes

    before = {f"f{i}": ("KEEP", "KEEP") for i in range(8)} | {"f8": ("STOP", "STOP")}
    answers = ["DECELERATE"] * 3 + ["ACCELERATE"] * 2 + [None, "STOP", "KEEP", "DECELERATE"]
    after = {frame: (truth, answer) for (frame, (truth, _)), answer in zip(before.items(), answers, strict=True)}
    assert answer_changes(before, after) == {
        ("KEEP", "KEEP", "DECELERATE"): 3,
        ("KEEP", "KEEP", "ACCELERATE"): 2,
        ("KEEP", "KEEP", None): 1,
        ("KEEP", "KEEP", "STOP"): 1,
        ("STOP", "STOP", "DECELERATE"): 1,
    }
    assert _changes(before, after) == "8: KEEP→DECELERATE on KEEP 3, KEEP→ACCELERATE on KEEP 2, KEEP→none on KEEP 1, …"
    assert _changes(before, before) == "0"
    assert _changes(before, {"f0": ("KEEP", "KEEP")}) == "–"  # other frames: nothing paired


def test_a_peft_adapter_is_applied_on_its_base_model(cli, data: Path, tiny_model: Path, tmp_path: Path) -> None:
    """An adapter directory (adapter_config.json naming the base) is evaluated with the adapter applied."""
    import torch
    from peft import LoraConfig, get_peft_model

    from alphadrive_cli.models.loading import load_model_and_processor, resolve_model_source

    model, _ = load_model_and_processor(resolve_model_source(str(tiny_model)))
    adapted = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(0)
    for name, weight in adapted.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(weight, std=1.0)  # a trained-looking adapter that changes the outputs
    adapted.save_pretrained(tmp_path / "adapter")
    texts = {}
    for label, reference in (("base", tiny_model), ("adapter", tmp_path / "adapter")):
        result = cli("eval", "--model", reference, "--data", data, "--name", label, "--set", "max_new_tokens=8")
        assert result.exit_code == 0, result.stderr
        artifact = open_artifact(Path(result.stdout.strip()))
        texts[label] = [
            json.loads(line)["text"] for line in (artifact.path / "predictions.jsonl").read_text().splitlines()
        ]
    assert texts["base"] != texts["adapter"]
    assert {ref["role"] for ref in artifact.manifest["inputs"]} == {"data", "base_model"}
    assert artifact.manifest["report"]["model"]["adapter_on"]["kind"] == "artifact"


def test_judged_data_scores_answers_by_the_simulators_verdicts(cli, tmp_path: Path) -> None:
    """Frame 0: KEEP and DECELERATE straight are acceptable; frame 1: only STOP. Two samples per frame."""
    plans = {
        0: [
            judged("KEEP", "STRAIGHT", True),
            judged("DECELERATE", "STRAIGHT", True),
            judged("ACCELERATE", "STRAIGHT", False),
        ],
        1: [judged("STOP", "STRAIGHT", True), judged("KEEP", "STRAIGHT", False)],
    }
    data = make_labelled_data(
        tmp_path / "runs", [("KEEP", "STRAIGHT"), ("STOP", "STRAIGHT")], {"test": [0, 1]}, plans=plans
    )
    predictions = write_predictions(
        tmp_path / "p.jsonl",
        [
            {"id": "f0", "texts": [answer("DECELERATE", "STRAIGHT"), answer("KEEP", "STRAIGHT")]},
            {"id": "f1", "texts": [answer("KEEP", "STRAIGHT"), answer("STOP", "STRAIGHT")]},
        ],
    )
    result = cli("eval", "--predictions", predictions, "--data", data)
    assert result.exit_code == 0, result.stderr
    artifact = Path(result.stdout.strip())
    metrics = json.loads((artifact / "metrics.json").read_text())
    assert metrics["planning_accuracy"] == 0.0  # neither first answer is the label ...
    assert metrics["judged"] == {  # ... but the first one is acceptable on frame 0
        "frames": 2,
        "acceptable_rate": 0.5,
        "unacceptable_by_speed": {"KEEP": 1},
        "unacceptable_by_path": {"STRAIGHT": 1},
        "samples": 4,
        "sample_acceptable_rate": 0.75,
        "best_of_k_acceptable_rate": 1.0,
        "two_acceptable_plans_rate": 0.5,
        "mean_distinct_acceptable_plans": 1.5,
    }
    rows = [json.loads(line) for line in (artifact / "predictions.jsonl").read_text().splitlines()]
    assert [row["plan_acceptable"] for row in rows] == [True, False]
    table = cli("eval", "compare", artifact, artifact, "--markdown").stdout
    assert "acceptable plan (simulator)" in table and "2+ acceptable plans of K" in table


def test_format_following_bench_scores_samples_with_and_without_images(
    data: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench import format_following

    out = tmp_path / "format.json"
    argv = ["format_following", "--model", str(tiny_model), "--data", str(data), "--split", "test"]
    options = ["--frames", "2", "--samples", "3", "--prefill", "<think>", "--example", "e.g. <answer>KEEP</answer>"]
    monkeypatch.setattr(sys, "argv", [*argv, *options, "--out", str(out)])
    format_following.main()
    result = json.loads(out.read_text())
    assert (result["frames"], result["samples"], result["model"]) == (2, 3, tiny_model.name)
    assert (
        str(tmp_path) not in result["command"] and "--prefill '<think>' --example 'e.g. <answer>" in result["command"]
    )
    assert result["example"] == "e.g. <answer>KEEP</answer>"
    for name in ("with_images", "text_only"):
        assert result[name]["reward_signal"]["samples"] == 6
        assert result[name]["tags"]["<think>"] == 6  # the prefill starts every completion
        assert result[name]["first_sample"].startswith("<think>")


def test_shuffled_images_plan_each_frame_from_another_frame_s_images_and_score_its_own_labels(
    data: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = evaluate_stage.complete_records
    planned: list = []

    def recording(model, processor, template, records, *args):
        planned.extend(records)
        return real(model, processor, template, records, *args)

    monkeypatch.setattr(evaluate_stage, "complete_records", recording)
    config = EvalConfig(batch_size=3, max_new_tokens=4, images="shuffled")
    artifact = evaluate_stage.run(config, OutputSpec(tmp_path, "shuffled"), data=data, model=str(tiny_model))
    own = {record.id: record for record in evaluate_stage._records(open_artifact(data), "test")[0]}
    assert sorted(record.id for record in planned) == sorted(own)
    assert all(record.images != own[record.id].images for record in planned)  # no frame keeps its own images
    assert sorted(map(tuple, (r.images for r in planned))) == sorted(map(tuple, (r.images for r in own.values())))
    assert all(record.navigation == own[record.id].navigation for record in planned)  # its own prompt
    rows = [json.loads(line) for line in (artifact.path / "predictions.jsonl").read_text().splitlines()]
    assert {row["id"]: row["truth"] for row in rows} == {
        frame: [record.speed_action, record.path_action] for frame, record in own.items()
    }
    assert artifact.manifest["config"]["images"] == "shuffled"


def test_shuffled_images_are_refused_where_nothing_is_generated(cli, data: Path, tmp_path: Path) -> None:
    predictions = write_predictions(tmp_path / "p.jsonl", [{"id": "x", "text": answer("KEEP", "STRAIGHT")}])
    result = cli("eval", "--predictions", str(predictions), "--data", str(data), "--set", "images=shuffled")
    assert result.exit_code == 2 and "images=shuffled needs --model" in result.output
    result = cli("eval", "--closed-loop", "--model", str(tmp_path / "any"), "--set", "images=shuffled")
    assert result.exit_code == 2 and "open-loop diagnostic" in result.output
    with pytest.raises(BadInput, match="at least two frames"):
        evaluate_stage.with_shuffled_images(evaluate_stage._records(open_artifact(data), "train")[0])
