"""Simulated crashes: a training run right after its first checkpoint, a client run right after its N-th answer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from transformers import TrainerCallback

from alphadrive_cli.teacher.store import AnswerStore


class Interrupted(Exception):
    pass


class InterruptAfterSave(TrainerCallback):
    """Simulates a crash right after the first checkpoint is written."""

    def on_save(self, args, state, control, **kwargs):
        raise Interrupted(state.global_step)


@contextmanager
def ctrl_c_after_stored(monkeypatch: pytest.MonkeyPatch, answers: int) -> Iterator[None]:
    """Inside the block, ``AnswerStore.add`` raises KeyboardInterrupt (Ctrl-C) right after the ``answers``-th answer
    is stored; afterwards it stores as usual."""
    real_add = AnswerStore.add
    stored: list[str] = []

    def add_then_die(self: AnswerStore, reply) -> None:
        real_add(self, reply)
        stored.append(reply.sample_id)
        if len(stored) == answers:
            raise KeyboardInterrupt

    monkeypatch.setattr(AnswerStore, "add", add_then_die)
    try:
        yield
    finally:
        monkeypatch.setattr(AnswerStore, "add", real_add)
