"""bench/grpo_speed.py's Timer: the samples/s of each rollout cycle in the measured window (a synthetic timeline)."""

import pytest

from bench.grpo_speed import Timer


def timeline(rollout_s: list[float], step_s: float = 0.1, steps_per_rollout: int = 4) -> Timer:
    """A run whose every ``steps_per_rollout``-th step starts with a rollout of the given length."""
    timer, now = Timer(per_step=64), 0.0
    timer.steps.append(now)
    for length in rollout_s:
        for step in range(steps_per_rollout):
            if step == 0:
                timer.rollouts.append((now, now + length))
                timer.generation.append((now, now + length / 2, 1000, 200.0))
                now += length
            now += step_s
            timer.steps.append(now)
    return timer


def test_each_whole_cycle_gets_its_samples_per_second_and_the_median_ignores_one_slow_rollout() -> None:
    timer = timeline([5.0, 1.0, 3.0, 1.0, 1.0])  # a compiling first rollout, then one slow one among four
    summary = timer.summary(warmup_steps=4, steps_per_rollout=4, measured_steps=16)
    fast, slow = round(4 * 64 / 1.4, 1), round(4 * 64 / 3.4, 1)
    assert summary["cycle_samples_per_s"] == [fast, slow, fast, fast]
    assert summary["median_cycle_samples_per_s"] == fast
    assert summary["samples_per_s"] < fast  # the window's mean carries the slow rollout


def test_a_cycle_cut_by_the_window_is_left_out() -> None:
    timer = timeline([1.0, 1.0, 1.0])
    assert len(timer.summary(warmup_steps=0, steps_per_rollout=4, measured_steps=10)["cycle_samples_per_s"]) == 2


def test_a_window_of_one_cycle_has_its_samples_per_second() -> None:
    """grpo_speed's default: one measured rollout after the warm-up."""
    timer = timeline([5.0, 1.0])
    assert timer.summary(warmup_steps=4, steps_per_rollout=4)["cycle_samples_per_s"] == [round(4 * 64 / 1.4, 1)]


def test_the_steady_window_leaves_the_warm_up_steps_out() -> None:
    """sft rows: a slow start (loader workers, first allocations), then steps of 0.1 s at 32 samples."""
    timer = Timer(per_step=32)
    timer.steps.extend([0.0, 2.0, 3.0, *(3.0 + 0.1 * step for step in range(1, 11))])
    steady = timer.steady(warmup_steps=2)
    assert steady["steady_steps"] == 10
    assert steady["steady_samples_per_s"] == 320.0
    assert steady["step_seconds"][:2] == [2.0, 1.0] and len(steady["step_seconds"]) == 12


def test_the_step_clock_records_the_start_and_every_step_end() -> None:
    from alphadrive_cli.training import callbacks

    timer = Timer(per_step=32)
    timer.install_step_clock()
    try:
        clock = callbacks.EXTRA_CALLBACKS[-1]
        clock.on_train_begin()
        clock.on_step_end()
        clock.on_step_end()
    finally:
        callbacks.EXTRA_CALLBACKS.pop()
    assert len(timer.steps) == 3 and timer.steps == sorted(timer.steps)


def test_a_run_that_ended_in_its_warm_up_has_no_steady_figure() -> None:
    timer = Timer(per_step=32)
    timer.steps.extend([0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="none after the 2 warm-up steps"):
        timer.steady(warmup_steps=2)
