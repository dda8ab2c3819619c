"""Every reference to a doc resolves: the file exists and, where a heading is named, the heading too."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKDOWN = sorted([README, *(ROOT / "docs").glob("*.md")])
SOURCES = sorted(
    path
    for folder in ("alphadrive_cli", "bench", "tests", "scripts")
    for path in (ROOT / folder).rglob("*")
    if path.suffix in (".py", ".sh")
)
LINK = re.compile(r"\]\(([^)\s]+)\)")  # a Markdown link's target
CITATION = re.compile(r"\bdocs/[\w./-]+\.md(?:#[\w-]+)?")  # a doc cited from code
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]", "", heading.lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)  # no headings in code
    return {slug(heading) for heading in HEADING.findall(text)}


def problem(target: str, folder: Path, page: Path | None = None) -> str | None:
    """Why ``target`` (``file.md#anchor`` relative to ``folder``, or ``#anchor`` of ``page``) does not resolve."""
    file, _, anchor = target.partition("#")
    path = (folder / file).resolve() if file else page
    if path is None or not path.exists():
        return f"{target}: no such file"
    if anchor and path.suffix == ".md" and anchor not in anchors(path):
        return f"{target}: no heading #{anchor}"
    return None


def test_slugs_follow_github() -> None:
    assert slug("Promises under hostile input") == "promises-under-hostile-input"
    assert slug("Training stages (sft, grpo)") == "training-stages-sft-grpo"
    assert slug("`alphadrive data sim`: the simulator") == "alphadrive-data-sim-the-simulator"


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda path: path.name)
def test_links_between_docs_resolve(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    targets = [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]
    assert [found for target in targets if (found := problem(target, page.parent, page))] == []


def test_docs_cited_from_code_resolve() -> None:
    problems = [
        f"{path.relative_to(ROOT)}: {found}"
        for path in SOURCES
        for target in CITATION.findall(path.read_text(encoding="utf-8"))
        if (found := problem(target, ROOT))
    ]
    assert problems == []


def test_nothing_cites_a_design_file_outside_the_repository() -> None:
    citing = [
        path.relative_to(ROOT)
        for path in [*SOURCES, *MARKDOWN]
        if path.name != "test_docs.py" and "DESIGN.md" in path.read_text(encoding="utf-8")
    ]
    assert citing == []


def _layout_rows() -> list[list[str]]:
    """The cells of the README's layout table (command, module, entry, config, doc, test), backticks dropped."""
    section = README.read_text(encoding="utf-8").split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in section.splitlines() if line.startswith("| `alphadrive")]
    return [[cell.strip().strip("`") for cell in row] for row in rows]


def _cli_commands() -> set[str]:
    """Every command of the CLI as typed (``alphadrive data sim``), groups that run by themselves included."""
    import typer.main

    from alphadrive_cli.cli import app

    def walk(command, words: list[str]):
        subcommands = getattr(command, "commands", None)
        if not subcommands or getattr(command, "invoke_without_command", False):
            yield " ".join(words)
        for name, subcommand in (subcommands or {}).items():
            yield from walk(subcommand, [*words, name])

    return set(walk(typer.main.get_command(app), ["alphadrive"])) - {"alphadrive"}


def test_the_layout_table_matches_the_cli() -> None:
    rows = _layout_rows()
    listed = {row[0].split(" --")[0] for row in rows}
    assert listed == _cli_commands()  # every command has a row, and every row is a command
    for command, module, entry, config, _doc, test in rows:
        assert (ROOT / module).is_file(), command
        imported = importlib.import_module(module.removesuffix(".py").replace("/", "."))
        assert callable(getattr(imported, entry, None)), f"{command}: {module} has no {entry}"
        assert config == "—" or (ROOT / config).is_file(), command
        assert (ROOT / test).is_file(), command
