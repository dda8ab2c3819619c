"""Versioned prompt templates in ``prompts/``: loaded by id, identified in manifests by their sha256."""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from alphadrive_cli.actions import ActionVocabulary
from alphadrive_cli.errors import BadInput
from alphadrive_cli.resources import PROMPT_DIR
from alphadrive_cli.teacher.grounded import GroundedTemplates, scene_description

STUDENT_PROMPT = "student-v1"
SCENE_PROMPT = "student-scene-v1"  # student-v1 with what one image shows stated as text (a perfect perception)
STUDENT_PROMPTS = (STUDENT_PROMPT, SCENE_PROMPT)
PERCEPTION_PROMPT = "perception-v1"  # a question only the image answers (sft.perception_examples)


@dataclass(frozen=True)
class PromptTemplate:
    """A template's id (file stem), text and content hash."""

    id: str
    text: str
    sha256: str

    def render(self, **values: Any) -> str:
        """Fill the template's ``{placeholders}``."""
        return self.text.format(**values).strip()

    @property
    def states_scene(self) -> bool:
        """Whether the template states the frame's scene facts (``{scene}``)."""
        return "{scene}" in self.text


def load_prompt(template_id: str) -> PromptTemplate:
    """Read ``prompts/<template_id>.txt``."""
    path = PROMPT_DIR / f"{template_id}.txt"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROMPT_DIR.glob("*.txt")))
        raise BadInput(f"unknown prompt template {template_id!r} (known: {known})")
    text = path.read_text(encoding="utf-8")
    return PromptTemplate(template_id, text, hashlib.sha256(text.encode()).hexdigest())


class StudentFrame(Protocol):
    """What the student's prompt is made of: a data set record, or a frame without labels (``predict``)."""

    @property
    def id(self) -> str: ...

    @property
    def images(self) -> Sequence[str]: ...

    @property
    def navigation(self) -> str: ...

    @property
    def ego_speed_mps(self) -> float: ...

    @property
    def scene(self) -> Mapping[str, Any] | None: ...


def student_prompt(chosen: str | None, trained_with: Mapping[str, Any] | None) -> PromptTemplate:
    """The student prompt a model trains or plans with: ``chosen`` when given, else the one in the manifest of the
    artifact it was trained as (``trained_with``), else student-v1 (a model never trained here)."""
    if chosen is None and trained_with is not None:
        listed = trained_with.get("prompts")  # grpo manifests before 2026-12-07 held the prompt sampling there
        listed = listed if isinstance(listed, list) else []
        used = [prompt["id"] for prompt in listed if prompt.get("id") in STUDENT_PROMPTS]
        chosen = used[0] if used else None
    template = load_prompt(chosen or STUDENT_PROMPT)
    if template.id not in STUDENT_PROMPTS:
        raise BadInput(f"{template.id!r} is not a student prompt (student prompts: {', '.join(STUDENT_PROMPTS)})")
    return template


class PromptLog(Protocol):
    """What records the prompts a stage used (an artifact writer)."""

    def add_prompt(self, template_id: str, sha256: str) -> None: ...


def add_prompts(log: PromptLog, template: PromptTemplate) -> None:
    """Record a student template and, where it states scene facts, the phrasing they are written in."""
    log.add_prompt(template.id, template.sha256)
    if template.states_scene:
        phrasing = scene_phrasing()
        log.add_prompt(phrasing.id, phrasing.sha256)


def require_scene(template: PromptTemplate, frames: Iterable[StudentFrame]) -> None:
    """Stop with one line when ``template`` states scene facts and a frame has none."""
    if not template.states_scene:
        return
    missing = [frame for frame in frames if not perceived_scene_text(frame.scene)]
    if missing:
        raise BadInput(
            f"prompt {template.id} states each frame's scene facts, and {len(missing)} frames have none (the first: "
            f"{missing[0].id}): it needs simulator data, or records whose scene holds those facts"
        )


def perceived_scene_text(scene: Mapping[str, Any] | None) -> str:
    """What one image of the frame shows, from its scene facts, in one fixed phrasing (the perception target's
    sentences, ``scene_description``); empty without such facts."""
    return scene_description(dict(scene or {}), random.Random(0), scene_phrasing())


def student_messages(
    template: PromptTemplate, record: StudentFrame, vocabulary: ActionVocabulary
) -> list[dict[str, Any]]:
    """The chat messages the student model sees for a frame: its images, then the instruction."""
    return driving_messages(
        template, record.navigation, record.ego_speed_mps, len(record.images), vocabulary, record.scene
    )


def driving_messages(
    template: PromptTemplate,
    navigation: str,
    ego_speed_mps: float,
    image_count: int,
    vocabulary: ActionVocabulary,
    scene: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The student's chat messages for any view (a data set frame, or the simulator's live view); ``scene``, the
    frame's scene facts, for a template that states them."""
    values = {"scene": perceived_scene_text(scene)} if template.states_scene else {}
    text = template.render(
        navigation=navigation,
        ego_speed_mps=ego_speed_mps,
        speed_actions=", ".join(vocabulary.speed),
        path_actions=", ".join(vocabulary.path),
        **values,
    )
    return user_turn(text, image_count)


def user_turn(text: str, image_count: int) -> list[dict[str, Any]]:
    """One user message: ``image_count`` images, then ``text``."""
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(image_count)]
    return [{"role": "user", "content": [*content, {"type": "text", "text": text}]}]


@functools.cache
def scene_phrasing() -> GroundedTemplates:
    """The grounded teacher's default phrasing, which scene texts and perception targets are written in."""
    return GroundedTemplates.load()
