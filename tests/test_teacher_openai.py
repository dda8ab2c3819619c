"""OpenAITeacher against a scripted loopback server, through the real openai package."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from alphadrive_cli.artifacts.redaction import REDACTED
from alphadrive_cli.errors import BadInput
from alphadrive_cli.teacher.base import TeacherReply, TeacherRequest
from alphadrive_cli.teacher.openai_teacher import OpenAITeacher
from tests.support.fault_server import FaultServer, count_words, default_answer, prompt_words

API_KEY = "sk-test-0123456789abcdef"


def make_request(sample: str = "sample-A", content: Any = None) -> TeacherRequest:
    """A request whose user text carries ``sample`` as the server's marker."""
    return TeacherRequest(
        key=f"key-{sample}",
        sample_id=sample,
        messages=[
            {"role": "system", "content": "You plan driving maneuvers."},
            {"role": "user", "content": content if content is not None else f"Plan the next move for {sample}."},
        ],
        temperature=0.7,
        max_tokens=64,
    )


def make_teacher(server: FaultServer, **overrides: Any) -> OpenAITeacher:
    """A teacher with test-sized timeouts and backoff, pointed at ``server``."""
    settings: dict[str, Any] = {
        "model": "tiny-teacher",
        "base_url": server.base_url,
        "api_key": API_KEY,
        "timeout_s": 0.3,
        "max_retries": 2,
        "concurrency": 2,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.5,
    }
    return OpenAITeacher(**{**settings, **overrides})


def complete(teacher: OpenAITeacher, request: TeacherRequest) -> TeacherReply:
    """``teacher.complete`` in a fresh event loop, closing the client after."""

    async def once() -> TeacherReply:
        try:
            return await teacher.complete(request)
        finally:
            await teacher.aclose()

    return asyncio.run(once())


def collect(teacher: OpenAITeacher, requests: list[TeacherRequest], **kwargs: Any) -> list[TeacherReply]:
    """``teacher.run_sync``, returning the replies in the order they were reported."""
    replies: list[TeacherReply] = []
    teacher.run_sync(requests, replies.append, **kwargs)
    return replies


def assert_key_hidden(reply: TeacherReply) -> None:
    """The API key appears nowhere in what would be stored."""
    assert API_KEY not in json.dumps(reply.to_dict())


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


def test_ok_counts_usage_and_sends_the_key_only_to_the_server(server: FaultServer) -> None:
    teacher = make_teacher(server)
    reply = complete(teacher, make_request())
    (seen,) = server.requests
    assert teacher.name == "openai:tiny-teacher"
    assert (reply.outcome, reply.attempts, reply.attempt_log, reply.error) == ("ok", 1, ["200"], None)
    assert reply.text == default_answer(seen.body)
    assert reply.prompt_tokens == prompt_words(seen.body) > 0
    assert reply.completion_tokens == count_words(reply.text)
    assert reply.latency_s > 0
    assert seen.headers["authorization"] == f"Bearer {API_KEY}"
    assert (seen.body["model"], seen.body["temperature"], seen.body["max_tokens"]) == ("tiny-teacher", 0.7, 64)
    assert_key_hidden(reply)


@pytest.mark.parametrize(
    ("headers", "expected_wait"),
    [({"Retry-After": "0.2"}, 0.2), ({"retry-after-ms": "150"}, 0.15), ({"Retry-After": "60"}, 0.5)],
    ids=["seconds", "milliseconds", "capped-at-backoff-max"],
)
def test_429_waits_as_the_server_asks(headers: dict[str, str], expected_wait: float) -> None:
    with FaultServer(retry_after_headers=headers) as server:
        server.script_call(1, "429")
        started = time.monotonic()
        reply = complete(make_teacher(server), make_request())
        elapsed = time.monotonic() - started
    assert (reply.outcome, reply.attempts) == ("ok", 2)
    assert reply.attempt_log == [f"429 retry-after {expected_wait:g}", "200"]
    assert expected_wait <= elapsed < expected_wait + 1.0


def test_5xx_is_retried_then_ok(server: FaultServer) -> None:
    server.script_sample("sample-A", ["500", "503"])
    reply = complete(make_teacher(server), make_request())
    assert (reply.outcome, reply.attempts, reply.attempt_log) == ("ok", 3, ["500", "503", "200"])
    assert reply.error is None


def test_retries_exhausted_is_failed() -> None:
    with FaultServer(default="500") as server:
        reply = complete(make_teacher(server, max_retries=2), make_request())
        calls = len(server.requests)
    assert (reply.outcome, reply.attempts, calls) == ("failed", 3, 3)
    assert reply.error is not None and reply.error.startswith("HTTP 500") and "\n" not in reply.error
    assert_key_hidden(reply)


def test_timeout_is_retried(server: FaultServer) -> None:
    server.script_call(1, "timeout")
    started = time.monotonic()
    reply = complete(make_teacher(server, timeout_s=0.3), make_request())
    assert time.monotonic() - started >= 0.3
    assert (reply.outcome, reply.attempts, reply.attempt_log) == ("ok", 2, ["timeout", "200"])


@pytest.mark.parametrize("fault", ["malformed", "no_choices"])
def test_malformed_is_retried_then_malformed(fault: str) -> None:
    with FaultServer(default=fault) as server:  # type: ignore[arg-type]
        reply = complete(make_teacher(server), make_request())
    assert (reply.outcome, reply.attempts, reply.text) == ("malformed", 3, None)
    assert reply.attempt_log == ["200 malformed"] * 3


