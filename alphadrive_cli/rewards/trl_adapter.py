"""AlphaDrive's planning rewards as TRL reward functions, with per-component logs and readable samples.

TRL calls every reward function with the batch's completions and the data set's extra columns as
keyword lists (here ``frame_id``, ``speed_action``, ``path_action``, and with the safety reward
``acceptable_plans``). :class:`PlanningRewards` scores
a batch once with :func:`~alphadrive_cli.rewards.planning.group_rewards`, so planning diversity is computed
within each frame's group of completions, found by frame id and never by position in the batch, and
serves three reward functions whose weighted sum (TRL's ``reward_weights``) is the total reward:

* ``format`` (weight ``format_coef``): the format reward;
* ``speed_planning`` and ``path_planning`` (weight ``quality_coef``): each head's planning quality
  (``rewards.style``: the paper's accuracy x action weight x diversity, or the released code's);
* ``safety`` (weight ``safety_coef``, only when it is above 0): 1 for a plan the simulator judged acceptable at
  the frame (the data set's ``acceptable_plans`` column), else 0.

Every component of :class:`~alphadrive_cli.rewards.planning.RewardBreakdown` is logged each step through TRL's
``log_metric`` as ``planning/<component>/{mean,std,zero_std_groups}`` (the last: the fraction of groups
in which the component is the same for every completion, so it gives that group no advantage). Several
processes (``accelerate launch``) each score their own rollouts, whole groups, and TRL averages what they
log: means and ``zero_std_groups`` are the whole batch's, ``std`` is the mean of the processes' values.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

from alphadrive_cli.actions import ActionVocabulary, parse_answer
from alphadrive_cli.rewards.planning import RewardBreakdown, RewardConfig, group_rewards
from alphadrive_cli.training.distributed import gather

COMPONENTS = (
    "format",
    "speed_accuracy",
    "path_accuracy",
    "speed_weight",
    "path_weight",
    "speed_diversity",
    "path_diversity",
    "speed_quality",
    "path_quality",
    "quality",
    "safety",
    "total",
)
REWARD_FUNCTIONS = ("format", "speed_planning", "path_planning")
SAFETY_FUNCTION = "safety"  # served only when rewards.safety_coef > 0


def completion_text(completion: Any) -> str:
    """The text of a completion as TRL passes it: a string, or (conversational) the assistant message."""
    if isinstance(completion, str):
        return completion
    content = completion[-1]["content"] if completion else ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text") or "" for part in content if isinstance(part, dict))


def plan_key(plan: tuple[str, str]) -> str:
    """A (speed, path) plan as one string, the form a ``datasets`` column holds."""
    return f"{plan[0]},{plan[1]}"


def plan_of_key(key: str) -> tuple[str, str]:
    """The (speed, path) plan of a :func:`plan_key` string."""
    speed, _, path = key.partition(",")
    return speed, path


def component_statistics(breakdowns: Sequence[RewardBreakdown], group_ids: Sequence[Hashable]) -> dict[str, float]:
    """``planning/<component>/mean``, ``/std`` (population, over the batch) and ``/zero_std_groups``."""
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for index, group in enumerate(group_ids):
        groups[group].append(index)
    stats: dict[str, float] = {}
    for component in COMPONENTS:
        values = [getattr(breakdown, component) for breakdown in breakdowns]
        flat = sum(
            1 for members in groups.values() if max(values[i] for i in members) - min(values[i] for i in members) < 1e-9
        )
        stats[f"planning/{component}/mean"] = statistics.fmean(values)
        stats[f"planning/{component}/std"] = statistics.pstdev(values)
        stats[f"planning/{component}/zero_std_groups"] = flat / len(groups)
    return stats


class SampleLog:
    """``samples.jsonl``: every ``every`` steps, the completions of the first ``groups`` prompt groups of
    the batch with their answer and every reward component, for a person to read.

    Opened on a resumed run, lines from the step it resumes at onwards are dropped (those steps run again).
    Without a ``path`` it writes nothing: the other processes of a multi-process run only send their rows
    to the main one, whose log holds the first groups of the whole batch.
    """

    def __init__(self, path: Path | None, every: int, groups: int, resume_step: int | None = None) -> None:
        self.path, self.every, self.groups = path, every, groups
        kept: list[str] = []
        if path is not None and resume_step is not None and path.is_file():
            kept = [
                line
                for line in path.read_text().splitlines()
                if line.strip() and _step_of(line) is not None and _step_of(line) < resume_step
            ]
            path.write_text("".join(line + "\n" for line in kept))
        elif path is not None and path.exists():
            path.unlink()
        steps = [_step_of(line) for line in kept]
        self.next_step = max(steps) + every if steps else 0

    def maybe_write(self, step: int, rows: Sequence[dict[str, Any]]) -> None:
        """Append ``rows`` (already limited to the sampled groups) if ``step`` is due."""
        if self.path is None or step < self.next_step:
            return
        with self.path.open("a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps({"step": step, **row}) + "\n")
        self.next_step = step + self.every


def first_groups(group_ids: Sequence[Hashable], count: int) -> list[Hashable]:
    """The first ``count`` distinct group ids, in order."""
    return list(dict.fromkeys(group_ids))[:count]


def _step_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None  # a line cut by a crash


class PlanningRewards:
    """The planning rewards of one training run, scored once per batch and served as TRL reward functions."""

    def __init__(self, config: RewardConfig, vocabulary: ActionVocabulary, samples: SampleLog | None = None) -> None:
        config.check_vocabulary(vocabulary)
        self.config, self.vocabulary, self.samples = config, vocabulary, samples
        self._scored: tuple[Sequence[Any], list[RewardBreakdown]] | None = None

    @property
    def uses_safety(self) -> bool:
        """Whether the safety reward is served (``safety_coef`` > 0): the data set must then hold verdicts."""
        return self.config.safety_coef > 0

    def function_names(self) -> list[str]:
        """Names of :meth:`reward_functions`, as TRL logs them (``rewards/<name>/mean``)."""
        return [*REWARD_FUNCTIONS, *([SAFETY_FUNCTION] if self.uses_safety else [])]

    def reward_functions(self) -> list[Callable[..., list[float]]]:
        """``format``, ``speed_planning``, ``path_planning`` (and ``safety``): pass with :meth:`reward_weights`."""

        def format(completions: Sequence[Any], **columns: Any) -> list[float]:  # TRL logs the function's name
            return [breakdown.format for breakdown in self.score(completions, **columns)]

        def speed_planning(completions: Sequence[Any], **columns: Any) -> list[float]:
            return [b.speed_quality for b in self.score(completions, **columns)]

        def path_planning(completions: Sequence[Any], **columns: Any) -> list[float]:
            return [b.path_quality for b in self.score(completions, **columns)]

        def safety(completions: Sequence[Any], **columns: Any) -> list[float]:
            return [b.safety for b in self.score(completions, **columns)]

        return [format, speed_planning, path_planning, *([safety] if self.uses_safety else [])]

    def reward_weights(self) -> list[float]:
        """Weights of :meth:`reward_functions`: their weighted sum is ``RewardBreakdown.total``."""
        config = self.config
        return [config.format_coef, config.quality_coef, config.quality_coef] + (
            [config.safety_coef] if self.uses_safety else []
        )

    def score(
        self,
        completions: Sequence[Any],
        *,
        frame_id: Sequence[Hashable],
        speed_action: Sequence[str],
        path_action: Sequence[str],
        acceptable_plans: Sequence[Sequence[str]] | None = None,
        trainer_state: Any = None,
        log_metric: Callable[[str, float], None] | None = None,
        **_: Any,
    ) -> list[RewardBreakdown]:
        """Every reward component of each completion; computed (and logged) once per batch.
        ``acceptable_plans`` holds each frame's acceptable plans as ``plan_key`` strings."""
        if self._scored is not None and self._scored[0] is completions:
            return self._scored[1]
        texts = [completion_text(completion) for completion in completions]
        acceptable = None if acceptable_plans is None else [set(map(plan_of_key, keys)) for keys in acceptable_plans]
        breakdowns = group_rewards(
            texts,
            list(zip(speed_action, path_action, strict=False)),
            frame_id,
            self.config,
            self.vocabulary,
            acceptable,
        )
        self._scored = (completions, breakdowns)
        if log_metric is not None:
            for name, value in component_statistics(breakdowns, frame_id).items():
                log_metric(name, value)
        if self.samples is not None and trainer_state is not None:
            # every process's first groups, in process order: the batch's first groups are among them
            rows = gather(self._sample_rows(texts, breakdowns, frame_id, speed_action, path_action))
            chosen = first_groups([row["frame_id"] for row in rows], self.samples.groups)
            self.samples.maybe_write(int(trainer_state.global_step), [row for row in rows if row["frame_id"] in chosen])
        return breakdowns

    def _sample_rows(
        self,
        texts: Sequence[str],
        breakdowns: Sequence[RewardBreakdown],
        frame_id: Sequence[Hashable],
        speed_action: Sequence[str],
        path_action: Sequence[str],
    ) -> list[dict[str, Any]]:
        assert self.samples is not None
        chosen = first_groups(frame_id, self.samples.groups)
        totals: dict[Hashable, list[float]] = defaultdict(list)
        for group, breakdown in zip(frame_id, breakdowns, strict=False):
            totals[group].append(breakdown.total)
        rows = []
        for i, group in enumerate(frame_id):
            if group not in chosen:
                continue
            parsed = parse_answer(texts[i], self.vocabulary)
            rows.append(
                {
                    "frame_id": group,
                    "truth": {"speed": speed_action[i], "path": path_action[i]},
                    "completion": texts[i],
                    "answer": {"speed": sorted(parsed.speed), "path": sorted(parsed.path)},
                    "rewards": {name: round(value, 6) for name, value in breakdowns[i].as_dict().items()},
                    "group_mean_total": round(statistics.fmean(totals[group]), 6),
                }
            )
        return rows
