"""bench/rl_end_points.py: where RL ends, given its SFT start, over many ablation results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import rl_end_points


def _results(sft: float, rl: float, answer_sft: float | None = None, answer_rl: float | None = None) -> dict:
    results = {"sft_reasoning": {"0": {"planning_accuracy": sft}}, "sft_rl": {"0": {"planning_accuracy": rl}}}
    if answer_sft is not None:
        results["sft_no_reasoning"] = {"0": {"planning_accuracy": answer_sft}}
        results["sft_no_reasoning_rl"] = {"0": {"planning_accuracy": answer_rl}}
    return results


def test_a_row_pairs_with_its_sft_start_seed_by_seed_and_an_unstarted_row_is_left_out() -> None:
    results = _results(0.7, 0.8, 0.6, 0.65)
    results["sft_rl"]["1"] = {"planning_accuracy": 0.9}  # its SFT row has no seed 1
    pairs = rl_end_points.end_points(results)
    assert pairs == [
        {"kind": "with reasoning", "seed": "0", "sft": 0.7, "rl": 0.8},
        {"kind": "answer-only", "seed": "0", "sft": 0.6, "rl": 0.65},
    ]


def test_the_slope_says_whether_rl_adds_a_constant_or_ends_at_one_point() -> None:
    constant = [{"sft": s, "rl": s + 0.05} for s in (0.6, 0.7, 0.8)]
    one_point = [{"sft": s, "rl": 0.79} for s in (0.6, 0.7, 0.8)]
    assert rl_end_points.summary(constant)["slope"] == pytest.approx(1.0)
    assert rl_end_points.summary(constant)["mean_gain"] == pytest.approx(0.05)
    ends = rl_end_points.summary(one_point)
    assert ends["slope"] == pytest.approx(0.0, abs=1e-9) and ends["rl_sd"] == 0.0 and ends["rl_mean"] == 0.79
    assert rl_end_points.summary([{"sft": 0.7, "rl": 0.8}])["slope"] is None  # one start: no slope


def test_main_reports_each_kind_labels_each_file_and_plots(tmp_path: Path, monkeypatch) -> None:
    files = []
    for index, (sft, rl) in enumerate(((0.70, 0.79), (0.80, 0.80))):
        files.append(tmp_path / f"run{index}" / "ablation.json")
        files[-1].parent.mkdir()
        files[-1].write_text(json.dumps({"results": _results(sft, rl, 0.8, 0.78)}))
    out, plot = tmp_path / "ends.json", tmp_path / "ends.png"
    argv = ["rl_end_points", *map(str, files), "--label", "a", "b", "--out", str(out), "--plot", str(plot)]
    monkeypatch.setattr("sys.argv", argv)
    rl_end_points.main()
    written = json.loads(out.read_text())
    assert [pair["run"] for pair in written["pairs"]] == ["a", "a", "b", "b"]
    rows = {row["kind"]: row for row in written["runs"]}
    assert rows["with reasoning"]["slope"] == pytest.approx(0.1) and rows["answer-only"]["mean_gain"] == -0.02
    assert plot.stat().st_size > 0
    monkeypatch.setattr("sys.argv", ["rl_end_points", str(files[0]), "--label", "a", "b"])
    with pytest.raises(SystemExit) as exit_info:
        rl_end_points.main()
    assert exit_info.value.code == 2
