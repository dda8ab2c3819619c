"""What every teacher takes and returns: one request per (frame, sample), one recorded reply."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Outcome = Literal["ok", "refused", "malformed", "empty", "failed"]


@dataclass(frozen=True)
class TeacherRequest:
    """A chat-completions request for one sample of one frame.

    ``key`` identifies the answer in the store: sample id + prompt hash + teacher + sampling settings,
    so a stored answer is never requested again.
    """

    key: str
    sample_id: str
    messages: list[dict[str, Any]]
    temperature: float
    max_tokens: int


@dataclass
class TeacherReply:
    """The recorded outcome of a request (after all retries)."""

    key: str
    sample_id: str
    outcome: Outcome
    text: str | None = None
    attempts: int = 1
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    latency_s: float = 0.0
    attempt_log: list[str] = field(default_factory=list)  # e.g. ["429 retry-after 0.2s", "200"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)
