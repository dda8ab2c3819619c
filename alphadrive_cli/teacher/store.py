"""The answer store: every teacher reply appended to a JSONL file the moment it arrives.

It lives in the unfinished artifact, so a crash or Ctrl-C loses at most the replies in flight, and a
re-run never sends a request whose answer (``ok`` or ``refused``) is already stored. Failed requests
are stored too (every outcome is recorded) and asked again on the next run.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import IO

from alphadrive_cli.artifacts.redaction import redact
from alphadrive_cli.teacher.base import TeacherReply

ANSWERED = ("ok", "refused")


class AnswerStore:
    """Replies by request key; the last reply for a key wins."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.replies: dict[str, TeacherReply] = {}
        if path.is_file():
            for reply in self._read():
                self.replies[reply.key] = reply
        self._handle: IO[str] | None = None

    def _read(self) -> Iterator[TeacherReply]:
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                yield TeacherReply(**json.loads(line))
            except (json.JSONDecodeError, TypeError):  # a line cut by a crash: its request is sent again
                continue

    def answered(self, key: str, outcomes: Collection[str] = ANSWERED) -> bool:
        """True when an answer for ``key`` is stored whose outcome is one of ``outcomes`` (default: usable)."""
        reply = self.replies.get(key)
        return reply is not None and reply.outcome in outcomes

    def add(self, reply: TeacherReply) -> None:
        """Record a reply durably (flushed line by line), secrets redacted."""
        if self._handle is None:
            self._handle = self.path.open("a", encoding="utf-8")
        self._handle.write(json.dumps(redact(reply.to_dict()), ensure_ascii=False) + "\n")
        self._handle.flush()
        self.replies[reply.key] = reply

    def close(self) -> None:
        """Close the file (replies stay on disk)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
