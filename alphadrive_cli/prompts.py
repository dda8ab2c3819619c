"""Versioned prompt templates in ``prompts/``: loaded by id, identified in manifests by their sha256."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from alphadrive_cli.actions import ActionVocabulary
from alphadrive_cli.errors import BadInput
from alphadrive_cli.resources import PROMPT_DIR

STUDENT_PROMPT = "student-v1"
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
    def images(self) -> Sequence[str]: ...

    @property
    def navigation(self) -> str: ...

    @property
    def ego_speed_mps(self) -> float: ...


def student_messages(
    template: PromptTemplate, record: StudentFrame, vocabulary: ActionVocabulary
) -> list[dict[str, Any]]:
    """The chat messages the student model sees for a frame: its images, then the instruction."""
    return driving_messages(template, record.navigation, record.ego_speed_mps, len(record.images), vocabulary)


def driving_messages(
    template: PromptTemplate, navigation: str, ego_speed_mps: float, image_count: int, vocabulary: ActionVocabulary
) -> list[dict[str, Any]]:
    """The student's chat messages for any view (a data set frame, or the simulator's live view)."""
    text = template.render(
        navigation=navigation,
        ego_speed_mps=ego_speed_mps,
        speed_actions=", ".join(vocabulary.speed),
        path_actions=", ".join(vocabulary.path),
    )
    return user_turn(text, image_count)


def user_turn(text: str, image_count: int) -> list[dict[str, Any]]:
    """One user message: ``image_count`` images, then ``text``."""
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(image_count)]
    return [{"role": "user", "content": [*content, {"type": "text", "text": text}]}]
