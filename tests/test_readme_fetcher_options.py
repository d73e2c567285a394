"""README.md's section on the fetcher names only options the fetcher has, with their real defaults."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from fetcher.cli.main import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"
# Options of other commands that the section shows (kubectl, helm, tritonserver, unshare, aws).
OTHER_TOOLS = {"--from-file", "--set-json", "--all", "--model-repository", "--mount", "--propagation", "--help",
               "--recursive"}


def fetcher_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("\n## The fetcher\n", 1)[1].split("\n## ", 1)[0]


def fetcher_options() -> dict[str, argparse.Action]:
    """Every option of every subcommand -> its argparse action."""
    options: dict[str, argparse.Action] = {}
    parser = build_parser()
    for action in parser._actions:  # noqa: SLF001 - argparse exposes subcommands no other way
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for sub in action.choices.values():
                for option in sub._actions:  # noqa: SLF001
                    for flag in option.option_strings:
                        options.setdefault(flag, option)
    return options


def test_every_option_named_exists():
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", fetcher_section()))
    assert named - OTHER_TOOLS - set(fetcher_options()) == set()


def test_stated_defaults_are_the_parsers():
    stated = re.findall(r"`(--[a-z-]+)`,? \(?default `?([0-9][0-9.]*[A-Za-z]*)", fetcher_section())
    assert {flag for flag, _ in stated} >= {"--concurrency", "--transfer-concurrency", "--model-timeout"}
    options = fetcher_options()
    for flag, text in stated:
        option = options[flag]
        # Read the stated value as the option reads its argument (sizes with units, seconds).
        value = option.type(text) if option.type else text
        assert value == option.default, f"README says {flag} defaults to {text}, the parser {option.default}"


def test_the_section_says_where_model_fetcher_comes_from():
    # Its examples call `model-fetcher` bare: the section must say that it is the virtual environment's.
    section = fetcher_section()
    assert "model-fetcher explain" in section
    assert "make venv" in section and ".venv/bin/model-fetcher" in section
