"""How much of a data set's speed (or path, or whole plan) labels can be predicted from what its records say about
the frame?

Usage: python -m bench.label_ceiling DATA [DATA ...] [--label speed|path|plan] [--seeds 0 1 2 3 4] [--out FILE]

Fits a small classifier (an MLP, epochs chosen on the validation split) from each record's recorded scene state to
its speed action (or with --label path its path action, with --label plan the pair of both as one class, what
planning accuracy scores), on the train split, and scores the test split once,
beside always the train split's most frequent action and, for speed, a lookup table:
- ``the prompt alone``: what the student's prompt states, the ego speed and the navigation instruction (no scene
  number, and not whether the frame is an episode's first): what a model that reads nothing from the image can know;
- ``the scene prompt``: that plus what `prompt: student-scene-v1` states as text (its ``Perception:`` line): the
  lead or obstacle and its gap, the lanes beside, the junction's distance and its yielding; not the speed limit,
  the lead's closing speed or the traffic count, which the line leaves out;
- ``facts``: the states of the facts a grounded trace states (speed against the limit, lead vehicle, its motion,
  junction, yielding): a lookup table, as `bench.reasoning_facts` fits it;
- ``one frame``: every number the record holds about its frame that one image and the prompt can show (ego speed
  and limit, the lead's gap and kind, lanes, junction distance, traffic, yielding, scenario, the navigation
  instruction): what a perfect perceiver of one frame could know;
- ``one frame + closing speed``: the same plus the lead's speed relative to the ego, which one image cannot show;
- ``one frame + earlier speed``: ``one frame`` plus the change of the ego speed since the episode's previous frame
  (one frame interval earlier, 1 s by default): what the speed a second earlier in the prompt would add;
- ``two frames``: that plus the change of the lead gap since then: what a second image adds.
Every input says whether the frame has a previous one (the first frame of an episode has none), so that no input
learns the position in the episode that another lacks.
Each score is a lower bound on what that input allows, since the classifier is small; where even the richest input
leaves a class unpredictable, no model that sees it should be expected to learn that class, by SFT or by RL.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from alphadrive_cli.actions import DEFAULT_VOCABULARY
from alphadrive_cli.evaluation.metrics import per_class_prf
from bench.common import run_facts
from bench.entry import run_main
from bench.reasoning_facts import fact_table_on, split_records
from bench.report import report

PLANS = tuple(f"{speed}, {path}" for speed in DEFAULT_VOCABULARY.speed for path in DEFAULT_VOCABULARY.path)
ACTIONS = {"speed": DEFAULT_VOCABULARY.speed, "path": DEFAULT_VOCABULARY.path, "plan": PLANS}
FOLLOWED = {  # the rare classes the table shows
    "speed": ("DECELERATE",),
    "path": ("LEFT_CHANGE", "RIGHT_CHANGE"),
    "plan": ("DECELERATE, STRAIGHT",),
}

LANE_STATES = ("free", "occupied", "none")
NO_LEAD_GAP_M = 100.0  # the gap a frame without a lead vehicle gets (and the cap on every gap)
NO_JUNCTION_M = 200.0
PROMPT_INPUT = "the prompt alone"
SCENE_PROMPT_INPUT = "the scene prompt"
INPUTS: dict[str, tuple[bool, tuple[str, ...]]] = {  # name: (the lead's closing speed given, what changes are)
    "one frame": (False, ()),
    "one frame + closing speed": (True, ()),
    "one frame + earlier speed": (False, ("speed",)),
    "two frames": (False, ("speed", "gap")),
}


def frame_numbers(record: dict[str, Any], closing_speed: bool) -> list[float]:
    """The numbers one record holds about its frame (categorical fields as one-hot, see `categories`); the lead's
    relative speed only with ``closing_speed``."""
    scene = record.get("scene") or {}
    lead = scene.get("lead_vehicle") or {}
    speed, limit = record["ego_speed_mps"], scene.get("speed_limit_mps") or 0.0
    return [
        speed,
        limit,
        speed - limit,
        *lead_numbers(record),
        *([lead.get("relative_speed_mps", 0.0)] if closing_speed else []),
        float(scene.get("lanes") or 1),
        float(scene.get("lane") or 0),
        *lane_numbers(scene),
        junction_number(scene),
        float(scene.get("vehicles_within_50m") or 0),
        float(bool(scene.get("yielding"))),
    ]


def lead_numbers(record: dict[str, Any]) -> list[float]:
    """Whether the frame has a lead vehicle, whether it is an obstacle, and its gap (`lead_gap`)."""
    lead = (record.get("scene") or {}).get("lead_vehicle") or {}
    return [float(bool(lead)), float(lead.get("kind") == "obstacle"), lead_gap(record)]


def lane_numbers(scene: dict[str, Any]) -> list[float]:
    """The lanes beside the ego's, each state one-hot over LANE_STATES, left then right."""
    return [float(scene.get(side) == state) for side in ("left_lane", "right_lane") for state in LANE_STATES]


