"""What every benchmark does with its results: a Markdown table on stdout and, with --out, JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alphadrive_cli.stages.eval_compare import markdown_table


def report(columns: Sequence[str], rows: Sequence[dict[str, Any]], out: Path | None, **facts: Any) -> None:
    """Print ``rows`` as a table of ``columns`` (– where a row has no value); write ``{**facts, "runs": rows}``
    to ``out`` if given."""
    print(markdown_table(columns, [[str(row.get(column, "–")) for column in columns] for row in rows]))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**facts, "runs": list(rows)}, indent=2) + "\n")
