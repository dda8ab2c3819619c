"""Where does a model give one speed action, and where is it right? Open-loop evals, scenario by scenario.

Usage: python -m bench.answers_by_scenario EVAL [EVAL ...] [--action DECELERATE] [--out FILE]

For each eval and each simulator scenario of the split it scored: how many frames are labelled ACTION and how many
of those the model answered right (recall), and how many times the model answered ACTION and how many of those
were right (precision). Comparing an SFT eval with the RL eval that started from it shows where RL gave an answer up.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import device_facts
from bench.entry import run_main
from bench.reasoning_facts import scored_split
from bench.report import report


def action_by_scenario(eval_dir: Path, action: str) -> dict[str, dict[str, int]]:
    """Per scenario: frames labelled ``action``, answers of ``action``, and the frames both (answered right)."""
    _, _, records, predictions = scored_split(eval_dir)
    counts: dict[str, Counter[str]] = {}
    for row in predictions:
        record = records[row["id"]]
        scenario = (record.get("source") or {}).get("scenario") or "imported"
        count = counts.setdefault(scenario, Counter())
        labelled, answered = record["speed_action"] == action, action in ((row.get("parsed") or {}).get("speed") or [])
        count["labelled"] += labelled
        count["answered"] += answered
        count["right"] += labelled and answered
    return {scenario: dict(count) for scenario, count in sorted(counts.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evals", nargs="+", type=Path, help="open-loop eval artifacts of simulator data")
    parser.add_argument("--action", default="DECELERATE", help="the speed action to follow")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results = {str(path): action_by_scenario(path, args.action) for path in args.evals}
    scenarios = sorted({scenario for by_scenario in results.values() for scenario in by_scenario})
    rows: list[dict[str, Any]] = []
    for scenario in scenarios:
        row: dict[str, Any] = {"scenario": scenario}
        for name, by_scenario in results.items():
            count = by_scenario.get(scenario, {})
            row[name] = (
                f"{count.get('right', 0)} of {count.get('labelled', 0)} right; answered {count.get('answered', 0)}"
            )
        rows.append(row)
    report(
        ["scenario", *results],
        rows,
        args.out,
        **device_facts(),
        command="python -m bench.answers_by_scenario " + " ".join(sys.argv[1:]),
        action=args.action,
        results=results,
    )


if __name__ == "__main__":
    run_main(main)
