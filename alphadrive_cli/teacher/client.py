"""Asking an OpenAI-compatible endpoint for many requests: what ``distill`` and ``eval --base-url`` share.

Every reply goes to an :class:`AnswerStore` the moment it arrives, so a re-run never pays for a stored answer
twice; a :class:`Budget` stops starting requests at ``max_requests`` / ``max_cost_usd``; the key comes from the
environment only; a reply that says the key, the model or the URL is wrong stops the run at once.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from alphadrive_cli.config.schemas import TokenPrices
from alphadrive_cli.errors import BadInput, StageFailure
from alphadrive_cli.teacher.base import TeacherReply, TeacherRequest
from alphadrive_cli.teacher.store import ANSWERED, AnswerStore
from alphadrive_cli.ui import progress_bar

FATAL_STATUSES = ("401", "403", "404")  # wrong key, no access, wrong model or URL: every request would fail
STORE_NAME = "requests.jsonl"  # the answers of an unfinished run, in its partial artifact
# How to reach the endpoint and how much to spend, not what it answers: changing them keeps a run resumable.
TRANSPORT_SETTINGS = (
    "base_url",
    "api_key_env",
    "concurrency",
    "max_retries",
    "timeout_s",
    "max_requests",
    "max_cost_usd",
    "prices",
)


class EndpointSettings(Protocol):
    """The client settings of a config (``DistillConfig``, ``ServedModelConfig``)."""

    model: str | None
    base_url: str | None
    api_key_env: str
    concurrency: int
    max_retries: int
    timeout_s: float
    max_requests: int | None
    max_cost_usd: float | None
    prices: TokenPrices


def request_key(*parts: Any) -> str:
    """The store key of a request: a hash of everything that decides its answer."""
    return hashlib.sha256("|".join(str(part) for part in parts).encode()).hexdigest()[:32]


def image_data_url(path: Path) -> str:
    """A PNG file as a ``data:`` URL, the way chat-completions requests carry images."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def cost_usd(prompt_tokens: int, completion_tokens: int, settings: EndpointSettings) -> float:
    """Estimated cost at the configured prices."""
    prices = settings.prices
    return (prompt_tokens * prices.input_per_mtok + completion_tokens * prices.output_per_mtok) / 1e6


class BudgetReached(StageFailure):
    """``--max-requests`` / ``--max-cost`` stopped the run; the unfinished artifact resumes."""


class Budget:
    """Counts what this run sends and spends; says when to stop starting requests."""

    def __init__(self, settings: EndpointSettings) -> None:
        self.settings = settings
        self.sent = 0
        self.spent = 0.0
        self.reason: str | None = None

    def gate(self, requests: Sequence[TeacherRequest]) -> Iterator[TeacherRequest]:
        """The requests, until the budget is spent."""
        for request in requests:
            if self.exhausted():
                return
            self.sent += 1
            yield request

    def exhausted(self) -> bool:
        """True (and ``reason`` set) once ``max_requests`` were sent or ``max_cost_usd`` spent."""
        if self.settings.max_requests is not None and self.sent >= self.settings.max_requests:
            self.reason = f"--max-requests {self.settings.max_requests}"
        elif self.settings.max_cost_usd is not None and self.spent >= self.settings.max_cost_usd:
            self.reason = f"--max-cost {self.settings.max_cost_usd} (estimated ${self.spent:.4f} spent)"
        return self.reason is not None

    def charge(self, reply: TeacherReply) -> None:
        """Add a reply's estimated cost."""
        self.spent += cost_usd(reply.prompt_tokens, reply.completion_tokens, self.settings)


def api_key(settings: EndpointSettings, needed_by: str) -> str:
    """The key from ``$api_key_env``; ``EMPTY`` for a ``base_url`` without one (local servers take any key)."""
    key = os.environ.get(settings.api_key_env)
    if key:
        return key
    if settings.base_url:  # local servers (vLLM, Ollama, transformers serve) usually take any key
        return "EMPTY"
    raise BadInput(
        f"{needed_by} needs an API key in ${settings.api_key_env} (or name another variable with --api-key-env)"
    )


def ask(
    requests: Sequence[TeacherRequest],
    store: AnswerStore,
    settings: EndpointSettings,
    budget: Budget,
    description: str,
    *,
    needed_by: str,
    offline: Callable[[TeacherRequest], str] | None = None,
    answered: Collection[str] = ANSWERED,
    seed: int = 0,
) -> None:
    """Send every request without a stored reply whose outcome is in ``answered``; each reply goes to the store as
    it arrives. ``offline`` writes the answers instead of the endpoint (distill's grounded teacher); ``seed`` seeds the
    retries' jitter."""
    pending = [request for request in requests if not store.answered(request.key, answered)]
    if not pending:
        return
    with progress_bar("requests") as progress:
        task = progress.add_task(description, total=len(pending), note="")

        def on_reply(reply: TeacherReply) -> None:
            store.add(reply)
            if reply.outcome == "failed" and reply.attempt_log and reply.attempt_log[-1].split()[0] in FATAL_STATUSES:
                raise BadInput(
                    f"the endpoint answered {reply.attempt_log[-1]} ({reply.error}); check the key in "
                    f"${settings.api_key_env}, the model name and --base-url (answers so far are kept)"
                )
            budget.charge(reply)
            progress.update(task, advance=1, note="" if offline else f"${budget.spent:.4f}")

        if offline is not None:
            for request in pending:
                on_reply(TeacherReply(request.key, request.sample_id, "ok", text=offline(request)))
            return
        from alphadrive_cli.teacher.openai_teacher import OpenAITeacher  # the API path only

        teacher = OpenAITeacher(
            settings.model or "",
            settings.base_url,
            api_key(settings, needed_by),
            settings.timeout_s,
            settings.max_retries,
            settings.concurrency,
            seed=seed,
        )
        teacher.run_sync(budget.gate(pending), on_reply, stop=budget.exhausted)
