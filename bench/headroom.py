"""Which of a model's wrong plans could one frame have told? Its test errors against a classifier of one frame.

Usage: python -m bench.headroom DATA --eval LABEL EVAL [--eval ...] [--input "one frame"] [--beside INPUT]
       [--reward-weighted] [--seeds 0 1 2 3 4] [--out FILE]

DATA is the data artifact whose test split the evals scored. The classifier is one of `bench.label_ceiling`'s MLPs
for the whole plan (the speed and path actions as one class): by default "one frame" (every number a record holds
about its frame), or with --input "the prompt alone" only what the student's prompt states. It is fitted on DATA's
train split with its epoch chosen on val, once per seed; a test frame counts as one the input tells where most
seeds plan it right. Each eval's wrong frames split into those the classifier plans right, which a model that read
its input as well could still get, and those it does not; the first are listed by true plan. Beside them, how often
the model answers the plan the classifier's seeds answer most. Against the prompt alone, an eval's right plans on
frames the prompt does not tell are what its model must have read from the image, and a model that answers the
prompt classifier's plan almost everywhere reads little else. --beside another input counts, for each eval, its
right plans on the frames that input's classifier tells and --input's does not (with --input "the prompt alone"
--beside "one frame": what the model reads from a frame beyond its prompt). --reward-weighted makes the classifier
answer the plan of highest expected reward rather than its likeliest plan, each head paying its accuracy times the
true action's weight (the default rewards.action_weights): the policy GRPO's accuracy reward favours where the
input leaves an action open. An RL model whose plans move towards it, and away from the likeliest plan, follows
the weights rather than the labels.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from alphadrive_cli.actions import DEFAULT_VOCABULARY
from alphadrive_cli.config.schemas import DEFAULT_ACTION_WEIGHTS
from alphadrive_cli.evaluation.paired import head_answers, plan_outcomes, same_frames
from bench.common import run_facts
from bench.entry import run_main
from bench.label_ceiling import (
    INPUTS,
    PLANS,
    PROMPT_INPUTS,
    action_of,
    categories,
    fit,
    input_features,
    lead_gap,
)
from bench.reasoning_facts import split_records
from bench.report import report

TOLD_COLUMN = "of them its input tells (share of all frames)"
RIGHT_COLUMN = "right where its input does not tell"
SAME_COLUMN = "same plan as the classifier (its seeds' most frequent)"
WEIGHTED = ", reward-weighted"


def reward_plans(probabilities: torch.Tensor, weights: Mapping[str, float]) -> list[str]:
    """For each row of plan probabilities (over PLANS), the plan whose expected planning reward is highest when
    each head pays its accuracy times the true action's weight (Algorithm 1's quality without diversity): per head,
    the action that maximises its weight times its probability, the other head summed out. Where the input leaves
    an action open, this answers a heavier class below an even chance (DECELERATE at 1.5 against KEEP at 1.0 from
    a probability of 0.4), where the likeliest plan would not."""
    speeds, paths = DEFAULT_VOCABULARY.speed, DEFAULT_VOCABULARY.path
    joint = probabilities.reshape(-1, len(speeds), len(paths))
    speed_weights, path_weights = (torch.tensor([weights[action] for action in actions]) for actions in (speeds, paths))
    speed = (joint.sum(2) * speed_weights).argmax(-1).tolist()
    path = (joint.sum(1) * path_weights).argmax(-1).tolist()
    return [f"{speeds[s]}, {paths[p]}" for s, p in zip(speed, path, strict=True)]


def classifier_plans(
    splits: Mapping[str, dict[str, dict[str, Any]]],
    seeds: Sequence[int],
    name: str = "one frame",
    weights: Mapping[str, float] | None = None,
) -> dict[str, list[str]]:
    """Each test frame's plan (by id) from each seed's plan classifier of the input called ``name``: its likeliest
    plan, or with ``weights`` (action weights) the plan of highest expected reward (:func:`reward_plans`)."""
    vocab = categories(list(splits["train"].values()))
    train, val, test = (input_features(splits[split], vocab, name, label="plan") for split in ("train", "val", "test"))
    answers = []
    for seed in seeds:
        probabilities = fit(train, val, seed, label="plan")[0](test[0])
        answers.append(
            reward_plans(probabilities, weights)
            if weights
            else [PLANS[index] for index in probabilities.argmax(-1).tolist()]
        )
    return {frame: [seed_answers[row] for seed_answers in answers] for row, frame in enumerate(splits["test"])}


def told_frames(plans: Mapping[str, Sequence[str]], truths: Mapping[str, str]) -> dict[str, bool]:
    """For each frame of ``plans`` (each seed's plan, by id), whether most seeds plan it right."""
    return {
        frame: 2 * sum(plan == truths[frame] for plan in answers) > len(answers) for frame, answers in plans.items()
    }


def modal_plans(plans: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Each frame's most frequent plan over the seeds (the first seed's among equally frequent ones)."""
    return {frame: Counter(answers).most_common(1)[0][0] for frame, answers in plans.items()}


def eval_plans(evaluation: Path) -> dict[str, str | None]:
    """Each frame's greedy plan in an `eval` as ``"SPEED, PATH"`` (None where either head has no single answer)."""
    speed, path = (head_answers(evaluation, head) for head in ("speed", "path"))
    return {
        frame: None if None in (speed[frame][1], path[frame][1]) else f"{speed[frame][1]}, {path[frame][1]}"
        for frame in speed
    }


def same_plan_share(classifier: Mapping[str, str], model: Mapping[str, str | None]) -> float:
    """The share of frames on which the model answers the classifier's plan."""
    frames = same_frames(dict(classifier), dict(model))
    return round(sum(classifier[frame] == model[frame] for frame in frames) / len(frames), 4)


def lead_situation(record: dict[str, Any]) -> str:
    """What is ahead in a record's frame: its lead vehicle's kind and gap (under 20, 20-40, 40 m or more), or no lead
    and whether a junction is within 40 m."""
    scene = record.get("scene") or {}
    lead = scene.get("lead_vehicle")
    if lead:
        gap = lead_gap(record)
        return f"{lead.get('kind', 'vehicle')} {'<20' if gap < 20 else '20-40' if gap < 40 else '40+'} m ahead"
    junction = scene.get("distance_to_junction_m")
    return "no lead, junction within 40 m" if junction is not None and junction < 40 else "no lead, no junction near"


def headroom(
    told: Mapping[str, bool],
    outcomes: Mapping[str, bool],
    truths: Mapping[str, str],
    situations: Mapping[str, str],
) -> dict[str, Any]:
    """An eval's wrong frames (``outcomes``: right or not, by id) split by whether the classifier tells their plan
    (``told``), with the true plans (``truths``) and what is ahead (``situations``) of those it tells, most frequent
    first."""
    frames = same_frames(told, outcomes)
    wrong = [frame for frame in frames if not outcomes[frame]]
    reachable = [frame for frame in wrong if told[frame]]
    return {
        "frames": len(frames),
        "accuracy": round(sum(outcomes.values()) / len(frames), 4),
        "wrong": len(wrong),
        "told": len(reachable),
        "not_told": len(wrong) - len(reachable),
        "right_where_not_told": sum(outcomes[frame] and not told[frame] for frame in frames),
        "told_by_true_plan": dict(Counter(truths[frame] for frame in reachable).most_common()),
        "told_by_what_is_ahead": dict(Counter(situations[frame] for frame in reachable).most_common()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the data artifact (`data sim`) whose test split the evals scored")
    parser.add_argument(
        "--eval", nargs=2, action="append", required=True, metavar=("LABEL", "EVAL"), help="an eval folder"
    )
    parser.add_argument(
        "--input",
        choices=[*PROMPT_INPUTS, *INPUTS],
        default="one frame",
        help="what the classifier reads (bench.label_ceiling's inputs)",
    )
    parser.add_argument(
        "--beside",
        choices=[*PROMPT_INPUTS, *INPUTS],
        default=None,
        help="another input: also count each eval's right plans on the frames its classifier tells and --input's not",
    )
    parser.add_argument(
        "--reward-weighted",
        action="store_true",
        help="the classifier answers the plan of highest expected reward under the default action weights "
        "(rewards.action_weights: accuracy times the true action's weight), not its likeliest plan",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    splits = {name: split_records(args.data, name) for name in ("train", "val", "test")}
    weights = DEFAULT_ACTION_WEIGHTS if args.reward_weighted else None
    plans = classifier_plans(splits, args.seeds, args.input, weights)
    truths = {frame: action_of(record, "plan") for frame, record in splits["test"].items()}
    told = told_frames(plans, truths)
    modal = modal_plans(plans)
    situations = {frame: lead_situation(record) for frame, record in splits["test"].items()}
    beside_column, only_beside = None, []
    if args.beside:
        told_beside = told_frames(classifier_plans(splits, args.seeds, args.beside), truths)
        only_beside = [frame for frame in truths if told_beside[frame] and not told[frame]]
        beside_column = f"right of the {len(only_beside)} frames {args.beside} tells and {args.input} does not"
    rows: list[dict[str, Any]] = [
        {
            "eval": f"{args.input} classifier{WEIGHTED if weights else ''} ({len(args.seeds)} seeds, majority)",
            "accuracy": f"{sum(told.values()) / len(told):.3f}",
        }
    ]
    results = {}
    for label, evaluation in args.eval:
        outcomes = plan_outcomes(Path(evaluation))
        result = results[label] = headroom(told, outcomes, truths, situations)
        result["same_plan_as_classifier"] = same_plan_share(modal, eval_plans(Path(evaluation)))
        if beside_column:
            result["right_where_only_beside_tells"] = sum(outcomes[frame] for frame in only_beside)
        by_plan, ahead = (
            ", ".join(f"{name} {count}" for name, count in list(result[key].items())[:4])
            for key in ("told_by_true_plan", "told_by_what_is_ahead")
        )
        told_share = result["told"] / result["frames"]
        rows.append(
            {
                "eval": label,
                "accuracy": f"{result['accuracy']:.3f}",
                "wrong": result["wrong"],
                TOLD_COLUMN: f"{result['told']} ({told_share:.1%})",
                RIGHT_COLUMN: result["right_where_not_told"],
                SAME_COLUMN: f"{result['same_plan_as_classifier']:.3f}",
                **({beside_column: result["right_where_only_beside_tells"]} if beside_column else {}),
                "told, by true plan": by_plan,
                "told, by what is ahead": ahead,
            }
        )
    report(
        [
            "eval",
            "accuracy",
            "wrong",
            TOLD_COLUMN,
            RIGHT_COLUMN,
            SAME_COLUMN,
            *([beside_column] if beside_column else []),
            "told, by true plan",
            "told, by what is ahead",
        ],
        rows,
        args.out,
        **run_facts("bench.headroom", started),
        only_beside_frames=len(only_beside),
        reward_weighted=bool(weights),
        results=results,
    )


if __name__ == "__main__":
    run_main(main)
