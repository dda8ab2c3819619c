"""bench/gain_by_scenario.py: many runs' RL gains, pooled scenario by scenario."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import gain_by_scenario, pooled_gain


def _eval(path: Path, right: str) -> Path:
    """An eval folder whose frames a, b, c, d were planned right where ``right`` has a 1."""
    path.mkdir(parents=True)
    rows = [{"id": frame, "plan_correct": mark == "1"} for frame, mark in zip("abcd", right, strict=True)]
    (path / "predictions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_each_scenario_pools_the_runs_gains_on_its_own_frames(tmp_path: Path, monkeypatch) -> None:
    """Frames a, b are highway, c, d blocked. Both runs lose a highway frame and gain a blocked one: highway -0.5,
    blocked +0.5 (both runs each way), all frames 0.0 (no run gains or loses)."""
    scenario = {"a": "highway", "b": "highway", "c": "blocked", "d": "blocked"}
    records = {"train": {}, "val": {}, "test": {f: {"source": {"scenario": s}} for f, s in scenario.items()}}
    monkeypatch.setattr(gain_by_scenario, "split_records", lambda data, split: records[split])
    evals = {
        name: _eval(tmp_path / name, right) for name, right in {"sft": "1100", "rl1": "0110", "rl2": "1001"}.items()
    }
    out = tmp_path / "by_scenario.json"
    argv = ["gain_by_scenario", str(tmp_path / "data"), "--out", str(out)]
    argv += [
        "--pair",
        "one",
        str(evals["sft"]),
        str(evals["rl1"]),
        "--pair",
        "two",
        str(evals["sft"]),
        str(evals["rl2"]),
    ]
    monkeypatch.setattr("sys.argv", argv)
    gain_by_scenario.main()
    rows = {row["scenario"]: row for row in json.loads(out.read_text())["runs"]}
    assert list(rows) == ["all frames", "blocked", "highway"]
    assert rows["highway"]["pooled"]["gain"] == -0.5 and rows["highway"]["runs gaining / losing"] == "0 / 2"
    assert rows["blocked"]["pooled"]["gain"] == 0.5 and rows["blocked"]["frames"] == 2
    assert rows["all frames"]["pooled"]["gain"] == 0.0 and rows["all frames"]["runs gaining / losing"] == "0 / 0"
    assert rows["highway"]["sft accuracy"] == 1.0 and rows["highway"]["rl accuracy"] == 0.5


def test_frames_the_data_does_not_hold_are_refused_in_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(gain_by_scenario, "split_records", lambda data, split: {})
    evals = [str(_eval(tmp_path / name, "1111")) for name in ("sft", "rl")]
    monkeypatch.setattr("sys.argv", ["gain_by_scenario", str(tmp_path), "--pair", "x", *evals])
    with pytest.raises(SystemExit) as exit_info:
        gain_by_scenario.main()
    assert exit_info.value.code == 2


def test_by_episode_resamples_the_data_sets_episodes(tmp_path: Path, monkeypatch) -> None:
    """With --by-episode the intervals resample DATA's episodes. Each of the two highway episodes (a, b and c, d)
    loses one frame and gains the other, so every resample of episodes gains exactly 0, where resampling frames
    spreads the interval both ways."""
    source = {"a": 1, "b": 1, "c": 2, "d": 2}
    records = {f: {"source": {"scenario": "highway", "episode": e}} for f, e in source.items()}
    for module in (gain_by_scenario, pooled_gain):
        monkeypatch.setattr(module, "split_records", lambda data, split: records if split == "test" else {})
    sft, rl = _eval(tmp_path / "sft", "1010"), _eval(tmp_path / "rl", "0101")
    reports = {}
    for flag in ([], ["--by-episode"]):
        out = tmp_path / f"by_scenario{len(flag)}.json"
        argv = ["gain_by_scenario", str(tmp_path / "data"), "--pair", "one", str(sft), str(rl), "--out", str(out)]
        monkeypatch.setattr("sys.argv", argv + flag)
        gain_by_scenario.main()
        reports[len(flag)] = json.loads(out.read_text())
    assert reports[0]["resampled"] == "frames" and reports[1]["resampled"] == "episodes"
    assert reports[1]["command"].endswith("--by-episode")
    frames, episodes = ({row["scenario"]: row["pooled"] for row in reports[k]["runs"]} for k in (0, 1))
    assert episodes["highway"]["low"] == episodes["highway"]["high"] == 0.0
    assert frames["highway"]["low"] < 0 < frames["highway"]["high"]
