#!/usr/bin/env python3
"""Regenerate the values table of chart/README.md from chart/values.yaml's ``# --`` comments.

The table sits between the markers ``<!-- values-table:start -->`` and
``<!-- values-table:end -->``; the rest of the README is written by hand.

    python scripts/generate_chart_readme.py           # rewrite the table
    python scripts/generate_chart_readme.py --check   # exit 1 when the README's table is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chart_values_doc import documented_values, undocumented_leaves, write_or_check  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VALUES = ROOT / "chart" / "values.yaml"
README = ROOT / "chart" / "README.md"
START = "<!-- values-table:start -->"
END = "<!-- values-table:end -->"


def type_name(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table() -> str:
    missing = undocumented_leaves(VALUES)
    if missing:
        raise SystemExit(f"undocumented values in {VALUES.name} (add a '# --' comment): {missing}")
    rows = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for doc in documented_values(VALUES):
        default = json.dumps(doc.default, separators=(",", ":"))
        rows.append(
            f"| `{doc.path}` | {type_name(doc.default)} | `{cell(default)}` | {cell(doc.description)} |"
        )
    return "\n".join(rows)


def render(readme: str) -> str:
    head, start, rest = readme.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"{README} lacks the markers {START} ... {END}")
    return f"{head}{START}\n{table()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the README's table is stale")
    args = parser.parse_args(argv)
    return write_or_check(README, render(README.read_text(encoding="utf-8")), check=args.check,
                          make_target="chart-docs")


if __name__ == "__main__":
    sys.exit(main())
