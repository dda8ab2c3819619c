"""The student prompt that states the scene (``prompt: student-scene-v1``): chosen at training, inherited by grpo and
every scoring stage, refused where frames have no scene facts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from alphadrive_cli.actions import DEFAULT_VOCABULARY
from alphadrive_cli.artifacts.store import OutputSpec, open_artifact
from alphadrive_cli.config.resolve import resolve_config
from alphadrive_cli.config.schemas import (
    DistillConfig,
    EvalConfig,
    GrpoConfig,
    RenderConfig,
    SftConfig,
    TinyModelConfig,
)
from alphadrive_cli.data.records import iter_split
from alphadrive_cli.errors import BadInput
from alphadrive_cli.evaluation.closed_loop.driving import DrivingEpisode, EpisodeSpec
from alphadrive_cli.models.loading import load_model_and_processor, resolve_model_source
from alphadrive_cli.prompts import (
    SCENE_PROMPT,
    STUDENT_PROMPT,
    driving_messages,
    load_prompt,
    perceived_scene_text,
    scene_phrasing,
    student_messages,
    student_prompt,
)
from alphadrive_cli.stages import distill as distill_stage
from alphadrive_cli.stages import eval_open_loop, models_tiny
from alphadrive_cli.stages import grpo as grpo_stage
from alphadrive_cli.stages import sft as sft_stage
from alphadrive_cli.training.sft_data import VisionSFTCollator, sft_examples
from tests.support import labelled_data
from tests.support.fault_server import FaultServer, last_user_text
from tests.support.labelled_data import make_labelled_data

LABELS = [("KEEP", "STRAIGHT"), ("DECELERATE", "LEFT_TURN"), ("STOP", "STRAIGHT"), ("ACCELERATE", "RIGHT_CHANGE")]
LEAD_SCENE = {"lead_vehicle": {"gap_m": 12.4, "kind": "vehicle"}, "left_lane": "free", "right_lane": "none"}


def prompt_text(template_id: str, scene: dict | None) -> str:
    messages = driving_messages(load_prompt(template_id), "turn left", 8.0, 1, DEFAULT_VOCABULARY, scene)
    return messages[0]["content"][-1]["text"]


def test_the_scene_prompt_states_what_one_image_shows_in_one_fixed_phrasing() -> None:
    stated = perceived_scene_text(LEAD_SCENE)
    assert "12 m" in stated and "left" in stated and "right" in stated
    assert stated == perceived_scene_text(dict(LEAD_SCENE))  # no draw: the same facts read the same every time
    assert perceived_scene_text(None) == perceived_scene_text({}) == ""
    with_scene = prompt_text(SCENE_PROMPT, LEAD_SCENE)
    assert f"Perception: {stated}" in with_scene and "Navigation: turn left" in with_scene
    assert prompt_text(STUDENT_PROMPT, LEAD_SCENE) == prompt_text(STUDENT_PROMPT, None)  # v1 states no scene
    assert "12 m" not in prompt_text(STUDENT_PROMPT, LEAD_SCENE)


def test_the_student_prompt_is_the_chosen_one_else_the_models_else_v1() -> None:
    trained = {"prompts": [{"id": SCENE_PROMPT, "sha256": "x"}, {"id": "grounded-v1", "sha256": "y"}]}
    assert student_prompt(None, trained).id == SCENE_PROMPT
    assert student_prompt(STUDENT_PROMPT, trained).id == STUDENT_PROMPT
    assert student_prompt(None, {"prompts": []}).id == student_prompt(None, None).id == STUDENT_PROMPT
    with pytest.raises(BadInput, match="not a student prompt"):
        student_prompt("teacher-v1", None)


@pytest.fixture(scope="module")
def scene_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A data artifact with scene facts, its grounded traces, and a two-step SFT with the scene prompt."""
    root = tmp_path_factory.mktemp("scene-prompt") / "runs"
    data = make_labelled_data(root, LABELS, {"train": range(4), "val": range(4), "test": range(4)})
    distilled = distill_stage.run(DistillConfig(), OutputSpec(root), data=data)
    tiny = models_tiny.run(TinyModelConfig(), OutputSpec(root))
    options = {"model": str(tiny.path), "max_steps": 2, "lora": {"r": 8, "alpha": 16}, "prompt": SCENE_PROMPT}
    sft = sft_stage.run(resolve_config("sft", SftConfig, options=options), OutputSpec(root), data=distilled.path)
    return {"data": data, "distill": distilled.path, "tiny": tiny.path, "sft": sft.path}


def prompt_ids(manifest: dict) -> list[str]:
    return [prompt["id"] for prompt in manifest["prompts"]]


def test_sft_records_the_scene_prompt_and_its_phrasing(scene_model) -> None:
    manifest = json.loads((scene_model["sft"] / "manifest.json").read_text())
    assert prompt_ids(manifest) == [SCENE_PROMPT, scene_phrasing().id]
    assert manifest["config"]["prompt"] == SCENE_PROMPT
    assert resolve_model_source(str(scene_model["sft"])).student_prompt().id == SCENE_PROMPT


