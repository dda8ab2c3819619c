"""bench/gain_by_sft_agreement.py: test frames bucketed by how many SFT runs plan them right, and what RL did."""

from __future__ import annotations

import json

import pytest

from bench.gain_by_sft_agreement import by_agreement, true_plans


def outcomes(rights: str) -> dict[str, bool]:
    return {f"f{index}": flag == "1" for index, flag in enumerate(rights)}


TRUTHS = {"f0": "KEEP, STRAIGHT", "f1": "DECELERATE, STRAIGHT", "f2": "DECELERATE, STRAIGHT", "f3": "STOP, STRAIGHT"}


def test_frames_fall_in_never_sometimes_and_always_with_what_rl_did_there() -> None:
    sft = [outcomes("0011"), outcomes("0101"), outcomes("0001")]  # f0 never, f1 and f2 sometimes, f3 always
    rows = {row["bucket"]: row for row in by_agreement(sft, outcomes("1100"), TRUTHS)}
    assert rows["never"]["frames"] == 1 and rows["never"]["rl right"] == 1
    assert rows["sometimes"]["frames"] == 2 and rows["sometimes"]["sft right (mean)"] == pytest.approx(0.7)
    assert rows["sometimes"]["rl right"] == 1 and rows["sometimes"]["rl - sft"] == pytest.approx(0.3)
    assert rows["always"]["frames"] == 1 and rows["always"]["rl right"] == 0 and rows["always"]["rl - sft"] == -1.0
    assert rows["sometimes"]["frames by true plan (rl right)"] == "DECELERATE, STRAIGHT 2 (1)"
    assert rows["never"]["frames by true plan (rl right)"] == "KEEP, STRAIGHT 1 (1)"
    assert "start right" not in rows["never"]


def test_the_start_s_own_right_plans_per_bucket_separate_rl_from_its_start_s_luck() -> None:
    sft = [outcomes("0011"), outcomes("0101"), outcomes("0001")]
    rows = {row["bucket"]: row for row in by_agreement(sft, outcomes("1100"), TRUTHS, start=sft[0])}
    assert [rows[bucket]["start right"] for bucket in ("never", "sometimes", "always")] == [0, 1, 1]
    with pytest.raises(ValueError, match="different frames"):
        by_agreement(sft, outcomes("1100"), TRUTHS, start=outcomes("001"))


def test_runs_on_other_frames_and_no_runs_are_refused() -> None:
    with pytest.raises(ValueError, match="different frames"):
        by_agreement([outcomes("0011"), outcomes("001")], outcomes("1100"), TRUTHS)
    with pytest.raises(ValueError, match="no SFT runs"):
        by_agreement([], outcomes("1100"), TRUTHS)


def test_true_plans_are_read_from_an_eval(tmp_path) -> None:
    rows = [{"id": "f0", "truth": ["KEEP", "STRAIGHT"], "plan_correct": True}]
    (tmp_path / "predictions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert true_plans(tmp_path) == {"f0": "KEEP, STRAIGHT"}
