"""``eval --base-url``: a model behind an OpenAI-compatible endpoint answers each frame's student prompt.

The requests go through the client ``distill`` uses (``teacher/client.py``): bounded concurrency, retries, every
reply stored in the unfinished artifact's ``requests.jsonl`` as it arrives (a re-run never pays for a stored answer
twice), ``--max-requests`` / ``--max-cost``, the key from the environment only. The prompt is the one ``eval
--model`` renders with the model's chat template: the frame's images, then the student instruction.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alphadrive_cli.actions import ActionVocabulary
from alphadrive_cli.artifacts.store import ArtifactWriter
from alphadrive_cli.config.schemas import EvalConfig
from alphadrive_cli.data.records import Record
from alphadrive_cli.errors import StageFailure
from alphadrive_cli.prompts import PromptTemplate, add_prompts, student_messages
from alphadrive_cli.teacher.base import TeacherRequest
from alphadrive_cli.teacher.client import (
    STORE_NAME,
    TRANSPORT_SETTINGS,
    Budget,
    BudgetReached,
    ask,
    cost_usd,
    image_data_url,
    request_key,
)
from alphadrive_cli.teacher.store import AnswerStore
from alphadrive_cli.ui import console, user_text

ANSWERS = ("ok", "refused", "empty")  # the model's own answer, scored as it is (a refusal or nothing: no plan)


def served_messages(
    template: PromptTemplate, record: Record, vocabulary: ActionVocabulary, root: Path
) -> list[dict[str, Any]]:
    """The student's chat messages with each image part carrying its PNG as a ``data:`` URL."""
    images = iter(record.images)
    return [
        {
            **message,
            "content": [
                {"type": "image_url", "image_url": {"url": image_data_url(root / next(images))}}
                if part["type"] == "image"
                else part
                for part in message["content"]
            ],
        }
        for message in student_messages(template, record, vocabulary)
    ]


def identity_settings(config: EvalConfig) -> dict[str, Any]:
    """The config less the endpoint's transport settings: a changed URL, key or budget still resumes the run."""
    settings = config.model_dump(mode="json")
    settings["api"] = {key: value for key, value in settings["api"].items() if key not in TRANSPORT_SETTINGS}
    return settings


def _requests(
    template: PromptTemplate,
    data_root: Path,
    records: Sequence[Record],
    vocabulary: ActionVocabulary,
    config: EvalConfig,
) -> list[TeacherRequest]:
    temperature = 0.0 if config.samples == 1 else config.temperature  # one answer: greedy, as eval --model
    requests = []
    for record in records:
        messages = served_messages(template, record, vocabulary, data_root)  # one copy of the images for K samples
        requests += [
            TeacherRequest(
                request_key(
                    "eval", record.id, sample, template.sha256, config.api.model, temperature, config.max_new_tokens
                ),
                record.id,
                messages,
                temperature,
                config.max_new_tokens,
            )
            for sample in range(config.samples)
        ]
    return requests


def served_completions(
    writer: ArtifactWriter,
    template: PromptTemplate,
    data_root: Path,
    records: Sequence[Record],
    vocabulary: ActionVocabulary,
    config: EvalConfig,
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Every record's ``samples`` answers to ``template`` from the endpoint (stored ones reused), and what the
    requests cost."""
    add_prompts(writer, template)
    requests = _requests(template, data_root, records, vocabulary, config)
    store = AnswerStore(writer.path(STORE_NAME))
    budget = Budget(config.api)
    started = time.perf_counter()
    try:
        ask(requests, store, config.api, budget, "asking", needed_by="--base-url", answered=ANSWERS)
    finally:
        store.close()
    seconds = time.perf_counter() - started
    missing = [request for request in requests if not store.answered(request.key, ANSWERS)]
    if budget.reason is not None and missing:
        raise BudgetReached(
            f"stopped at {budget.reason} after {budget.sent} requests; {len(missing)} still to ask: "
            f"re-run the same command to continue (answers so far are kept)"
        )
    if missing:
        errors = Counter(
            store.replies[request.key].error or "no reply" for request in missing if request.key in store.replies
        )
        cause = f"; most often: {errors.most_common(1)[0][0]}" if errors else ""
        raise StageFailure(
            f"the endpoint answered {len(requests) - len(missing)} of {len(requests)} requests{cause}; nothing was "
            f"published, and re-running the same command asks only the {len(missing)} others (kept in {writer.dir})"
        )
    completions: dict[str, list[str]] = {}
    for request in requests:
        completions.setdefault(request.sample_id, []).append(store.replies[request.key].text or "")
    replies = [store.replies[request.key] for request in requests]
    prompt_tokens = sum(reply.prompt_tokens for reply in replies)
    completion_tokens = sum(reply.completion_tokens for reply in replies)
    console.print(f"{len(requests)} answers from {user_text(config.api.model)} ({budget.sent} asked now, "
                  f"{len(requests) - budget.sent} stored) in {seconds:.1f} s")  # fmt: skip
    return completions, {
        "requests": len(requests),
        "asked_now": budget.sent,
        "outcomes": dict(Counter(reply.outcome for reply in replies)),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "estimated_cost_usd": round(cost_usd(prompt_tokens, completion_tokens, config.api), 6),
        "asking_s": round(seconds, 2),
    }
