"""bench/python_profile.py: a cProfile window over a GRPO rollout cycle, summarised by function."""

from __future__ import annotations

from bench.python_profile import PythonProfile


def busy(n: int) -> int:
    total = 0
    for i in range(n):  # a loop in this frame: its time is busy's own (a generator's would be the generator's)
        total += i * i
    return total


def caller() -> None:
    for _ in range(3):
        busy(20_000)


def test_the_window_times_what_ran_inside_it_by_function() -> None:
    window = PythonProfile(start=0, steps=1)
    busy(10)  # before the window: not recorded
    window.open()
    caller()
    window.stop(1)
    busy(10)  # after it: not recorded either
    result = window.result
    assert result is not None and result["steps"] == 1 and result["window_s"] > 0
    (entry,) = [e for e in result["by_cumulative_time"] if e["function"].endswith(" busy")]
    assert entry["function"].startswith("tests/test_python_profile.py:")
    assert entry["calls"] == 3 and 0 < entry["own_ms"] <= entry["cumulative_ms"]
    assert {"function", "calls", "own_ms", "cumulative_ms", "callers"} <= set(result["by_own_time"][0])
    (listed,) = [e for e in result["by_own_time"] if e["function"].endswith(" busy")]
    assert listed["callers"] == [
        {"function": f"tests/test_python_profile.py:{caller.__code__.co_firstlineno} caller", "calls": 3}
    ]
    assert "callers" not in entry
    assert len(result["by_own_time"]) <= 40