def test_malformed_then_ok(server: FaultServer) -> None:
    server.script_call(1, "malformed")
    reply = complete(make_teacher(server), make_request())
    assert (reply.outcome, reply.attempt_log) == ("ok", ["200 malformed", "200"])


def test_empty_is_retried_then_empty() -> None:
    with FaultServer(default="empty") as server:
        reply = complete(make_teacher(server, max_retries=1), make_request())
    assert (reply.outcome, reply.attempts, reply.attempt_log) == ("empty", 2, ["200 empty", "200 empty"])
    assert reply.error == "empty content"


@pytest.mark.parametrize("fault", ["refusal", "content_filter"])
def test_refusal_is_not_retried(fault: str) -> None:
    with FaultServer(default=fault) as server:  # type: ignore[arg-type]
        reply = complete(make_teacher(server), make_request())
        calls = len(server.requests)
    assert (reply.outcome, reply.attempts, calls, reply.text) == ("refused", 1, 1, None)
    assert reply.error is not None and reply.error.startswith("refused")


def test_400_is_failed_without_retry_and_the_echoed_key_is_redacted() -> None:
    with FaultServer(default="400") as server:
        reply = complete(make_teacher(server), make_request())
        calls = len(server.requests)
    assert (reply.outcome, reply.attempts, reply.attempt_log, calls) == ("failed", 1, ["400"], 1)
    assert reply.error is not None and REDACTED in reply.error
    assert_key_hidden(reply)


def test_connection_refused_is_retried_then_failed() -> None:
    with FaultServer() as server:
        base_url = server.base_url
    reply = complete(make_teacher(server, base_url=base_url, max_retries=1), make_request())
    assert (reply.outcome, reply.attempts, reply.attempt_log) == ("failed", 2, ["connection error"] * 2)


def test_concurrency_is_bounded_and_used() -> None:
    with FaultServer(delay_s=0.2) as server:
        teacher = make_teacher(server, concurrency=4, timeout_s=2.0)
        started = time.monotonic()
        replies = collect(teacher, [make_request(f"sample-{index}") for index in range(8)])
        elapsed = time.monotonic() - started
        assert server.max_in_flight == 4
    assert sorted(reply.sample_id for reply in replies) == sorted(f"sample-{index}" for index in range(8))
    assert all(reply.outcome == "ok" for reply in replies)
    assert 0.4 <= elapsed <= 0.8


def test_replies_are_reported_in_the_event_loop_thread(server: FaultServer) -> None:
    threads: set[int] = set()
    make_teacher(server).run_sync(
        [make_request(f"sample-{index}") for index in range(3)], lambda reply: threads.add(threading.get_ident())
    )
    assert threads == {threading.get_ident()}


@pytest.mark.parametrize("concurrency", [1, 3])
def test_stop_starts_no_further_request(concurrency: int) -> None:
    with FaultServer(delay_s=0.05) as server:
        replies: list[TeacherReply] = []
        teacher = make_teacher(server, concurrency=concurrency)
        requests = [make_request(f"sample-{index}") for index in range(10)]
        teacher.run_sync(requests, replies.append, stop=lambda: len(replies) >= 2)
        calls = len(server.requests)
    # The first reply frees a slot before stop() turns true; the requests then in flight finish and are reported.
    assert calls == len(replies) == 2 + concurrency - 1


def test_a_failed_request_does_not_stop_the_run(server: FaultServer) -> None:
    server.script_sample("sample-bad", ["400"])
    replies = collect(make_teacher(server), [make_request("sample-bad"), make_request("sample-good")])
    assert {reply.sample_id: reply.outcome for reply in replies} == {"sample-bad": "failed", "sample-good": "ok"}


def test_cancelling_run_cancels_requests_in_flight() -> None:
    replies: list[TeacherReply] = []

    async def cancel_soon(teacher: OpenAITeacher) -> None:
        task = asyncio.ensure_future(teacher.run([make_request(f"sample-{i}") for i in range(4)], replies.append))
        await asyncio.sleep(0.2)
        task.cancel()
        await task

    with FaultServer(delay_s=3.0) as server:
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            asyncio.run(cancel_soon(make_teacher(server, timeout_s=5.0)))
        assert time.monotonic() - started < 1.0
        assert len(server.requests) == 2
    assert replies == []


def test_keyboard_interrupt_propagates_from_run_sync() -> None:
    def interrupt(reply: TeacherReply) -> None:
        raise KeyboardInterrupt

    with FaultServer(hang_s=3.0) as server:
        server.script_sample("sample-slow", ["timeout"])
        teacher = make_teacher(server, timeout_s=5.0)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            teacher.run_sync([make_request("sample-slow"), make_request("sample-fast")], interrupt)
        assert time.monotonic() - started < 1.0  # the hanging request was cancelled, not awaited


def test_images_as_data_urls_survive_the_round_trip(server: FaultServer) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), (255, 0, 0)).save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    content = [{"type": "text", "text": "Plan for sample-img."}, {"type": "image_url", "image_url": {"url": url}}]
    reply = complete(make_teacher(server), make_request("sample-img", content))
    (seen,) = server.requests
    sent = seen.body["messages"][-1]["content"]
    assert sent[1]["image_url"]["url"] == url
    assert sent[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert reply.outcome == "ok" and "sample-img" in (reply.text or "")


@pytest.mark.parametrize(
    "overrides",
    [{"api_key": ""}, {"concurrency": 0}, {"max_retries": -1}, {"timeout_s": 0}],
    ids=["no-key", "no-concurrency", "negative-retries", "no-timeout"],
)
def test_bad_settings_are_refused(server: FaultServer, overrides: dict[str, Any]) -> None:
    with pytest.raises(BadInput):
        make_teacher(server, **overrides)
