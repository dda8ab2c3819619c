"""A loopback OpenAI chat-completions server whose answers a test scripts, fault by fault.

with FaultServer() as server:
    server.script_sample("sample-A", ["429", "429"])  # the first two calls for sample-A get 429
    server.script_call(3, "timeout")                 # the third call overall hangs
    ... OpenAITeacher(base_url=server.base_url, ...) ...
    server.requests, server.max_in_flight
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Fault = Literal[
    "ok", "429", "500", "503", "timeout", "malformed", "no_choices", "empty", "refusal", "content_filter", "400", "401"
]
CHAT_PATH = "/v1/chat/completions"
MAX_PAUSE_S = 5.0  # no handler sleeps longer, whatever a test asks
POLL_S = 0.02  # how soon the serving thread notices shutdown
REFUSAL = "I can't help with that."

Response = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it; header names are lower-case."""

    path: str
    headers: dict[str, str]
    body: Any
    fault: Fault


def text_parts(content: Any) -> list[str]:
    """The text of a message's content, whether a string or a list of typed parts."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"]
    return []


def last_user_text(body: Any) -> str:
    """The text of the last user message of a chat-completions body ("" when there is none)."""
    users = [message for message in body.get("messages", []) if message.get("role") == "user"]
    return " ".join(text_parts(users[-1].get("content"))) if users else ""


def count_words(text: str) -> int:
    """The server's stand-in for a tokenizer."""
    return len(text.split())


def prompt_words(body: Any) -> int:
    """What the server reports as ``usage.prompt_tokens``: words over every message's text."""
    return sum(count_words(text) for message in body.get("messages", []) for text in text_parts(message.get("content")))


def default_answer(body: Any) -> str:
    """A deterministic AlphaDrive-style answer echoing the request's last user text."""
    return f"<think>{last_user_text(body)}</think><answer>KEEP, STRAIGHT</answer>"


class FaultServer:
    """OpenAI chat-completions on 127.0.0.1 (ephemeral port), answering as scripted; a context manager.

    A call's fault is, in order: the one scripted for its call number (1-based, over all calls), the next
    one scripted for the first sample marker found in its last user text, else ``default``.
    """

    def __init__(
        self,
        *,
        default: Fault = "ok",
        delay_s: float = 0.0,
        hang_s: float = 1.0,
        retry_after_headers: dict[str, str] | None = None,
        answer: Callable[[Any], str] = default_answer,
    ) -> None:
        self.default = default
        self.delay_s = delay_s
        self.hang_s = hang_s
        self.retry_after_headers = {"Retry-After": "0.2"} if retry_after_headers is None else retry_after_headers
        self.answer = answer
        self._by_call: dict[int, Fault] = {}
        self._by_marker: dict[str, list[Fault]] = {}
        self._requests: list[RecordedRequest] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fault_server = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(POLL_S,), name="fault-server", daemon=True
        )

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()  # wakes handlers that are pausing
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=MAX_PAUSE_S)

    @property
    def base_url(self) -> str:
        """What to give the openai client as ``base_url``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def max_in_flight(self) -> int:
        """The most requests the server was answering at once."""
        with self._lock:
            return self._max_in_flight

    def script_call(self, call: int, fault: Fault) -> None:
        """Answer call number ``call`` (1-based, counting every call) with ``fault``."""
        with self._lock:
            self._by_call[call] = fault

    def script_sample(self, marker: str, faults: list[Fault]) -> None:
        """Answer the next calls whose last user text contains ``marker`` with ``faults``, one each, in order."""
        with self._lock:
            self._by_marker[marker] = list(faults)

    def respond(self, path: str, headers: dict[str, str], raw_body: bytes) -> Response:
        """Record the request and build the scripted answer (pausing as the fault says)."""
        try:
            body = json.loads(raw_body)
        except json.JSONDecodeError:
            return _error(400, "request body is not JSON")
        if path != CHAT_PATH:
            return _error(404, f"no route {path}")
        fault = self._record(path, headers, body)
        try:
            self._pause(self.hang_s if fault == "timeout" else self.delay_s)
            return self._answer(fault, body, headers)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _record(self, path: str, headers: dict[str, str], body: Any) -> Fault:
        """Pick the call's fault, record the call and count it in flight."""
        with self._lock:
            fault = self._by_call.get(len(self._requests) + 1) or self._marker_fault(last_user_text(body))
            self._requests.append(RecordedRequest(path, headers, body, fault))
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            return fault

    def _marker_fault(self, text: str) -> Fault:
        """The next fault scripted for the first marker in ``text`` (call with the lock held)."""
        for marker, faults in self._by_marker.items():
            if marker in text and faults:
                return faults.pop(0)
        return self.default

    def _pause(self, seconds: float) -> None:
        """Sleep, bounded, and cut short when the server stops."""
        if seconds > 0:
            self._stopping.wait(min(seconds, MAX_PAUSE_S))

    def _answer(self, fault: Fault, body: Any, headers: dict[str, str]) -> Response:
        """The HTTP answer for ``fault``."""
        if fault == "429":
            status, extra_headers, payload = _error(429, "rate limited")
            return status, {**extra_headers, **self.retry_after_headers}, payload
        if fault == "401":
            return _error(401, "invalid api key")
        if fault in ("500", "503"):
            return _error(int(fault), "server trouble")
        if fault == "400":  # like a careless proxy, echo the credentials so a test can check they're redacted
            return _error(400, f"invalid request (credentials received: {headers.get('authorization')})")
        if fault == "malformed":
            return 200, {"Content-Type": "application/json"}, b'{"id": "chatcmpl-broken", "choices": [{'
        if fault == "no_choices":
            return _json(200, {"id": "chatcmpl-nochoices", "object": "chat.completion", "model": body.get("model")})
        return _json(200, self._completion(fault, body))

    def _completion(self, fault: Fault, body: Any) -> dict[str, Any]:
        """A chat completion for the 200 faults: ok (and timeout, if anyone still listens), empty, refusal."""
        content: str | None = {"empty": "", "refusal": None, "content_filter": None}.get(fault, self.answer(body))
        message = {"role": "assistant", "content": content, "refusal": REFUSAL if fault == "refusal" else None}
        completion_tokens = count_words(content or "")
        usage = {"prompt_tokens": prompt_words(body), "completion_tokens": completion_tokens}
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "content_filter" if fault == "content_filter" else "stop",
                }
            ],
            "usage": {**usage, "total_tokens": usage["prompt_tokens"] + completion_tokens},
        }


def _json(status: int, payload: Any) -> Response:
    """A JSON response."""
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def _error(status: int, message: str) -> Response:
    """An OpenAI-style error response."""
    return _json(status, {"error": {"message": message, "type": "fault_server", "code": str(status)}})


class _Server(ThreadingHTTPServer):
    """Handler threads are daemons, so a pausing one never holds up shutdown."""

    daemon_threads = True
    fault_server: FaultServer


class _Handler(BaseHTTPRequestHandler):
    """Hands each POST to the FaultServer and writes its answer (HTTP/1.1, keep-alive)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms delayed-ACK stall
    server: _Server

    def do_POST(self) -> None:  # http.server's naming
        """Answer one POST."""
        raw_body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, extra_headers, payload = self.server.fault_server.respond(self.path, headers, raw_body)
        try:
            self.send_response(status)
            for name, value in {**extra_headers, "Content-Length": str(len(payload))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a "timeout" fault)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # http.server's signature
        """Keep test output quiet."""
