"""bench/pooled_gain.py: the mean gain of several RL runs over their SFT starts, frames (or episodes) resampled per
frame set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alphadrive_cli.evaluation.metrics import paired_difference_ci
from alphadrive_cli.evaluation.paired import plan_outcomes
from bench import pooled_gain as pooled_gain_module
from bench.pooled_gain import pooled_gain


def outcomes(rights: str) -> dict[str, bool]:
    """Frame ``f<i>`` (zero-padded, so sorted ids keep the order) right where ``rights[i]`` is 1."""
    return {f"f{index:03d}": flag == "1" for index, flag in enumerate(rights)}


def test_the_pooled_gain_is_the_mean_of_the_runs_gains() -> None:
    first = (outcomes("0000011111"), outcomes("0001111111"))  # +0.2
    second = (outcomes("0000011111"), outcomes("0000001111"))  # -0.1, on the same frames
    other = (outcomes("00000"), outcomes("11111"))  # +1.0, on other frames
    pooled = pooled_gain([first, second, other])
    assert pooled["gain"] == pytest.approx((0.2 - 0.1 + 1.0) / 3, abs=1e-4)
    assert pooled["pairs"] == 3 and pooled["frame_sets"] == 2
    assert pooled["low"] <= pooled["gain"] <= pooled["high"]


def test_one_pair_pools_to_its_own_paired_interval() -> None:
    start, run = outcomes("0101010101" * 4), outcomes("1101110101" * 4)
    pooled = pooled_gain([(start, run)])
    single = paired_difference_ci(list(start.values()), list(run.values()))
    assert (pooled["gain"], pooled["low"], pooled["high"]) == (single["difference"], single["low"], single["high"])


def test_runs_on_the_same_frames_move_together() -> None:
    """Two copies of one run on the same frames are one sample of frames, not two: the interval stays as wide as
    one run's; the same two runs on distinct frame sets average out and narrow it."""
    start, run = outcomes("0101010101" * 4), outcomes("1101110100" * 4)
    shared = pooled_gain([(start, run), (start, run)])
    renamed = ({f"g{k}": v for k, v in start.items()}, {f"g{k}": v for k, v in run.items()})
    apart = pooled_gain([(start, run), renamed])
    assert shared["frame_sets"] == 1 and apart["frame_sets"] == 2
    assert apart["high"] - apart["low"] < 0.85 * (shared["high"] - shared["low"])


def test_pairs_on_different_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="different frames"):
        pooled_gain([(outcomes("01"), outcomes("011"))])


def test_each_frame_its_own_episode_resamples_as_frames_do() -> None:
    start, run = outcomes("0101010101" * 4), outcomes("1101110100" * 4)
    by_frame = pooled_gain([(start, run)])
    by_episode = pooled_gain([(start, run)], episodes={frame: frame for frame in start})
    assert by_episode == by_frame


def test_episodes_whose_frames_move_together_widen_the_interval() -> None:
    """40 frames in 4 episodes of 10, every frame of an episode gained or lost alike: resampling episodes is
    resampling 4 outcomes, far wider than 40 independent frames would give; the gain itself is the same."""
    start, run = outcomes("0" * 40), outcomes("1" * 10 + "0" * 10 + "1" * 10 + "0" * 10)
    episodes = {frame: str(index // 10) for index, frame in enumerate(sorted(start))}
    by_frame, by_episode = pooled_gain([(start, run)]), pooled_gain([(start, run)], episodes=episodes)
    assert by_frame["gain"] == by_episode["gain"] == 0.5
    assert by_episode["high"] - by_episode["low"] > 1.8 * (by_frame["high"] - by_frame["low"])


def test_a_frame_without_an_episode_is_its_own() -> None:
    start, run = outcomes("0000"), outcomes("1100")
    named = pooled_gain([(start, run)], episodes={"f000": "e", "f001": "e"})
    assert named == pooled_gain([(start, run)], episodes={"f000": "e", "f001": "e", "f002": "x", "f003": "y"})


def test_the_command_resamples_the_data_sets_episodes(tmp_path: Path, monkeypatch) -> None:
    """`--episodes DATA` reads each frame's episode from DATA's records and says so in its report."""
    frames = sorted(outcomes("0" * 40))
    records = {f: {"source": {"episode": index // 10}} for index, f in enumerate(frames)}
    monkeypatch.setattr(pooled_gain_module, "split_records", lambda data, split: records if split == "test" else {})
    evals = [
        _eval(tmp_path / name, {f: mark == "1" for f, mark in zip(frames, right, strict=True)})
        for name, right in (("sft", "0" * 40), ("rl", "1" * 10 + "0" * 10 + "1" * 10 + "0" * 10))
    ]
    reports = {}
    for flag in ([], ["--episodes", str(tmp_path / "data")]):
        out = tmp_path / f"pooled{len(flag)}.json"
        argv = ["pooled_gain", "--pair", "s0", *map(str, evals), "--out", str(out), *flag]
        monkeypatch.setattr("sys.argv", argv)
        pooled_gain_module.main()
        reports[len(flag)] = json.loads(out.read_text())
    assert reports[0]["resampled"] == "frames" and reports[2]["resampled"] == "episodes"
    assert "--episodes" in reports[2]["command"]
    width = {k: report["pooled"]["high"] - report["pooled"]["low"] for k, report in reports.items()}
    assert width[2] > 1.8 * width[0]


def test_the_command_resamples_the_episodes_the_predictions_name(tmp_path: Path, monkeypatch) -> None:
    """Evals whose predictions name each frame's episode (`eval` since 2026-12-07) need no DATA: the command
    resamples their episodes, as `eval compare` does."""
    frames = sorted(outcomes("0" * 40))
    episodes = {f: index // 10 for index, f in enumerate(frames)}
    evals = [
        _eval(tmp_path / name, {f: mark == "1" for f, mark in zip(frames, right, strict=True)}, episodes)
        for name, right in (("sft", "0" * 40), ("rl", "1" * 10 + "0" * 10 + "1" * 10 + "0" * 10))
    ]
    out = tmp_path / "pooled.json"
    monkeypatch.setattr("sys.argv", ["pooled_gain", "--pair", "s0", *map(str, evals), "--out", str(out)])
    pooled_gain_module.main()
    report = json.loads(out.read_text())
    by_frame = pooled_gain([(plan_outcomes(evals[0]), plan_outcomes(evals[1]))])
    assert report["resampled"] == "episodes"
    assert report["pooled"]["high"] - report["pooled"]["low"] > 1.8 * (by_frame["high"] - by_frame["low"])


def _eval(path: Path, rights: dict[str, bool], episodes: dict[str, int] | None = None) -> Path:
    """An eval folder whose predictions mark each frame right or wrong (and name its episode, where given)."""
    path.mkdir(parents=True)
    rows = [
        {"id": frame, "plan_correct": right, **({"episode": str(episodes[frame])} if episodes else {})}
        for frame, right in rights.items()
    ]
    (path / "predictions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path
