"""What Triton takes for one model folder, and the name its ``config.pbtxt`` gives it.

A folder is a model when it holds ``config.pbtxt`` or a numeric version folder (``1/``); every
source (zip, volume, S3 prefix) asks this module, so the rule cannot drift between them.

Triton refuses a model whose configured name differs from its directory. Only the value of the
top-level ``name`` field is rewritten; every other byte of the file stays as it was.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from fetcher.errors import ModelLayoutError

CONFIG_NAME = "config.pbtxt"
# What a folder lacks when it is not a model, for error messages.
NOT_A_MODEL = "no config.pbtxt and no numeric version folder"


def is_model(file_names: Iterable[str], folder_names: Iterable[str]) -> bool:
    """The rule, on the names of a folder's files and sub-folders."""
    return CONFIG_NAME in set(file_names) or any(name.isdigit() for name in folder_names)


def is_model_dir(folder: Path) -> bool:
    if (folder / CONFIG_NAME).is_file():
        return True
    return is_model((), (child.name for child in folder.iterdir() if child.name.isdigit() and child.is_dir()))

_TOKEN = re.compile(
    r'''(?P<comment>\#[^\n]*)
      | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
      | (?P<open>[{\[<])
      | (?P<close>[}\]>])
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<other>[^\s])''',
    re.VERBOSE,
)


def _top_level_name_span(text: str) -> tuple[int, int, str] | None:
    """(start, end, value) of the string value of the top-level ``name`` field, if any."""
    depth = 0
    expect: str | None = None  # "colon" after name, then "value"
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "comment":
            continue
        if expect == "colon":
            if match.group() == ":":
                expect = "value"
                continue
            expect = "value"  # the colon is optional in text format
        if expect == "value":
            expect = None
            if kind == "string":
                raw = match.group()
                return match.start(), match.end(), raw[1:-1]
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
        elif kind == "ident" and depth == 0 and match.group() == "name":
            expect = "colon"
    return None


def configured_name(config: Path) -> str | None:
    span = _top_level_name_span(config.read_text(encoding="utf-8"))
    return span[2] if span else None


def make_name_agree(model_dir: Path, name: str) -> str | None:
    """Rewrite the top-level name in ``model_dir/config.pbtxt`` to ``name``; return the old name if changed."""
    config = model_dir / CONFIG_NAME
    if not config.is_file():
        return None
    try:
        # Bytes, not read_text: universal newlines would turn CRLF into LF on the way back.
        text = config.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ModelLayoutError("config.pbtxt is not UTF-8 text") from None
    span = _top_level_name_span(text)
    if span is None or span[2] == name:
        return None
    start, end, old = span
    quote = text[start]  # the value keeps its quote character
    config.write_bytes((text[:start] + quote + name + quote + text[end:]).encode("utf-8"))
    return old
