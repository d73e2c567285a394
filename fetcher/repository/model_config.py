"""Making ``config.pbtxt``'s top-level ``name`` agree with the model's directory name.

Triton refuses a model whose configured name differs from its directory. Only the value of the
top-level ``name`` field is rewritten; every other byte of the file stays as it was.
"""

from __future__ import annotations

import re
from pathlib import Path

from fetcher.errors import ModelLayoutError

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
    config = model_dir / "config.pbtxt"
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
