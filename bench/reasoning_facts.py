"""Does each model's reasoning state its frames' facts? Open-loop evals of models trained on grounded traces.

Usage: python -m bench.reasoning_facts EVAL [EVAL ...] [--templates grounded-v1] [--facts all|one_frame|...]
       [--against FACTS] [--out FILE]

Each eval's predictions are read back through the grounded teacher's phrasings (`evaluation/reasoning_facts.py`)
and compared, fact by fact, with what a faithful trace of the same frame states (its data set, the eval's own
input, holds the scene facts). Prints, per fact, the share of frames each model states right, then each model's
speed-action accuracy: overall, on the frames whose lead vehicle it describes right against the others, and what
a lookup table from the true states of the facts to the train split's most frequent speed action scores on the
same frames (how far perfect perception of what the traces state would go), and how often the model's speed answer
is that table's, for the true facts and for the facts its own reasoning states (near 1 for the latter: the answer
is a lookup of the reasoning's coarse states, whatever else the prompt says). --against FACTS splits the frames by
whether that table and the table of FACTS' facts answer alike (for one_frame_speed_band against one_frame: the
frames where the band changes the table's answer, and the rest), and gives each part's share of the model's answers
that are --facts' table's and of its right ones: where a model's gain over another comes from.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from alphadrive_cli.artifacts.store import open_artifact
from alphadrive_cli.evaluation.metrics import single_action
from alphadrive_cli.evaluation.reasoning_facts import (
    SPEED_SPLIT_FACTS,
    StateTable,
    answers_as_the_table,
    compare_facts,
    fact_states,
    fact_table,
    fact_table_accuracy,
)
from alphadrive_cli.teacher.grounded import DEFAULT_TEMPLATES, HIDDEN_LEAVES, FactSet, GroundedTemplates
from bench.entry import run_main
from bench.report import report


def split_records(data: Path, split: str) -> dict[str, dict[str, Any]]:
    """A data artifact's split as raw records by id: only their scene facts are read, so neither the images nor
    their hashes are needed."""
    lines = (open_artifact(data, ("data", "distill"), check=False).path / f"{split}.jsonl").read_text().splitlines()
    return {record["id"]: record for record in map(json.loads, filter(None, lines))}


def labelled(records: Iterable[dict[str, Any]]) -> list[tuple[dict[str, Any], float, str]]:
    """Records as (scene, ego speed, speed action)."""
    return [(r.get("scene") or {}, r["ego_speed_mps"], r["speed_action"]) for r in records]


@functools.cache
def fitted_table(data: Path, facts: FactSet = "all") -> StateTable:
    """The `fact_table` of a data set's train split (once per data set and facts, however many evals share it)."""
    return fact_table(labelled(split_records(data, "train").values()), facts)


def fact_table_on(data: Path, split: str, facts: FactSet = "all") -> dict[str, Any]:
    """`fact_table_accuracy` of a data set's `fitted_table` on ``split``: how far perfect knowledge of the facts
    traces of ``facts`` state goes there."""
    return fact_table_accuracy(fitted_table(data, facts), labelled(split_records(data, split).values()), facts)


