"""What would a reasoning that looks its speed answer up from the facts it states need to state? Tables of states.

Usage: python -m bench.fact_tables DATA [--facts all|one_frame|one_frame_speed_band|one_frame_limit_band]
       [--fit-on TRACES | --fit-share S] [--out FILE]

A model trained on grounded traces answers, on most frames, the speed action that a lookup table of the coarse
facts its reasoning states gives (`bench.reasoning_facts`' "speed answer the table's" rows). This fits such tables
on the train split of a data set (`data sim`) and scores them on its validation and test splits: first the table
of the facts the traces state, then that table with one finer state beside them each (the ego speed in the bands
that traces of `grounded_facts: one_frame_speed_band` state, the gap to the lead in bands, the time headway in
bands, the speed against the limit in the finer bands that traces of `one_frame_limit_band` state, the navigation
instruction). A state that lifts the table towards what answer-only SFT reads from the same prompt is one a trace
could state; the bands are fixed here (the speed's and the limit share's by the grounded teacher), not fit to the
data, and a gain on one data set is a question for others. --fit-on fits the tables on the train frames a traces
artifact covers (with `distill --set share=0.5`, the frames reasoning SFT learns from) instead of the whole split;
--fit-share S on the train frames `distill --set share=S` would trace (its default seed's draw), with no traces
written: what SFT on that share could learn, against the whole split's labels that RL is paid by.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alphadrive_cli.config.schemas import DistillConfig
from alphadrive_cli.evaluation.reasoning_facts import StateTable, fact_states, table_facts
from alphadrive_cli.stages.distill import drawn_ids
from alphadrive_cli.teacher.grounded import SPEED_BAND_MPS, FactSet, limit_share_band, speed_band, speed_limit
from bench.entry import run_main
from bench.reasoning_facts import add_facts_option, split_records
from bench.report import report

GAP_BANDS_M = (10.0, 20.0, 30.0, 45.0, 60.0, 90.0)
HEADWAY_BANDS_S = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0)
MIN_SPEED_FOR_HEADWAY_MPS = 0.5  # a headway at standstill is infinite: count it in the last band


def band(value: float, edges: tuple[float, ...]) -> str:
    """The band of ``value`` among ascending ``edges``: "<edge" for the first edge above it, ">last" past all."""
    return next((f"<{edge:g}" for edge in edges if value < edge), f">{edges[-1]:g}")


def _lead_gap(record: dict[str, Any]) -> float | None:
    lead = (record.get("scene") or {}).get("lead_vehicle")
    return lead.get("gap_m") if isinstance(lead, dict) else None


def ego_speed_band(record: dict[str, Any]) -> str:
    return str(speed_band(record["ego_speed_mps"])[0])


def gap_band(record: dict[str, Any]) -> str:
    gap = _lead_gap(record)
    return "no lead" if gap is None else band(gap, GAP_BANDS_M)


def headway_band(record: dict[str, Any]) -> str:
    gap = _lead_gap(record)
    speed = max(record["ego_speed_mps"], MIN_SPEED_FOR_HEADWAY_MPS)
    return "no lead" if gap is None else band(gap / speed, HEADWAY_BANDS_S)


def ego_limit_band(record: dict[str, Any]) -> str:
    limit = speed_limit(record.get("scene") or {})
    return "no limit" if limit is None else str(limit_share_band(record["ego_speed_mps"], limit)[0])


def navigation(record: dict[str, Any]) -> str:
    return str(record.get("navigation", ""))


FINER_STATES: dict[str, Callable[[dict[str, Any]], str]] = {
    f"the ego speed in {SPEED_BAND_MPS:g} m/s bands": ego_speed_band,
    "the gap to the lead in bands": gap_band,
    "the time headway in bands": headway_band,
    "the speed against the limit in finer bands": ego_limit_band,
    "the navigation instruction": navigation,
}


def table_scores(
    splits: dict[str, list[dict[str, Any]]],
    facts: FactSet,
    finer: Callable[[dict[str, Any]], str] | None = None,
) -> dict[str, Any]:
    """A table of the facts traces of ``facts`` state (and ``finer``'s state beside them), fit on ``splits``'
    "train" records and scored on each other split that has records (an empty one is left out of the row)."""

    def states(record: dict[str, Any]) -> tuple[str, ...]:
        stated = fact_states(record.get("scene") or {}, record["ego_speed_mps"], facts)
        return (*stated, finer(record)) if finer else stated

    def frames(split: str) -> list[tuple[tuple[str, ...], str]]:
        return [(states(record), record["speed_action"]) for record in splits[split]]

    table = StateTable.fit(frames("train"))
    scored = {split: table.accuracy(frames(split)) for split in splits if split != "train" and splits[split]}
    return {
        "combinations": len(table.cells),
        **{f"{split} speed accuracy": result["speed_accuracy"] for split, result in scored.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a data artifact (`data sim`)")
    add_facts_option(parser, "one_frame")
    fit = parser.add_mutually_exclusive_group()
    fit.add_argument("--fit-on", type=Path, default=None, help="a traces artifact: fit on its train frames only")
    fit.add_argument(
        "--fit-share", type=float, default=None, help="fit on the train frames `distill --set share=S` would trace"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    splits = {split: list(split_records(args.data, split).values()) for split in ("train", "val", "test")}
    if args.fit_on is not None:
        splits["train"] = list(split_records(args.fit_on, "train").values())
    if args.fit_share is not None:
        if not 0 < args.fit_share <= 1:
            parser.error(f"--fit-share {args.fit_share:g}: give a share of the train frames in (0, 1]")
        drawn = drawn_ids([record["id"] for record in splits["train"]], args.fit_share, DistillConfig().seed)
        splits["train"] = [record for record in splits["train"] if record["id"] in drawn]
    rows = [
        {"table": f"the facts the traces state ({', '.join(table_facts(args.facts))})"}
        | table_scores(splits, args.facts)
    ]
    rows += [{"table": f"+ {name}"} | table_scores(splits, args.facts, finer) for name, finer in FINER_STATES.items()]
    report(
        ["table", "combinations", "val speed accuracy", "test speed accuracy"],
        rows,
        args.out,
        command=f"python -m bench.fact_tables {args.data} --facts {args.facts}"
        + (f" --fit-on {args.fit_on}" if args.fit_on else "")
        + (f" --fit-share {args.fit_share:g}" if args.fit_share is not None else ""),
        frames={split: len(records) for split, records in splits.items()},
    )


if __name__ == "__main__":
    run_main(main)
