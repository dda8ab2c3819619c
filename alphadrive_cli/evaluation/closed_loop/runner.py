"""Drive many episodes in lockstep so the model's queries are batched across them.

Episodes of one scenario run side by side: at each decision every running episode is observed, the
observations go to the planner as one batch, and each episode applies its plan and advances by the
decision interval. Scenarios run one after the other because highway-env's intersection changes
``IDMVehicle``'s class constants for the whole process (``isolated_vehicle_defaults`` undoes that).
A completion with no parseable plan (not exactly one speed and one path action) keeps the episode's
last plan, starting from KEEP, STRAIGHT, and is counted as a parse failure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from PIL import Image

from alphadrive_cli.actions import ActionVocabulary, parse_answer
from alphadrive_cli.config.schemas import RenderConfig
from alphadrive_cli.data.sim.scenarios import isolated_vehicle_defaults
from alphadrive_cli.evaluation.closed_loop.driving import (
    EXPERT,
    DrivingEpisode,
    EpisodeOutcome,
    EpisodeSpec,
    Observation,
)

FALLBACK_PLAN = ("KEEP", "STRAIGHT")
# Completes a batch of observations: one text per observation.
Planner = Callable[[Sequence[Observation]], list[str]]


@dataclass
class DriveLog:
    """Every decision of the model's episodes (for ``decisions.jsonl``) and the frames kept for the GIF."""

    record_episodes: set[str]
    decisions: list[dict[str, Any]] = field(default_factory=list)
    frames: dict[str, list[tuple[Image.Image, str]]] = field(default_factory=dict)


def _decide(
    episode: DrivingEpisode, text: str | None, last: tuple[str, str], vocabulary: ActionVocabulary
) -> tuple[tuple[str, str], bool]:
    """The plan to apply and whether it is a fallback (no parseable plan in ``text``)."""
    if text is None:
        return last, False
    plan = parse_answer(text, vocabulary).plan
    if plan is None:
        episode.outcome.parse_failures += 1
        return last, True
    return plan, False


def drive(
    specs: Sequence[EpisodeSpec],
    driver: str,
    planner: Planner | None,
    render: RenderConfig,
    seconds: float,
    interval_s: float,
    vocabulary: ActionVocabulary,
    log: DriveLog | None = None,
    on_decision: Callable[[int], None] | None = None,
) -> list[EpisodeOutcome]:
    """Run every episode with ``driver`` (``expert``, or ``model`` with a ``planner``) and return the outcomes."""
    outcomes: list[EpisodeOutcome] = []
    for _, group in groupby(specs, key=lambda spec: spec.scenario):
        with isolated_vehicle_defaults():
            episodes = [DrivingEpisode(spec, driver, render, seconds) for spec in group]
            try:
                _run_lockstep(episodes, planner if driver != EXPERT else None, interval_s, vocabulary, log, on_decision)
            finally:
                for episode in episodes:
                    episode.close()
        outcomes.extend(episode.outcome for episode in episodes)
    return outcomes


def _run_lockstep(
    episodes: list[DrivingEpisode],
    planner: Planner | None,
    interval_s: float,
    vocabulary: ActionVocabulary,
    log: DriveLog | None,
    on_decision: Callable[[int], None] | None,
) -> None:
    last = {episode.spec.id: FALLBACK_PLAN for episode in episodes}
    while active := [episode for episode in episodes if not episode.done]:
        observations = [episode.observe() for episode in active]
        texts: list[str | None] = list(planner(observations)) if planner is not None else [None] * len(active)
        for episode, observation, text in zip(active, observations, texts, strict=False):
            plan, fallback = _decide(episode, text, last[episode.spec.id], vocabulary)
            last[episode.spec.id] = plan
            episode.outcome.decisions += 1
            if log is not None and text is not None:
                time_s = episode.outcome.duration_s
                log.decisions.append(
                    {
                        "episode": episode.spec.id,
                        "time_s": round(time_s, 2),
                        "speed_mps": observation.ego_speed_mps,
                        "navigation": observation.navigation,
                        "text": text,
                        "plan": list(plan),
                        "fallback": fallback,
                    }
                )
                if episode.spec.id in log.record_episodes:
                    label = (
                        f"{episode.spec.id} t={time_s:.0f}s {observation.ego_speed_mps:.0f} m/s\n"
                        f"plan: {plan[0]}, {plan[1]}" + (" (kept: no valid plan)" if fallback else "")
                    )
                    log.frames.setdefault(episode.spec.id, []).append((observation.images[0], label))
            episode.apply(*plan)
            episode.advance(interval_s)
        if on_decision is not None:
            on_decision(len(active))
