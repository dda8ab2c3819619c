"""Tables of the facts a trace states, and of one finer state beside them (bench/fact_tables.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from alphadrive_cli.teacher.grounded import FactSet
from bench.fact_tables import band, ego_limit_band, ego_speed_band, gap_band, headway_band, table_scores


def _record(speed: float, action: str, gap: float | None = None) -> dict[str, Any]:
    lead = None if gap is None else {"gap_m": gap, "relative_speed_mps": 0.0}
    scene = {"lead_vehicle": lead, "left_lane": "none", "right_lane": "none", "speed_limit_mps": 30.0}
    return {"ego_speed_mps": speed, "speed_action": action, "navigation": "follow the road", "scene": scene}


def test_bands_are_named_by_the_first_edge_above_the_value() -> None:
    assert band(4.0, (10.0, 20.0)) == "<10" and band(10.0, (10.0, 20.0)) == "<20" and band(25.0, (10.0, 20.0)) == ">20"
    assert gap_band(_record(10.0, "KEEP")) == "no lead" and gap_band(_record(10.0, "KEEP", gap=15.0)) == "<20"
    assert headway_band(_record(10.0, "KEEP", gap=15.0)) == "<2"  # 1.5 s
    assert headway_band(_record(0.0, "STOP", gap=3.0)) == "<10"  # at standstill the headway is taken at 0.5 m/s


def test_a_finer_state_lifts_the_table_only_where_it_decides_the_action() -> None:
    """Every frame is 'below the limit, nothing ahead'; below 12 m/s the car speeds up, above 18 it keeps its speed.
    The facts alone answer the majority; the speed band answers every frame right; the gap band cannot help."""
    train = [_record(speed, "ACCELERATE") for speed in (4.0, 7.0, 10.0)] + [
        _record(speed, "KEEP") for speed in (19.0, 22.0, 25.0, 28.0)
    ]
    test = [_record(5.0, "ACCELERATE"), _record(8.0, "ACCELERATE"), _record(20.0, "KEEP"), _record(26.0, "KEEP")]
    splits = {"train": train, "test": test}
    assert table_scores(splits, "one_frame")["test speed accuracy"] == 0.5
    with_speed = table_scores(splits, "one_frame", ego_speed_band)
    assert with_speed["test speed accuracy"] == 1.0 and with_speed["combinations"] == 7
    assert table_scores(splits, "one_frame", gap_band)["test speed accuracy"] == 0.5
    assert "val speed accuracy" not in table_scores({**splits, "val": []}, "one_frame")  # no frames, no score


@pytest.mark.parametrize(
    ("facts", "finer"), [("one_frame_speed_band", ego_speed_band), ("one_frame_limit_band", ego_limit_band)]
)
def test_traces_that_state_a_band_tabulate_as_one_frames_facts_with_the_band(
    facts: FactSet, finer: Callable[[dict[str, Any]], str]
) -> None:
    """A fact set that adds a band states what the table of one frame's facts with that band beside them uses."""
    train = [_record(speed, action) for speed, action in ((4.0, "ACCELERATE"), (10.0, "ACCELERATE"), (22.0, "KEEP"))]
    splits = {"train": train, "test": [_record(5.0, "ACCELERATE"), _record(23.0, "KEEP"), _record(11.0, "KEEP")]}
    assert table_scores(splits, facts) == table_scores(splits, "one_frame", finer)
    assert table_scores(splits, facts)["test speed accuracy"] == 0.6667  # 11 m/s shares 10's band, either way


def test_fit_on_fits_the_tables_on_the_train_frames_of_a_traces_artifact(tmp_path: Path, monkeypatch) -> None:
    """With --fit-on the tables learn from the traced train frames alone (here the two slow ones, so every fast
    test frame gets ACCELERATE wrong); the output names the option."""
    from bench import fact_tables

    fast, slow = [_record(s, "KEEP") for s in (22.0, 25.0)], [_record(s, "ACCELERATE") for s in (4.0, 7.0)]
    splits = {
        ("data", "train"): {str(i): r for i, r in enumerate(fast + slow)},
        ("traces", "train"): {str(i): r for i, r in enumerate(slow)},
        ("data", "val"): {},
        ("data", "test"): {"t": _record(23.0, "KEEP")},
    }
    monkeypatch.setattr(fact_tables, "split_records", lambda path, split: splits[(Path(path).name, split)])
    out = tmp_path / "tables.json"
    argv = ["fact_tables", str(tmp_path / "data"), "--fit-on", str(tmp_path / "traces"), "--out", str(out)]
    monkeypatch.setattr("sys.argv", argv)
    fact_tables.main()
    written = json.loads(out.read_text())
    assert written["frames"]["train"] == 2 and "--fit-on" in written["command"]
    assert written["runs"][0]["test speed accuracy"] == 0.0


def test_fit_share_fits_on_the_train_frames_distill_would_trace(tmp_path: Path, monkeypatch) -> None:
    """--fit-share S fits the tables on the very train frames `distill --set share=S` draws (here one of four, a
    slow one or a fast one as the draw falls), and a share outside (0, 1] is one line and exit 2."""
    from alphadrive_cli.config.schemas import DistillConfig
    from alphadrive_cli.stages.distill import drawn_ids
    from bench import fact_tables

    train = [_record(s, "KEEP") for s in (22.0, 25.0)] + [_record(s, "ACCELERATE") for s in (4.0, 7.0)]
    for index, record in enumerate(train):
        record["id"] = f"f{index}"
    splits = {"train": {r["id"]: r for r in train}, "val": {}, "test": {"t": _record(23.0, "KEEP")}}
    monkeypatch.setattr(fact_tables, "split_records", lambda path, split: splits[split])
    out = tmp_path / "tables.json"
    monkeypatch.setattr("sys.argv", ["fact_tables", str(tmp_path / "data"), "--fit-share", "0.25", "--out", str(out)])
    fact_tables.main()
    written = json.loads(out.read_text())
    (chosen,) = drawn_ids([record["id"] for record in train], 0.25, DistillConfig().seed)  # distill's own draw
    assert written["frames"]["train"] == 1 and "--fit-share 0.25" in written["command"]
    assert written["runs"][0]["test speed accuracy"] == (
        1.0 if splits["train"][chosen]["speed_action"] == "KEEP" else 0.0
    )
    for bad in ("0", "1.5"):
        monkeypatch.setattr("sys.argv", ["fact_tables", str(tmp_path / "data"), "--fit-share", bad])
        with pytest.raises(SystemExit) as exit_info:
            fact_tables.main()
        assert exit_info.value.code == 2