def junction_number(scene: dict[str, Any]) -> float:
    """The distance to the junction ahead, capped; NO_JUNCTION_M without one."""
    junction = scene.get("distance_to_junction_m")
    return NO_JUNCTION_M if junction is None else min(junction, NO_JUNCTION_M)


def navigation_numbers(record: dict[str, Any], navigations: Sequence[str]) -> list[float]:
    """A frame's navigation instruction, one-hot over ``navigations``."""
    return [float(record.get("navigation", "") == text) for text in navigations]


def prompt_numbers(record: dict[str, Any], navigations: Sequence[str]) -> list[float]:
    """What the student's prompt states about a frame: its ego speed and (one-hot) navigation instruction."""
    return [record["ego_speed_mps"], *navigation_numbers(record, navigations)]


def scene_line_numbers(record: dict[str, Any]) -> list[float]:
    """The numbers the scene prompt's ``Perception:`` line states about a frame (`scene_description`): the lead
    (whether there is one, whether it is an obstacle, its gap), the lanes beside, the junction's distance, yielding."""
    scene = record.get("scene") or {}
    return [*lead_numbers(record), *lane_numbers(scene), junction_number(scene), float(bool(scene.get("yielding")))]


def scene_prompt_numbers(record: dict[str, Any], navigations: Sequence[str]) -> list[float]:
    """What the scene prompt states about a frame: the prompt's numbers and its ``Perception:`` line's."""
    return [*prompt_numbers(record, navigations), *scene_line_numbers(record)]


PROMPT_INPUTS: dict[str, Callable[[dict[str, Any], Sequence[str]], list[float]]] = {  # name: a frame's numbers
    PROMPT_INPUT: prompt_numbers,
    SCENE_PROMPT_INPUT: scene_prompt_numbers,
}


def action_index(record: dict[str, Any], label: str) -> int:
    """The index of the record's ``label`` action among ACTIONS[label]: a classifier's target."""
    return ACTIONS[label].index(action_of(record, label))


def previous_numbers(record: dict[str, Any], previous: dict[str, Any] | None, changes: Sequence[str]) -> list[float]:
    """Whether the frame one step earlier in the same episode exists and, of ``changes`` ("speed", "gap"), how the
    ego speed and the lead gap changed since it (0 without it)."""
    change = {
        "speed": lambda before: record["ego_speed_mps"] - before["ego_speed_mps"],
        "gap": lambda before: lead_gap(record) - lead_gap(before),
    }
    return [float(previous is not None), *(change[name](previous) if previous else 0.0 for name in changes)]


def lead_gap(record: dict[str, Any]) -> float:
    """The gap to the lead vehicle, capped; NO_LEAD_GAP_M without one."""
    lead = (record.get("scene") or {}).get("lead_vehicle") or {}
    return min(lead.get("gap_m", NO_LEAD_GAP_M), NO_LEAD_GAP_M)


def frame_key(record: dict[str, Any]) -> tuple[int, int] | None:
    """(episode, frame) of a simulator record; None for a record without them (imported frames)."""
    source = record.get("source") or {}
    episode, frame = source.get("episode"), source.get("frame")
    return None if episode is None or frame is None else (episode, frame)


