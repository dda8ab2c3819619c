"""Benchmarks fail as `alphadrive`'s commands do: one `error:` line and the contract's exit code, no traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("module", "args", "exit_code", "message"),
    [
        ("bench.fact_tables", ("{missing}",), 2, "error: no such artifact"),  # bad input
        (
            "bench.pooled_gain",
            ("--pair", "x", "{missing}", "{missing}"),
            1,
            "error: FileNotFoundError",
        ),  # anything else
    ],
)
def test_a_benchmark_s_failure_is_one_line_with_the_contract_s_exit_code(
    tmp_path: Path, module: str, args: tuple[str, ...], exit_code: int, message: str
) -> None:
    ran = _bench(module, *(arg.format(missing=tmp_path / "missing") for arg in args))
    assert ran.returncode == exit_code
    assert "Traceback" not in ran.stderr
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message)


def test_the_ablation_refuses_control_settings_without_the_controls(tmp_path: Path) -> None:
    ran = _bench("bench.ablation", "--root", str(tmp_path / "runs"), "--control-set", "learning_rate=2e-5")
    assert ran.returncode == 2 and "Traceback" not in ran.stderr
    assert (
        ran.stderr.strip()
        .splitlines()[-1]
        .endswith("--control-set sets the supervised controls' training: add --supervised-control")
    )
