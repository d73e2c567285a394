"""The README's command lines, run as written, so the README cannot drift from what works.

Every command of a shell block (```sh, ```console) of README.md and chart/README.md is either run or
skipped for a stated reason; a command this file does not know fails the test, so a new command in
a README must be classified here. Placeholders (`<registry>`, `<token>`, ...) are filled in. A
```yaml block whose first line is `# <file>.yaml` is that file. Each README runs in its own folder,
holding a copy of the chart, `.venv` (this virtual environment: helm, kubectl, model-fetcher) and
its files: first the YAML blocks and the commands that write files (printf, cat), then the rest in
the README's order. Commands that would change a cluster run with `--dry-run=client`.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from devkit.chart import CHART_DIR, ROOT
from devkit.helm_cli import require_helm, run_shell

READMES = ["README.md", "chart/README.md"]
SHELL_LANGUAGES = {"sh", "shell", "bash", "console"}
VENV = Path(sys.prefix)

PLACEHOLDERS = {
    "registry": "registry.example.com",
    "token": "example-token",
    "access key id": "AKIAEXAMPLEKEYID",
    "secret access key": "example-secret-access-key",
    "release": "lease-a",
    "pod": "lease-a-triton-lease-0",
    "name": "ngc-model-pull",
}
_PLACEHOLDER = re.compile(r"<([a-z][a-z0-9 _-]*)>")
_FENCE = re.compile(r"^```(?P<language>[\w-]*)[^\n]*\n(?P<body>.*?)^```", re.MULTILINE | re.DOTALL)
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(?P<word>\w+)\1")
_FILE_HEADER = re.compile(r"\A#\s*(?P<name>[\w.-]+\.ya?ml)\s*\n")


@dataclass(frozen=True)
class Rule:
    words: tuple[str, ...]  # the command's first words (the program by its base name)
    action: str  # "run", "setup" (writes a file), "dry-run" (append a client-side dry run) or "skip"
    reason: str = ""


RULES = [
    Rule(("printf",), "setup"),
    Rule(("cat",), "setup"),
    Rule(("helm", "template"), "run"),
    Rule(("helm", "lint"), "run"),
    Rule(("helm", "package"), "run"),
    Rule(("helm", "show"), "run"),
    Rule(("helm", "install"), "dry-run"),
    Rule(("helm", "upgrade"), "skip", "needs a cluster holding the release"),
    Rule(("helm", "test"), "skip", "needs a cluster: runs the test pod against the release's Triton"),
    Rule(("helm", "get"), "skip", "needs a cluster holding the release"),
    Rule(("helm", "uninstall"), "skip", "needs a cluster holding the release"),
    Rule(("kubectl", "create"), "dry-run"),
    Rule(("kubectl",), "skip", "needs a cluster"),
    Rule(("docker",), "skip", "needs a Docker engine and a registry (tests/test_image.py builds the Dockerfile with podman)"),
    Rule(("model-fetcher", "explain"), "run"),
    Rule(("model-fetcher", "fetch"), "skip", "downloads from the servers the lease names (tests/test_pod_contract.py fetches from local ones)"),
    Rule(("model-fetcher", "watch"), "skip", "runs beside a Triton (tests/test_watch_triton.py runs it against a real one)"),
    Rule(("model-fetcher", "status"), "skip", "reads the status file of a running sidecar (tests/test_watch_cli.py)"),
    Rule(("make", "template"), "run"),
    Rule(("make", "help"), "run"),
    Rule(("make", "demo"), "skip", "starts real servers and Triton: the same run is tests/test_pod_contract.py"),
    Rule(("make", "test"), "skip", "the test suite itself"),
    Rule(("make", "kind-e2e"), "skip", "needs Docker and kind"),
    Rule(("make", "venv"), "run"),
    Rule(("make", "image"), "skip", "builds the image with podman (tests/test_image.py does, where podman runs)"),
    Rule(("make", "image-debs"), "skip", "installs Debian packages on the machine"),
    Rule(("make", "chart-schema"), "skip", "rewrites files of the checkout (tests/chart/test_values_schema.py checks them)"),
    Rule(("make", "chart-docs"), "skip", "rewrites files of the checkout (tests/chart/test_readme.py checks them)"),
    Rule(("podman",), "skip", "needs podman and root (tests/test_image.py runs it where it can)"),
    Rule(("kind",), "skip", "needs Docker and kind"),
    Rule(("make", "bench"), "skip", "a benchmark of minutes (tests/test_bench_smoke.py runs a small one)"),
]
DRY_RUN_FLAGS = {"helm": ["--dry-run=client"], "kubectl": ["--dry-run=client", "-o", "yaml"]}


@dataclass(frozen=True)
class Command:
    readme: str
    line: int
    text: str  # as written, continuation lines and here-document included

    @property
    def words(self) -> list[str]:
        first = self.text.split("\n", 1)[0].rstrip("\\")
        try:
            words = shlex.split(first, comments=True)
        except ValueError:  # a quote that the next line closes
            words = first.split()
        return [Path(words[0]).name, *words[1:]] if words else []

    @property
    def rule(self) -> Rule | None:
        matches = [r for r in RULES if tuple(self.words[: len(r.words)]) == r.words]
        return max(matches, key=lambda r: len(r.words), default=None)

    @property
    def id(self) -> str:
        return f"{self.readme}:{self.line} {' '.join(self.words[:3])}"


@dataclass(frozen=True)
class YamlFile:
    name: str
    text: str


def shell_commands(readme: str, body: str, first_line: int) -> list[Command]:
    """The commands of a shell block: comments and blank lines dropped, continuations and here-documents joined."""
    commands: list[Command] = []
    lines = body.splitlines()
    index = 0
    while index < len(lines):
        start = index
        line = lines[index]
        index += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        text = [line]
        while text[-1].rstrip().endswith("\\") and index < len(lines):
            text.append(lines[index])
            index += 1
        heredoc = _HEREDOC.search(text[0])
        if heredoc:
            while index < len(lines):
                text.append(lines[index])
                index += 1
                if text[-1].strip() == heredoc["word"]:
                    break
        commands.append(Command(readme, first_line + start, "\n".join(text)))
    return commands


def readme_parts(readme: str) -> tuple[list[Command], list[YamlFile]]:
    text = (ROOT / readme).read_text(encoding="utf-8")
    commands: list[Command] = []
    files: list[YamlFile] = []
    for block in _FENCE.finditer(text):
        first_line = text.count("\n", 0, block.start("body")) + 1
        if block["language"] in SHELL_LANGUAGES:
            commands += shell_commands(readme, block["body"], first_line)
        elif block["language"] in {"yaml", "yml"} and (header := _FILE_HEADER.match(block["body"])):
            files.append(YamlFile(header["name"], block["body"]))
    return commands, files


def filled(text: str) -> str:
    """The placeholders filled in, except in comments (` # ...` to the end of a line)."""

    def value(match: re.Match[str]) -> str:
        if match[1] not in PLACEHOLDERS:
            raise AssertionError(f"no value for the placeholder {match[0]}: add it to PLACEHOLDERS")
        return PLACEHOLDERS[match[1]]

    lines = []
    for line in text.split("\n"):
        code, hash_, comment = line.partition(" #")
        lines.append(_PLACEHOLDER.sub(value, code) + hash_ + comment)
    return "\n".join(lines)


def runnable(command: Command) -> str:
    """The command line as run here."""
    rule = command.rule
    assert rule is not None and rule.action != "skip"
    text = filled(command.text)
    if rule.action == "dry-run":
        # At the end of the command, before a trailing comment.
        *lines, last = text.split("\n")
        code, hash_, comment = last.partition(" #")
        text = "\n".join([*lines, f"{code.rstrip()} {' '.join(DRY_RUN_FLAGS[rule.words[0]])}{hash_}{comment}"])
    if rule.words[0] == "make":
        # The checkout's Makefile and virtual environment, without rebuilding it.
        stamp = VENV / ".installed"
        text = text.replace("make ", f"make -s -f {ROOT / 'Makefile'} VENV={VENV} -o {stamp} ", 1)
    return text


ALL = {readme: readme_parts(readme) for readme in READMES}
COMMANDS = [command for commands, _ in ALL.values() for command in commands]
SKIPPED = [c for c in COMMANDS if c.rule is not None and c.rule.action == "skip"]


def test_every_readme_command_is_run_or_skipped_for_a_reason():
    unknown = [f"{c.readme}:{c.line}: {c.text.splitlines()[0]}" for c in COMMANDS if c.rule is None]
    assert not unknown, "classify these README commands in RULES of tests/test_readme_commands.py:\n" + "\n".join(unknown)


def test_the_readmes_show_helm_and_fetcher_commands_that_run():
    run = {" ".join(c.words[:2]) for c in COMMANDS if c.rule is not None and c.rule.action != "skip"}
    assert {"helm install", "model-fetcher explain", "make template"} <= run, run


@pytest.mark.parametrize("readme", READMES)
def test_readme_commands_run_as_written(readme, tmp_path):
    require_helm()
    commands, files = ALL[readme]
    folder = tmp_path / "checkout"
    shutil.copytree(CHART_DIR, folder / "chart")
    (folder / ".venv").symlink_to(VENV)
    for file in files:
        (folder / file.name).write_text(filled(file.text), encoding="utf-8")
    known = [c for c in commands if c.rule is not None and c.rule.action != "skip"]
    ordered = [c for c in known if c.rule.action == "setup"] + [c for c in known if c.rule.action != "setup"]
    failures = []
    for command in ordered:
        line = runnable(command)
        run = run_shell(line, home=tmp_path / "home", cwd=folder)
        if run.status != 0:
            failures.append(f"{command.readme}:{command.line}: {line}\nexit {run.status}: {run.stderr.strip()[-1500:]}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("command", SKIPPED, ids=[c.id for c in SKIPPED])
def test_readme_command_that_cannot_run_here(command):
    pytest.skip(f"{command.id}: {command.rule.reason}")


def test_commands_are_read_as_the_shell_reads_them():
    block = (
        "# a comment\n"
        "helm install x ./chart \\\n"
        "  -f values.yaml   # trailing comment\n"
        "\n"
        "cat > lease.yaml <<'YAML'\n"
        "lease:\n"
        "  models: []\n"
        "YAML\n"
        ".venv/bin/helm lint ./chart\n"
        "frobnicate --all\n"
    )
    commands = shell_commands("X.md", block, 10)
    assert [c.line for c in commands] == [11, 14, 18, 19]
    assert commands[0].text == "helm install x ./chart \\\n  -f values.yaml   # trailing comment"
    assert commands[1].text.endswith("\nYAML") and commands[1].rule.action == "setup"
    assert [c.rule.action if c.rule else None for c in commands] == ["dry-run", "setup", "run", None]
    assert runnable(commands[0]).endswith("-f values.yaml --dry-run=client # trailing comment")


def test_placeholders_are_filled_except_in_comments():
    assert filled("repository: <registry>/x   # <domain_or_ip>") == "repository: registry.example.com/x   # <domain_or_ip>"
    with pytest.raises(AssertionError, match="<unknown thing>"):
        filled("value: <unknown thing>")