def categories(records: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """The scenarios and navigation instructions of the train split, for one-hot columns."""
    return {
        "scenario": sorted({r.get("source", {}).get("scenario", "") for r in records}),
        "navigation": sorted({r.get("navigation", "") for r in records}),
    }


def features(
    records: dict[str, dict[str, Any]],
    vocab: dict[str, list[str]],
    closing_speed: bool,
    changes: Sequence[str],
    label: str = "speed",
) -> tuple[torch.Tensor, torch.Tensor]:
    """A split's feature matrix and ``label``-action targets (``INPUTS`` names each pair of closing_speed and
    changes)."""
    by_frame = {frame_key(r): r for r in records.values() if frame_key(r) is not None}
    rows, targets = [], []
    for record in records.values():
        row = frame_numbers(record, closing_speed)
        row += [float(record.get("source", {}).get("scenario", "") == name) for name in vocab["scenario"]]
        row += navigation_numbers(record, vocab["navigation"])
        key = frame_key(record)
        row += previous_numbers(record, by_frame.get((key[0], key[1] - 1)) if key else None, changes)
        rows.append(row)
        targets.append(action_index(record, label))
    return torch.tensor(rows), torch.tensor(targets)


def input_features(
    records: dict[str, dict[str, Any]], vocab: dict[str, list[str]], name: str, label: str = "speed"
) -> tuple[torch.Tensor, torch.Tensor]:
    """A split's feature matrix for the input called ``name`` (a key of PROMPT_INPUTS or INPUTS) and its
    ``label``-action targets."""
    if name not in PROMPT_INPUTS:
        return features(records, vocab, *INPUTS[name], label=label)
    rows = [PROMPT_INPUTS[name](record, vocab["navigation"]) for record in records.values()]
    return torch.tensor(rows), torch.tensor([action_index(record, label) for record in records.values()])


def column_scale(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each column's mean and standard deviation over ``rows``, a deviation of 1 where the column is constant (it
    is left unscaled)."""
    mean, std = rows.mean(0), rows.std(0)
    return mean, torch.where(std < 1e-3, torch.ones_like(std), std)


class BestOnValidation:
    """The weights of a model at its best validation accuracy so far, and that accuracy and epoch."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.accuracy, self.epoch = model, -1.0, 0
        self.state: dict[str, torch.Tensor] | None = None

    def offer(self, accuracy: float, epoch: int) -> None:
        """Keep the model's weights if ``accuracy`` beats the best so far."""
        if accuracy > self.accuracy:
            self.accuracy, self.epoch = accuracy, epoch
            self.state = {key: value.clone() for key, value in self.model.state_dict().items()}

    def restore(self) -> tuple[float, int]:
        """Load the kept weights back into the model; their validation accuracy and epoch."""
        assert self.state is not None, "no epoch was offered"
        self.model.load_state_dict(self.state)
        return self.accuracy, self.epoch


def fit(
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    seed: int,
    epochs: int = 400,
    label: str = "speed",
) -> tuple[Callable[[torch.Tensor], torch.Tensor], float, int]:
    """Train an MLP on ``train`` (full batch) and keep the epoch best on ``val``: its class probabilities (features
    to one row of probabilities over ACTIONS[label] each), that validation accuracy and the epoch."""
    torch.manual_seed(seed)
    mean, std = column_scale(train[0])
    model = torch.nn.Sequential(
        torch.nn.Linear(train[0].shape[1], 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, len(ACTIONS[label])),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)

    def probabilities(inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model((inputs - mean) / std).softmax(-1)

    best = BestOnValidation(model)
    for epoch in range(1, epochs + 1):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model((train[0] - mean) / std), train[1]).backward()
        optimizer.step()
        if epoch % 10 == 0:
            best.offer((probabilities(val[0]).argmax(-1) == val[1]).float().mean().item(), epoch)
    return probabilities, *best.restore()


def fit_and_score(
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    seed: int,
    epochs: int = 400,
    label: str = "speed",
) -> dict[str, Any]:
    """:func:`fit` on ``train`` and ``val``, then score ``test`` once (and report each action's recall on ``val``
    too, where a rare class may have more frames than on ``test``)."""
    probabilities, best_val, best_epoch = fit(train, val, seed, epochs, label)
    return {
        "val_accuracy": best_val,
        "val_recall": scored(probabilities(val[0]).argmax(-1), val[1], label)["recall"],
        "epoch": best_epoch,
        **scored(probabilities(test[0]).argmax(-1), test[1], label),
    }


def scored(answers: torch.Tensor, truths: torch.Tensor, label: str = "speed") -> dict[str, Any]:
    """Accuracy and each action's recall."""
    actions = ACTIONS[label]
    truth, predicted = ([actions[index] for index in labels.tolist()] for labels in (truths, answers))
    recall = {action: round(prf["recall"], 4) for action, prf in per_class_prf(truth, predicted, actions).items()}
    return {"test_accuracy": round((answers == truths).float().mean().item(), 4), "recall": recall}


def action_of(record: dict[str, Any], label: str) -> str:
    """A record's ``label`` action: its speed or path action, or for ``plan`` both as ``"SPEED, PATH"``."""
    if label == "plan":
        return f"{record['speed_action']}, {record['path_action']}"
    return record[f"{label}_action"]


def majority_action(records: dict[str, dict[str, Any]], label: str = "speed") -> str:
    """The most frequent ``label`` action of ``records`` (the train split: the baseline always answers it)."""
    return Counter(action_of(record, label) for record in records.values()).most_common(1)[0][0]


def ceilings(data: Path, seeds: Sequence[int], label: str = "speed") -> dict[str, Any]:
    """Every input's score on one data set: the majority answer and (speed) the fact table once, the MLPs once per
    seed."""
    splits = {name: split_records(data, name) for name in ("train", "val", "test")}
    vocab = categories(list(splits["train"].values()))
    actions = ACTIONS[label]
    majority = majority_action(splits["train"], label)
    test_truths = torch.tensor([action_index(record, label) for record in splits["test"].values()])
    result: dict[str, Any] = {
        "data": str(data),
        "label": label,
        "frames": {name: len(records) for name, records in splits.items()},
        "majority": majority,
        "always the majority": scored(torch.full_like(test_truths, actions.index(majority)), test_truths, label),
        **({"facts": fact_table_on(data, "test")} if label == "speed" else {}),
    }
    for name in (*PROMPT_INPUTS, *INPUTS):
        train, val, test = (input_features(splits[split], vocab, name, label) for split in ("train", "val", "test"))
        result[name] = [fit_and_score(train, val, test, seed, label=label) for seed in seeds]
    return result


def spread(values: Sequence[float]) -> str:
    """The mean with the min-max over seeds."""
    return f"{statistics.fmean(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def seed_cells(runs: Sequence[dict[str, Any]], label: str) -> dict[str, str]:
    """One input's table cells over its seeds' runs: test accuracy and the followed classes' recall, each as
    :func:`spread`."""
    return {
        f"test {label} accuracy": spread([run["test_accuracy"] for run in runs]),
        **{f"{action} recall": spread([run["recall"][action] for run in runs]) for action in FOLLOWED[label]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, nargs="+", help="data artifacts (`data sim`), each scored on its own")
    parser.add_argument("--label", choices=sorted(ACTIONS), default="speed", help="the action the classifier predicts")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    results = [ceilings(data, args.seeds, args.label) for data in args.data]
    accuracy, followed = f"test {args.label} accuracy", FOLLOWED[args.label]
    rows = []
    for result in results:
        majority = result["always the majority"]
        rows.append(
            {
                "data": result["data"],
                "input": f"always {result['majority']}",
                accuracy: f"{majority['test_accuracy']:.3f}",
                **{f"{action} recall": f"{majority['recall'][action]:.2f}" for action in followed},
            }
        )
        if "facts" in result:
            rows.append(
                {
                    "data": result["data"],
                    "input": "facts (lookup table)",
                    accuracy: f"{result['facts']['speed_accuracy']:.3f}",
                }
            )
        for name in (*PROMPT_INPUTS, *INPUTS):
            runs = result[name]
            rows.append(
                {"data": result["data"], "input": f"{name} (MLP, {len(runs)} seeds)", **seed_cells(runs, args.label)}
            )
    report(
        ["data", "input", accuracy, *(f"{action} recall" for action in followed)],
        rows,
        args.out,
        **run_facts("bench.label_ceiling", started),
        label=args.label,
        seeds=args.seeds,
        results=results,
    )


if __name__ == "__main__":
    run_main(main)
