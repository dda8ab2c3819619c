"""A teacher for any OpenAI-compatible chat-completions endpoint: retries, backoff, bounded concurrency."""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice

from alphadrive_cli.artifacts.redaction import redact_text
from alphadrive_cli.errors import BadInput
from alphadrive_cli.teacher.base import Outcome, TeacherReply, TeacherRequest

_RETRYABLE_4XX = frozenset({408, 409, 429})
_MAX_ERROR_CHARS = 300
_MAX_BACKOFF_EXPONENT = 30


@dataclass(frozen=True)
class _Attempt:
    """What one HTTP attempt came to; ``outcome`` is the reply's outcome if this is the last attempt."""

    outcome: Outcome
    log: str
    retry: bool
    text: str | None = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wait_s: float | None = None  # the server's Retry-After, already capped


class OpenAITeacher:
    """Ask an OpenAI-compatible chat-completions endpoint, one recorded reply per request."""

    def __init__(
        self,
        model: str,
        base_url: str | None,
        api_key: str,
        timeout_s: float,
        max_retries: int,
        concurrency: int,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        seed: int = 0,
    ) -> None:
        _check_settings(api_key, timeout_s, max_retries, concurrency, backoff_base_s, backoff_max_s)
        self._model = model
        self._base_url = base_url
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._concurrency = concurrency
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._seed = seed
        self._openai: openai.AsyncOpenAI | None = None
        self._openai_loop: asyncio.AbstractEventLoop | None = None

    @property
    def name(self) -> str:
        """``openai:<model>``, the teacher's part of a stored answer's key."""
        return f"openai:{self._model}"

    async def complete(self, request: TeacherRequest) -> TeacherReply:
        """Send one request, retrying what may pass (429, 408, 409, 5xx, timeouts, lost connections,
        empty or malformed answers) up to ``max_retries`` times; never raises for the request's failure.

        A server's ``retry-after-ms``/``Retry-After`` sets the wait (capped at ``backoff_max_s``); otherwise
        the wait is exponential backoff with full jitter. Token counts are summed over attempts."""
        rng = random.Random(f"{self._seed}:{request.key}")  # per request, so concurrency keeps it deterministic
        started = time.monotonic()
        log: list[str] = []
        prompt_tokens = completion_tokens = 0
        for retry_index in range(self._max_retries + 1):
            attempt = await self._attempt(request)
            log.append(attempt.log)
            prompt_tokens += attempt.prompt_tokens
            completion_tokens += attempt.completion_tokens
            if not attempt.retry or retry_index == self._max_retries:
                break
            await asyncio.sleep(self._delay_s(attempt.wait_s, retry_index, rng))
        return TeacherReply(
            key=request.key,
            sample_id=request.sample_id,
            outcome=attempt.outcome,
            text=attempt.text,
            attempts=len(log),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            error=self._one_safe_line(attempt.error),
            latency_s=time.monotonic() - started,
            attempt_log=log,
        )

    async def run(
        self,
        requests: Iterable[TeacherRequest],
        on_reply: Callable[[TeacherReply], None],
        stop: Callable[[], bool] | None = None,
    ) -> None:
        """Complete ``requests`` with at most ``concurrency`` in flight, calling ``on_reply`` (in the event
        loop's thread) as each finishes. Once ``stop()`` is true no request starts; those in flight finish
        and are reported. Cancellation, or an exception from ``on_reply``, cancels the requests in flight
        and propagates."""
        pending = iter(requests)
        should_stop = stop or (lambda: False)
        workers = [asyncio.ensure_future(self._work(pending, on_reply, should_stop)) for _ in range(self._concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await self.aclose()

    def run_sync(
        self,
        requests: Iterable[TeacherRequest],
        on_reply: Callable[[TeacherReply], None],
        stop: Callable[[], bool] | None = None,
    ) -> None:
        """:meth:`run` in a fresh event loop."""
        asyncio.run(self.run(requests, on_reply, stop))

    async def aclose(self) -> None:
        """Close the HTTP client opened in the running event loop (:meth:`run` does this itself)."""
        client, loop = self._openai, self._openai_loop
        self._openai = self._openai_loop = None
        if client is not None and loop is asyncio.get_running_loop():
            await client.close()

    async def _work(
        self, pending: Iterator[TeacherRequest], on_reply: Callable[[TeacherReply], None], stop: Callable[[], bool]
    ) -> None:
        """One worker: take the next request unless told to stop, complete it, report it."""
        while not stop():
            request = next(pending, None)
            if request is None:
                return
            on_reply(await self.complete(request))

    def _client(self) -> openai.AsyncOpenAI:
        """The client for the running event loop (an httpx pool can't outlive its loop)."""
        loop = asyncio.get_running_loop()
        if self._openai is None or self._openai_loop is not loop:
            self._openai = openai.AsyncOpenAI(
                base_url=self._base_url, api_key=self._api_key, timeout=self._timeout_s, max_retries=0
            )
            self._openai_loop = loop
        return self._openai

    async def _post(self, request: TeacherRequest) -> tuple[int, object]:
        """One HTTP round trip: the status code and whatever the openai package parsed the body into."""
        raw = await self._client().chat.completions.with_raw_response.create(
            model=self._model,
            messages=request.messages,  # type: ignore[arg-type]  # plain dicts in the chat-completions shape
            temperature=request.temperature,
            max_tokens=request.max_tokens,
        )
        return raw.status_code, raw.parse()

    async def _attempt(self, request: TeacherRequest) -> _Attempt:
        """One attempt, classified; the deadline bounds the whole attempt, not each read."""
        try:
            status, completion = await asyncio.wait_for(self._post(request), self._timeout_s)
        except (openai.APITimeoutError, asyncio.TimeoutError):
            return _Attempt("failed", "timeout", retry=True, error=f"timed out after {self._timeout_s:g}s")
        except openai.APIConnectionError as exc:
            return _Attempt("failed", "connection error", retry=True, error=f"connection error: {exc}")
        except openai.APIStatusError as exc:
            return _status_attempt(exc, self._backoff_max_s)
        except (json.JSONDecodeError, openai.APIResponseValidationError) as exc:
            return _Attempt("malformed", "200 malformed", retry=True, error=f"malformed response: {exc}")
        except Exception as exc:  # a request that can't be sent is that request's failure
            return _Attempt("failed", "error", retry=False, error=f"{type(exc).__name__}: {exc}")
        return _answer_attempt(status, completion)

    def _delay_s(self, wait_s: float | None, retry_index: int, rng: random.Random) -> float:
        """The server's Retry-After when given, else exponential backoff with full jitter."""
        if wait_s is not None:
            return wait_s
        ceiling = self._backoff_base_s * 2 ** min(retry_index, _MAX_BACKOFF_EXPONENT)
        return rng.uniform(0.0, min(self._backoff_max_s, ceiling))

    def _one_safe_line(self, error: str | None) -> str | None:
        """``error`` on one short line, with the API key and environment secrets redacted."""
        if error is None:
            return None
        line = redact_text(redact_text(" ".join(error.split())), [self._api_key])
        return line if len(line) <= _MAX_ERROR_CHARS else line[: _MAX_ERROR_CHARS - 3] + "..."


def _check_settings(
    api_key: str, timeout_s: float, max_retries: int, concurrency: int, backoff_base_s: float, backoff_max_s: float
) -> None:
    """Refuse settings the teacher can't honour."""
    if not api_key:
        raise BadInput("the teacher's API key is empty (a local server without auth accepts any text, e.g. 'EMPTY')")
    if not timeout_s > 0:
        raise BadInput(f"teacher timeout must be positive, got {timeout_s}")
    if max_retries < 0:
        raise BadInput(f"teacher max_retries must be 0 or more, got {max_retries}")
    if concurrency < 1:
        raise BadInput(f"teacher concurrency must be at least 1, got {concurrency}")
    if backoff_base_s < 0 or backoff_max_s < 0:
        raise BadInput("teacher backoff times must not be negative")


def _status_attempt(exc: openai.APIStatusError, backoff_max_s: float) -> _Attempt:
    """An HTTP error: 408, 409, 429 and 5xx may pass on retry, other 4xx won't."""
    status = exc.status_code
    retry = status in _RETRYABLE_4XX or status >= 500
    wait_s = _retry_after_s(exc.response.headers, backoff_max_s) if retry else None
    log = str(status) if wait_s is None else f"{status} retry-after {wait_s:g}"
    return _Attempt("failed", log, retry=retry, error=f"HTTP {status}: {exc}", wait_s=wait_s)


def _retry_after_s(headers: Mapping[str, str], cap_s: float) -> float | None:
    """Seconds the server asks us to wait (``retry-after-ms``, ``Retry-After`` seconds or date), capped."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            seconds = float(headers.get(name, "")) / divisor
        except ValueError:
            continue
        if not math.isnan(seconds):
            return min(max(seconds, 0.0), cap_s)
    try:
        moment = email.utils.parsedate_to_datetime(headers.get("retry-after", ""))
    except (TypeError, ValueError):
        return None
    return min(max(moment.timestamp() - time.time(), 0.0), cap_s)


def _answer_attempt(status: int, completion: object) -> _Attempt:
    """A 2xx answer: ok, refused, empty (retried) or malformed (retried)."""
    choice = _first_choice(completion)
    if choice is None:
        return _Attempt("malformed", f"{status} malformed", retry=True, error="malformed response: no usable choice")
    tokens = _usage(completion)
    refusal = choice.message.refusal
    if refusal or choice.finish_reason == "content_filter":
        error = f"refused: {refusal or 'content_filter'}"
        return _Attempt("refused", f"{status} refused", retry=False, error=error, **tokens)
    content = choice.message.content
    if not isinstance(content, str) or not content.strip():
        return _Attempt("empty", f"{status} empty", retry=True, error="empty content", **tokens)
    return _Attempt("ok", str(status), retry=False, text=content, **tokens)


def _first_choice(completion: object) -> Choice | None:
    """The first choice with a message, or None when the body isn't a usable chat completion."""
    if not isinstance(completion, ChatCompletion):
        return None
    choices = completion.choices
    if not isinstance(choices, list) or not choices:
        return None
    choice = choices[0]
    if not isinstance(choice, Choice) or not isinstance(choice.message, ChatCompletionMessage):
        return None
    return choice


def _usage(completion: ChatCompletion) -> dict[str, int]:
    """Prompt and completion tokens as reported (0 when absent)."""
    usage = completion.usage
    counts: dict[str, int] = {}
    for field_name in ("prompt_tokens", "completion_tokens"):
        value = getattr(usage, field_name, None)
        counts[field_name] = value if isinstance(value, int) else 0
    return counts
