"""``alphadrive distill``: a teacher writes the reasoning that leads to each frame's ground-truth plan.

Every reply is stored the moment it arrives (``teacher/store.py``), keyed by sample id + prompt hash +
teacher + sampling settings, so re-running after a crash, Ctrl-C or a budget stop never pays for an
answer twice. Traces are kept only if well formed and agreeing with the label (and, with ``verify``,
with the teacher's own plan made without the label).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from alphadrive_cli.actions import ActionVocabulary
from alphadrive_cli.artifacts.redaction import redact_text
from alphadrive_cli.artifacts.store import (
    Artifact,
    ArtifactWriter,
    OutputSpec,
    default_root,
    open_artifact,
    partial_dir,
)
from alphadrive_cli.config.schemas import DistillConfig
from alphadrive_cli.data.publish import link_image, publish_dataset
from alphadrive_cli.data.records import SPLITS, Record, dataset_vocabulary, iter_split
from alphadrive_cli.errors import BadInput, StageFailure
from alphadrive_cli.prompts import PromptTemplate, load_prompt
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
from alphadrive_cli.teacher.filtering import KEPT, judge_trace, reasoning_of, verify_agrees
from alphadrive_cli.teacher.grounded import GroundedTemplates, grounded_trace
from alphadrive_cli.teacher.store import AnswerStore
from alphadrive_cli.ui import console, user_text

CHARS_PER_TOKEN = 4  # rough text-token estimate for --dry-run and the cost budget
RESUMABLE_CHANGES = (*TRANSPORT_SETTINGS, "min_answered_share")  # settings a resumed run may change


def check_answered(jobs: Sequence[Job], store: AnswerStore, config: DistillConfig, partial: Path) -> None:
    """StageFailure (nothing published, the run kept for a resume) when fewer of ``jobs`` than
    ``min_answered_share`` got an answer: an unreachable or broken teacher is a failure, not an empty data set."""
    replies = [store.replies.get(job.request.key) for job in jobs]
    answered = sum(1 for reply in replies if reply is not None and reply.outcome == "ok")
    if jobs and answered >= config.min_answered_share * len(jobs) and answered > 0:
        return
    errors = Counter(reply.error or reply.outcome for reply in replies if reply is not None and reply.outcome != "ok")
    cause = f"; most often: {errors.most_common(1)[0][0]}" if errors else ""
    raise StageFailure(
        f"the teacher answered {answered} of {len(jobs)} requests, below min_answered_share "
        f"{config.min_answered_share:g}{cause}; nothing was published, and re-running the same command "
        f"(e.g. with a corrected --base-url) asks the unanswered ones again (kept in {partial})"
    )


@dataclass(frozen=True)
class Job:
    """One request for one sample of one frame (``verify``: the label-free second opinion)."""

    record: Record
    split: str
    sample: int
    request: TeacherRequest


def _scene_text(record: Record) -> str:
    return "none" if not record.scene else ", ".join(f"{key}: {value}" for key, value in record.scene.items())


def _messages(
    data: Artifact, record: Record, prompt: PromptTemplate, vocabulary: ActionVocabulary
) -> list[dict[str, Any]]:
    text = prompt.render(
        navigation=record.navigation,
        ego_speed_mps=record.ego_speed_mps,
        speed_actions=", ".join(vocabulary.speed),
        path_actions=", ".join(vocabulary.path),
        scene=_scene_text(record),
        speed_action=record.speed_action,
        path_action=record.path_action,
    )
    images = [{"type": "image_url", "image_url": {"url": image_data_url(data.path / image)}} for image in record.images]
    return [{"role": "user", "content": [*images, {"type": "text", "text": text}]}]


def plan_jobs(
    data: Artifact,
    records: Sequence[tuple[str, Record]],
    config: DistillConfig,
    teacher_name: str,
    prompt: PromptTemplate | GroundedTemplates,
    vocabulary: ActionVocabulary,
    role: str = "trace",
) -> list[Job]:
    """The requests the run needs (messages are only built for model teachers)."""
    jobs = []
    for split, record in records:
        for sample in range(config.samples_per_frame if role == "trace" else 1):
            key = request_key(
                role, record.id, sample, prompt.sha256, teacher_name, config.temperature, config.max_tokens
            )
            messages = _messages(data, record, prompt, vocabulary) if config.teacher == "openai" else []
            jobs.append(
                Job(
                    record,
                    split,
                    sample,
                    TeacherRequest(key, record.id, messages, config.temperature, config.max_tokens),
                )
            )
    return jobs


def estimate_tokens(job: Job, config: DistillConfig) -> tuple[int, int]:
    """(prompt tokens, at most completion tokens) of a request, estimated."""
    text = sum(len(part.get("text", "")) for message in job.request.messages for part in message["content"])
    return text // CHARS_PER_TOKEN + config.image_tokens * len(job.record.images), config.max_tokens


def _ask(
    jobs: Sequence[Job],
    store: AnswerStore,
    config: DistillConfig,
    budget: Budget,
    description: str,
    grounded: Callable[[Job], str] | None,
) -> None:
    """Send every job whose answer is not stored (or have the grounded teacher write it)."""
    by_key = {job.request.key: job for job in jobs}
    ask(
        [job.request for job in jobs],
        store,
        config,
        budget,
        description,
        needed_by="--teacher openai",
        offline=None if grounded is None else (lambda request: grounded(by_key[request.key])),
        seed=config.seed,
    )


def drawn_ids(ids: Sequence[str], share: float, seed: int) -> set[str]:
    """The ids of ``share`` of the frames ``ids`` name (at least one), drawn by a seeded hash of each id."""
    if share >= 1:
        return set(ids)
    rank = {frame: hashlib.sha256(f"{seed}:{frame}".encode()).hexdigest() for frame in ids}
    return set(sorted(rank, key=rank.__getitem__)[: max(1, round(share * len(rank)))])


def drawn_share(records: list[Record], share: float, seed: int) -> list[Record]:
    """``share`` of ``records`` (at least one), drawn by a seeded hash of each id, in their original order."""
    if share >= 1:
        return records
    chosen = drawn_ids([record.id for record in records], share, seed)
    return [record for record in records if record.id in chosen]


def _summary_table(counts: Counter, title: str) -> Table:
    table = Table(title=title)
    table.add_column("trace")
    table.add_column("count", justify="right")
    for reason, count in sorted(counts.items(), key=lambda item: (item[0] != KEPT, item[0])):
        table.add_row(reason, str(count))
    return table


def run(config: DistillConfig, output: OutputSpec, *, data: Path, dry_run: bool = False) -> Artifact | None:
    """Collect, filter and publish reasoning traces; ``dry_run`` only reports what would be sent."""
    data = open_artifact(data, stage="data")
    vocabulary = dataset_vocabulary(data)
    if config.teacher == "openai" and not config.model:
        raise BadInput("--teacher openai needs --model (the teacher's model name, e.g. gpt-4o)")
    if config.verify and config.teacher == "grounded":
        raise BadInput("--verify needs a model teacher: the grounded teacher always knows the label")
    if config.grounded_facts != "all" and config.teacher != "grounded":
        raise BadInput(f"grounded_facts: {config.grounded_facts} is for the grounded teacher (--teacher grounded)")
    records = [
        (split, record)
        for split in config.splits
        for record in drawn_share(list(iter_split(data, split, vocabulary)), config.share, config.seed)
    ]
    if not records:
        raise BadInput(f"{data.path} has no records in {', '.join(config.splits)}")
    templates = GroundedTemplates.load(config.grounded_templates) if config.teacher == "grounded" else None
    if templates is not None:
        templates.check_vocabulary(vocabulary)
    prompt = templates or load_prompt(config.teacher_prompt)  # what decides the answers: id and sha256
    teacher_name = f"grounded:{prompt.id}" if templates else f"openai:{config.model}"
    # the requests' keys (which seed the grounded teacher's phrasing) do not depend on grounded_facts: a one-frame
    # trace is its full twin without the hidden sentences
    jobs = plan_jobs(data, records, config, teacher_name, prompt, vocabulary)
    if config.grounded_facts != "all":  # refused above for a model teacher
        teacher_name += f"+{config.grounded_facts}"
    if dry_run:
        _report_dry_run(jobs, config, output)
        return None
    settings = config.model_dump(mode="json")
    identity = {key: value for key, value in settings.items() if key not in RESUMABLE_CHANGES}
    with output.begin("distill", "distill", settings, inputs={"data": data}, identity=identity) as writer:
        writer.add_prompt(prompt.id, prompt.sha256)
        store = AnswerStore(writer.path(STORE_NAME))
        budget = Budget(config)
        grounded = (
            (
                lambda job: grounded_trace(
                    job.record,
                    random.Random(f"{config.seed}:{job.request.key}"),
                    templates,
                    vocabulary,
                    config.grounded_facts,
                )
            )
            if templates
            else None
        )
        try:
            _ask(jobs, store, config, budget, "teacher", grounded)
            kept, verdicts = _judge(jobs, store, vocabulary)
            if config.verify:
                verify_prompt = load_prompt(config.verify_prompt)
                writer.add_prompt(verify_prompt.id, verify_prompt.sha256)
                checks = plan_jobs(
                    data,
                    [(job.split, job.record) for job in kept],
                    config,
                    teacher_name,
                    verify_prompt,
                    vocabulary,
                    role="verify",
                )
                _ask(checks, store, config, budget, "verifying", None)
                kept = _verified(kept, checks, store, vocabulary, verdicts)
        finally:
            store.close()
        if budget.reason is not None:
            missing = sum(1 for job in jobs if not store.answered(job.request.key))
            raise BudgetReached(
                f"stopped at {budget.reason} after {budget.sent} requests; {missing} still to ask: "
                f"re-run the same command to continue (answers so far are kept)"
            )
        check_answered(jobs, store, config, writer.dir)
        return _publish(writer, data, jobs, kept, store, verdicts, vocabulary, config, redact_text(teacher_name))


def _judge(jobs: Sequence[Job], store: AnswerStore, vocabulary: ActionVocabulary) -> tuple[list[Job], Counter]:
    kept, verdicts = [], Counter()
    for job in jobs:
        reply = store.replies.get(job.request.key)
        if reply is None or reply.outcome != "ok":
            verdicts[f"teacher {reply.outcome if reply else 'not asked'}"] += 1
            continue
        keep, reason = judge_trace(reply.text or "", (job.record.speed_action, job.record.path_action), vocabulary)
        verdicts[reason] += 1
        if keep:
            kept.append(job)
    return kept, verdicts


def _verified(
    kept: Sequence[Job], checks: Sequence[Job], store: AnswerStore, vocabulary: ActionVocabulary, verdicts: Counter
) -> list[Job]:
    agreeing = []
    for job, check in zip(kept, checks, strict=False):
        reply = store.replies.get(check.request.key)
        truth = (job.record.speed_action, job.record.path_action)
        if reply is not None and reply.outcome == "ok" and verify_agrees(reply.text or "", truth, vocabulary):
            agreeing.append(job)
        else:
            verdicts[KEPT] -= 1
            verdicts["verification disagrees" if reply and reply.outcome == "ok" else "verification failed"] += 1
    return agreeing


def _publish(
    writer: ArtifactWriter,
    data: Artifact,
    jobs: Sequence[Job],
    kept: Sequence[Job],
    store: AnswerStore,
    verdicts: Counter,
    vocabulary: ActionVocabulary,
    config: DistillConfig,
    teacher_name: str,
) -> Artifact:
    by_split: dict[str, list[Record]] = {split: [] for split in SPLITS}
    for job in kept:
        text = store.replies[job.request.key].text or ""
        identifier = job.record.id if config.samples_per_frame == 1 else f"{job.record.id}-s{job.sample}"
        for image in job.record.images:
            link_image(data.path / image, writer.path(image))
        by_split[job.split].append(
            job.record.model_copy(
                update={
                    "id": identifier,
                    "reasoning": reasoning_of(text),
                    "teacher": {"name": teacher_name, "sample": job.sample, "request": job.request.key},
                }
            )
        )
    console.print(_summary_table(verdicts, f"distill {writer.name}: traces kept and dropped"))
    outcomes = Counter(reply.outcome for reply in store.replies.values())
    failed = sorted({job.record.id for job in jobs if not store.answered(job.request.key)})
    usage = [store.replies[key] for key in store.replies]
    prompt_tokens = sum(reply.prompt_tokens for reply in usage)
    completion_tokens = sum(reply.completion_tokens for reply in usage)
    return publish_dataset(
        writer,
        by_split,
        vocabulary,
        seed=config.seed,
        counts={
            "requests": len(store.replies),
            "kept": verdicts.get(KEPT, 0),
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
        },
        extra={
            "teacher": {
                "name": teacher_name,
                "kind": "offline template writer, not a language model"
                if config.teacher == "grounded"
                else "OpenAI-compatible chat model",
            },
            "outcomes": dict(outcomes),
            "verdicts": dict(verdicts),
            "failed_samples": failed,
            "estimated_cost_usd": round(cost_usd(prompt_tokens, completion_tokens, config), 6),
        },
    )


def _report_dry_run(jobs: Sequence[Job], config: DistillConfig, output: OutputSpec) -> None:
    """Print what a run would send (requests already stored in an unfinished run are not counted)."""
    store_path = partial_dir(Path(output.root or default_root()) / "distill", output.name or "distill") / STORE_NAME
    store = AnswerStore(store_path) if store_path.is_file() else None
    pending = [job for job in jobs if store is None or not store.answered(job.request.key)]
    prompt_tokens = sum(estimate_tokens(job, config)[0] for job in pending)
    completion_tokens = sum(estimate_tokens(job, config)[1] for job in pending)
    if config.teacher == "grounded":
        console.print(
            f"dry run: {len(pending)} traces to write with the offline grounded teacher (no requests, no cost)"
        )
        return
    console.print(
        f"dry run: {len(pending)} requests to {user_text(config.model)} ({len(jobs) - len(pending)} already answered), "
        f"about {prompt_tokens:,} prompt tokens and at most {completion_tokens:,} completion tokens, "
        f"at most ${cost_usd(prompt_tokens, completion_tokens, config):.2f} at the configured prices"
        + (" (plus verification requests)" if config.verify else "")
    )