def scored_split(eval_dir: Path) -> tuple[Path, str, dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """An open-loop eval's data set, the split it scored, that split's records by id and the eval's predictions."""
    artifact = open_artifact(eval_dir, "eval")
    data_input = next(item for item in artifact.manifest["inputs"] if item["role"] == "data")
    data, split = (eval_dir / data_input["path"]).resolve(), artifact.manifest["split"]
    predictions = [json.loads(line) for line in (eval_dir / "predictions.jsonl").read_text().splitlines() if line]
    return data, split, split_records(data, split), predictions


def eval_facts(
    eval_dir: Path, templates: GroundedTemplates, facts: FactSet = "all", against: FactSet | None = None
) -> dict[str, Any]:
    """`compare_facts` over one open-loop eval's predictions and the records of the split it scored, the
    `fact_table_accuracy` of its data set's `fitted_table` on that split, and how often the
    model's speed answer is the table's (`answers_as_the_table`); ``facts``: what the traces the model learnt from
    state; with ``against``, `where_tables_differ` for the tables of ``facts`` and ``against``."""
    data, split, records, predictions = scored_split(eval_dir)
    table = fitted_table(data, facts)
    scenes = [(records[row["id"]].get("scene") or {}, records[row["id"]]["ego_speed_mps"]) for row in predictions]
    answers = [single_action(frozenset(row["parsed"]["speed"])) for row in predictions]  # hedged: None, as eval
    split_by_tables: dict[str, Any] = {}
    if against is not None:
        truths = [records[row["id"]]["speed_action"] for row in predictions]
        frames = [(*scene, truth, answer) for scene, truth, answer in zip(scenes, truths, answers, strict=True)]
        split_by_tables = {
            "against": against,
            "where_tables_differ": where_tables_differ(
                frames, ((table, facts), (fitted_table(data, against), against))
            ),
        }
    return {
        "eval": str(eval_dir),
        "frames": len(predictions),
        "speed_accuracy": round(sum(row["speed_correct"] for row in predictions) / max(1, len(predictions)), 4),
        **compare_facts(
            [(*scene, row["text"], row["speed_correct"]) for scene, row in zip(scenes, predictions, strict=True)],
            templates,
            facts,
        ),
        "fact_table": fact_table_accuracy(table, labelled(records[row["id"]] for row in predictions), facts),
        "speed_answer_as_the_table": answers_as_the_table(
            [(*scene, row["text"], answer) for scene, row, answer in zip(scenes, predictions, answers, strict=True)],
            table,
            templates,
            facts,
        ),
        **split_by_tables,
    }


def where_tables_differ(
    frames: Iterable[tuple[dict[str, Any], float, str, str | None]],
    tables: tuple[tuple[StateTable, FactSet], tuple[StateTable, FactSet]],
) -> dict[str, dict[str, Any]]:
    """Over (scene, ego speed, true speed action, the model's speed answer) frames: where the two (table, facts)
    answer alike for the true facts and where they differ, how many frames, how many the model answers as the first
    table, how many it gets right, how many each table gets right, and the model's departures from the first table
    (how many of them are right, and each "TABLE -> MODEL" pair's count)."""
    (first, first_facts), (second, second_facts) = tables
    keys = ("frames", "model as the first table", "model right", "first right", "second right", "departures right")
    parts: dict[str, dict[str, Any]] = {
        part: {**dict.fromkeys(keys, 0), "departures": Counter()} for part in ("tables agree", "tables differ")
    }
    for scene, speed, truth, answer in frames:
        one = first.answer(fact_states(scene, speed, first_facts))
        other = second.answer(fact_states(scene, speed, second_facts))
        counts = parts["tables agree" if one == other else "tables differ"]
        counts["frames"] += 1
        counts["model as the first table"] += answer == one
        counts["model right"] += answer == truth
        counts["first right"] += one == truth
        counts["second right"] += other == truth
        if answer != one:
            counts["departures right"] += answer == truth
            counts["departures"][f"{one} -> {answer}"] += 1
    for counts in parts.values():
        counts["departures"] = dict(counts["departures"].most_common())
    return parts


def add_facts_option(parser: argparse.ArgumentParser, default: FactSet) -> None:
    """``--facts``: what the grounded traces the models learnt (or the tables stand for) state."""
    parser.add_argument(
        "--facts", choices=list(HIDDEN_LEAVES), default=default, help="what the traces state (distill's grounded_facts)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evals", nargs="+", type=Path, help="open-loop eval artifacts")
    parser.add_argument("--templates", default=DEFAULT_TEMPLATES, help="the grounded phrasings the models learnt")
    add_facts_option(parser, "all")
    parser.add_argument(
        "--against", choices=list(HIDDEN_LEAVES), default=None, help="split the frames by where its table differs"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    templates = GroundedTemplates.load(args.templates)
    results = [eval_facts(path, templates, args.facts, args.against) for path in args.evals]
    facts = sorted({fact for result in results for fact in result["facts"]})
    rows = [
        {
            "fact": fact,
            **{
                result["eval"]: (
                    f"{entry['right_rate']:.2f} of {entry['frames']}" if (entry := result["facts"].get(fact)) else "–"
                )
                for result in results
            },
        }
        for fact in facts
    ]
    rows += [
        {"fact": "speed action right", **{r["eval"]: f"{r['speed_accuracy']:.2f}" for r in results}},
        {
            "fact": "speed action right from a table of the true facts (fit on train)",
            **{r["eval"]: f"{r['fact_table']['speed_accuracy']:.2f}" for r in results},
        },
        *(
            {
                "fact": f"speed answer the table's for the {which} facts",
                **{r["eval"]: f"{r['speed_answer_as_the_table'][f'as_for_the_{which}_facts']:.2f}" for r in results},
            }
            for which in ("true", "stated")
        ),
    ]
    rows += [
        {
            "fact": f"speed action right, {fact} fact {group}",
            **{
                result["eval"]: "{speed_accuracy:.2f} of {frames}".format(
                    **result["speed_accuracy_by_fact"][fact][group]
                )
                for result in results
            },
        }
        for fact in SPEED_SPLIT_FACTS
        for group in ("right", "wrong or missing")
    ]
    splits = ("tables agree", "tables differ") if args.against else ()
    counted = (
        ("the model answers the first table", "model as the first table"),
        ("the model right", "model right"),
        ("the first table right", "first right"),
        ("the second table right", "second right"),
        ("the model's departures from the first table right", "departures right"),
    )
    rows += [
        {
            "fact": f"{part} ({args.facts} / {args.against}): {what}",
            **{
                r["eval"]: "{} of {}".format(
                    r["where_tables_differ"][part][key], r["where_tables_differ"][part]["frames"]
                )
                for r in results
            },
        }
        for part in splits
        for what, key in counted
    ]
    columns = ["fact", *(result["eval"] for result in results)]
    against = f" --against {args.against}" if args.against else ""
    command = f"python -m bench.reasoning_facts --templates {templates.id} --facts {args.facts}{against} " + " ".join(
        map(str, args.evals)
    )
    report(columns, rows, args.out, command=command, templates=templates.id, results=results)


if __name__ == "__main__":
    run_main(main)
