"""Read the documentation of chart/values.yaml: the ``# --`` comment above each key.

A key is documented by a comment block right above it whose first line starts with ``# --``
(the helm-docs convention); further ``#`` lines continue it. The documented key paths are
dotted (``triton.image.tag``); keys inside list items are not documented one by one, the list
is. Used by the generators of chart/README.md's values table and of chart/values.schema.json.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?:\s|$)")
MISSING = object()


@dataclass(frozen=True)
class DocumentedValue:
    path: str
    description: str
    default: Any


def lookup(values: Any, path: str) -> Any:
    """The value at a dotted path of nested mappings, or MISSING."""
    node = values
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def documented_values(values_file: Path) -> list[DocumentedValue]:
    """Every documented key of the values file, in file order."""
    text = values_file.read_text(encoding="utf-8")
    values = yaml.safe_load(text) or {}
    stack: list[tuple[int, str]] = []
    comment: list[str] = []
    found: list[DocumentedValue] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            body = stripped[1:].strip()
            if body.startswith("--"):
                comment = [body[2:].strip()]
            elif comment:
                comment.append(body)
            continue
        match = KEY_LINE.match(line)
        if not match:
            comment = []
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        path = ".".join(key for _, key in stack)
        default = lookup(values, path)
        if comment and default is not MISSING:
            found.append(DocumentedValue(path, " ".join(comment).strip(), default))
        comment = []
    return found


def leaf_paths(values: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the leaves: values that are not non-empty mappings."""
    if isinstance(values, dict) and values:
        paths: list[str] = []
        for key, value in values.items():
            paths.extend(leaf_paths(value, f"{prefix}{key}."))
        return paths
    return [prefix.rstrip(".")]


def undocumented_leaves(values_file: Path) -> list[str]:
    """Leaves of the values file that neither they nor an enclosing key document."""
    values = yaml.safe_load(values_file.read_text(encoding="utf-8")) or {}
    documented = {doc.path for doc in documented_values(values_file)}
    missing = []
    for leaf in leaf_paths(values):
        parts = leaf.split(".")
        if not any(".".join(parts[:n]) in documented for n in range(1, len(parts) + 1)):
            missing.append(leaf)
    return missing


def write_or_check(target: Path, text: str, *, check: bool, make_target: str) -> int:
    """Write a generated file, or with ``check`` only say (exit status 1) whether it is stale."""
    root = Path(__file__).resolve().parent.parent
    if check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            print(f"{target.relative_to(root)} is out of date: run `make {make_target}`", file=sys.stderr)
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target.relative_to(root)}")
    return 0
