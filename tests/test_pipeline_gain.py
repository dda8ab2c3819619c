"""bench/pipeline_gain.py: SFT -> RL against SFT alone when each ran several times, runs and frames resampled."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench import pipeline_gain as module
from bench.pipeline_gain import arm_summary, classes_below, pipeline_gain, spread_p_value


def outcomes(rights: str) -> dict[str, bool]:
    """Frame ``f<i>`` (zero-padded, so sorted ids keep the order) right where ``rights[i]`` is 1."""
    return {f"f{index:03d}": flag == "1" for index, flag in enumerate(rights)}


def test_a_group_s_gain_is_its_rl_runs_mean_minus_its_sft_runs_mean() -> None:
    sft = [outcomes("0000011111"), outcomes("0000000111")]  # 0.5 and 0.3
    rl = [outcomes("0001111111"), outcomes("0011111111"), outcomes("0111111111")]  # 0.7, 0.8, 0.9
    other = ([outcomes("1111100000")], [outcomes("1111111111")])  # +0.5
    results = pipeline_gain({"a": (sft, rl), "b": other})
    assert results["a"]["gain"] == pytest.approx(0.8 - 0.4)
    assert (results["a"]["sft_runs"], results["a"]["rl_runs"]) == (2, 3)
    assert results["pooled"]["gain"] == pytest.approx((0.4 + 0.5) / 2)
    for result in results.values():
        assert result["low"] <= result["gain"] <= result["high"]


def test_repeats_that_agree_add_nothing_to_the_interval() -> None:
    """Copies of one run are one run: only the frames vary, so the interval is the single pair's."""
    sft, rl = outcomes("0101010101" * 4), outcomes("1101110101" * 4)
    single = pipeline_gain({"g": ([sft], [rl])})["g"]
    copies = pipeline_gain({"g": ([sft, sft, sft], [rl, rl])})["g"]
    assert (copies["gain"], copies["low"], copies["high"]) == (single["gain"], single["low"], single["high"])


def test_repeats_that_disagree_widen_the_interval() -> None:
    """SFT runs at 0.3 and 0.7 average to the 0.5 of one run, but a repeat could land at either: wider."""
    rl = [outcomes("1" * 40)]
    steady = pipeline_gain({"g": ([outcomes("0011111000" * 4)], rl)})["g"]
    spread = pipeline_gain({"g": ([outcomes("0000111000" * 4), outcomes("0011111110" * 4)], rl)})["g"]
    assert spread["gain"] == pytest.approx(steady["gain"])
    assert spread["high"] - spread["low"] > 1.5 * (steady["high"] - steady["low"])


def test_runs_on_other_frames_or_an_empty_arm_are_refused() -> None:
    with pytest.raises(ValueError, match="different frames"):
        pipeline_gain({"g": ([outcomes("01")], [outcomes("011")])})
    with pytest.raises(ValueError, match="at least one SFT and one RL run"):
        pipeline_gain({"g": ([outcomes("01")], [])})


def write_eval(folder: Path, rights: str, accelerate_f1: float = 0.5) -> str:
    """An `eval` folder whose predictions.jsonl is right where ``rights`` says, and whose metrics.json gives
    ACCELERATE the F1 ``accelerate_f1`` and STRAIGHT 0.9."""
    folder.mkdir()
    rows = [{"id": frame, "plan_correct": right} for frame, right in outcomes(rights).items()]
    (folder / "predictions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    metrics = {
        "speed": {"per_class": {"ACCELERATE": {"f1": accelerate_f1}}},
        "path": {"per_class": {"STRAIGHT": {"f1": 0.9}}},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return str(folder)


def test_the_command_reads_evals_by_group_and_writes_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sft = [
        write_eval(tmp_path / f"sft{index}", rights, 0.4 + 0.2 * index) for index, rights in enumerate(("0011", "0001"))
    ]
    rl = write_eval(tmp_path / "rl", "0111", accelerate_f1=0.42)
    out = tmp_path / "gain.json"
    argv = ["pipeline_gain", "--sft", "s0", sft[0], "--sft", "s0", sft[1], "--rl", "s0", rl, "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    module.main()
    written = json.loads(out.read_text())
    assert written["groups"]["s0"]["gain"] == pytest.approx(0.75 - 0.375)
    assert written["runs"][0]["sft accuracy"].startswith("0.375 (0.250–0.500")
    assert written["class_f1"]["s0"]["sft"] == {"ACCELERATE": 0.5, "STRAIGHT": 0.9}
    assert written["runs"][0]["classes below SFT (mean F1)"] == "ACCELERATE 0.500 → 0.420"
    assert "pooled over 1 groups" in capsys.readouterr().out


def test_only_a_fall_beyond_the_margin_counts_as_below() -> None:
    sft = {"ACCELERATE": 0.415, "KEEP": 0.836, "DECELERATE": 0.644}
    rl = {"ACCELERATE": 0.280, "KEEP": 0.80, "DECELERATE": 0.770}
    assert classes_below(sft, rl) == "ACCELERATE 0.415 → 0.280"
    assert classes_below(sft, sft) == "none"


def test_an_arm_of_one_run_says_its_interval_resamples_frames_only() -> None:
    assert arm_summary([outcomes("0011")]) == "0.500 (one run: frames resampled only)"
    assert arm_summary([outcomes("0011"), outcomes("0111")]).startswith("0.625 (0.500–0.750, sd 0.177)")


def test_repeats_that_land_closer_together_than_sft_s_get_a_small_p_value() -> None:
    sft = [0.70, 0.80, 0.72, 0.78, 0.69, 0.81]  # 0.03 to 0.06 from their mean
    tight = spread_p_value(sft, [0.800, 0.801, 0.799])
    assert tight == round(1 / 84, 4)  # no other 3 of the 9 centred values lie as close: one split in C(9, 3)
    alike = spread_p_value(sft, [0.74, 0.86, 0.80])
    assert alike is not None and alike >= 0.3
    assert spread_p_value(sft, [0.8]) is None and spread_p_value(sft, [0.8, 0.8]) is None