def test_sft_trains_on_the_prompt_eval_shows_with_the_frames_scene_line(scene_model) -> None:
    """Each SFT example, through the datasets table `sft` trains from, renders the very prompt eval and grpo show
    for its frame, the ``Perception:`` line with the frame's facts included."""
    from datasets import Dataset

    template = load_prompt(SCENE_PROMPT)
    _, processor = load_model_and_processor(resolve_model_source(str(scene_model["tiny"])))
    records = list(iter_split(open_artifact(scene_model["distill"]), "train", DEFAULT_VOCABULARY))
    table = Dataset.from_list(sft_examples(records, DEFAULT_VOCABULARY, reasoning=True))
    collator = VisionSFTCollator(processor, template, DEFAULT_VOCABULARY, scene_model["distill"], 1024)
    for record, example in zip(records, table, strict=True):
        messages = student_messages(template, record, DEFAULT_VOCABULARY)
        shown = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert record.scene and f"Perception: {perceived_scene_text(record.scene)}" in shown
        assert collator.prompt_text(example) == shown


def test_grpo_and_eval_plan_with_the_prompt_the_model_trained_with(scene_model, tmp_path: Path, monkeypatch) -> None:
    seen: list[str] = []
    generate = eval_open_loop.complete_records

    def recording(model, processor, template, *rest, **named):
        seen.append(template.id)
        return generate(model, processor, template, *rest, **named)

    monkeypatch.setattr(eval_open_loop, "complete_records", recording)
    options = {"split": "test", "max_new_tokens": 8, "batch_size": 4}
    evaluated = eval_open_loop.run(
        resolve_config("eval", EvalConfig, options=options),
        OutputSpec(tmp_path / "runs"),
        data=scene_model["data"],
        model=str(scene_model["sft"]),
    )
    assert seen == [SCENE_PROMPT] and prompt_ids(evaluated.manifest) == [SCENE_PROMPT, scene_phrasing().id]
    grpo_options = {
        "model": str(scene_model["sft"]),
        "max_steps": 1,
        "per_device_batch_size": 4,
        "num_generations": 2,
        "max_completion_length": 8,
        "lora": {"r": 8, "alpha": 16},
    }
    rl = grpo_stage.run(
        resolve_config("grpo", GrpoConfig, options=grpo_options),
        OutputSpec(tmp_path / "runs"),
        data=scene_model["data"],
    )
    assert prompt_ids(rl.manifest)[0] == SCENE_PROMPT


def test_frames_without_scene_facts_are_refused_before_any_model_loads(
    scene_model, tmp_path: Path, monkeypatch, cli
) -> None:
    monkeypatch.setattr(labelled_data, "SCENE", None)
    sceneless = make_labelled_data(tmp_path / "plain", LABELS, {"train": range(4), "test": range(4)})
    with pytest.raises(BadInput, match="states each frame's scene facts, and 4 frames have none"):
        eval_open_loop.run(
            resolve_config("eval", EvalConfig, options={"split": "test"}),
            OutputSpec(tmp_path / "runs"),
            data=sceneless,
            model=str(scene_model["sft"]),
        )
    answers_only = {"model": str(scene_model["tiny"]), "reasoning": False, "prompt": SCENE_PROMPT}  # no traces
    with pytest.raises(BadInput, match="states each frame's scene facts"):
        sft_stage.run(
            resolve_config("sft", SftConfig, options=answers_only), OutputSpec(tmp_path / "runs"), data=sceneless
        )
    frames = tmp_path / "frames.jsonl"
    frames.write_text("")
    result = cli("predict", "--model", scene_model["sft"], "--frames", frames)
    assert result.exit_code != 0 and "a frames file does not hold" in result.stderr


def test_closed_loop_observations_carry_the_live_scene_facts() -> None:
    episode = DrivingEpisode(EpisodeSpec("highway", 0, None), "model", RenderConfig(image_size=112), 2.0)
    try:
        observed = episode.observe()
    finally:
        episode.close()
    assert {"lead_vehicle", "left_lane", "right_lane"} <= set(observed.scene)
    assert perceived_scene_text(observed.scene)  # something to state in the prompt


def test_eval_prompt_names_the_prompt_of_a_plain_model_directory_and_a_served_model(
    scene_model, tmp_path: Path, cli
) -> None:
    plain = tmp_path / "plain-model"  # a model directory without a manifest, as a checkpoint or an export
    shutil.copytree(scene_model["tiny"], plain, ignore=shutil.ignore_patterns("manifest.json"))
    assert resolve_model_source(str(plain)).student_prompt().id == STUDENT_PROMPT
    scored = cli("eval", "--model", plain, "--data", scene_model["data"], "--out-root", tmp_path / "runs",
                 "--set", f"prompt={SCENE_PROMPT}", "--set", "max_new_tokens=4")  # fmt: skip
    assert scored.exit_code == 0, scored.stderr
    assert prompt_ids(json.loads((Path(scored.stdout.strip()) / "manifest.json").read_text()))[0] == SCENE_PROMPT
    texts: list[str] = []

    def answer(body) -> str:
        texts.append(last_user_text(body))
        return "<answer>KEEP, STRAIGHT</answer>"

    with FaultServer(answer=answer) as server:
        served = cli("eval", "--data", scene_model["data"], "--base-url", server.base_url, "--api-model", "m",
                     "--out-root", tmp_path / "runs", "--set", f"prompt={SCENE_PROMPT}")  # fmt: skip
    assert served.exit_code == 0, served.stderr
    assert len(texts) == 4 and all(text.count("Perception: ") == 1 for text in texts)
