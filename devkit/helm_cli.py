"""The real `helm` CLI, run as a user runs it, and its output read back per template.

`make venv` puts helm (and kubectl) into the virtual environment's bin/ (scripts/install_helm.py).
Every run gets its own Helm home and an empty kubeconfig, so no user configuration is read and no
cluster is contacted.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml

VENV_BIN = Path(sys.executable).parent
HELM = VENV_BIN / "helm"
RUN_TIMEOUT_SECONDS = 120


class HelmNotInstalled(RuntimeError):
    pass


@dataclass(frozen=True)
class CliRun:
    """A finished command: what the user sees on the terminal."""

    args: tuple[str, ...]
    status: int
    stdout: str
    stderr: str

    def check(self) -> CliRun:
        if self.status != 0:
            raise AssertionError(f"{' '.join(self.args)} exited {self.status}:\n{self.stderr}{self.stdout[-2000:]}")
        return self


def require_helm() -> Path:
    if not os.access(HELM, os.X_OK):
        raise HelmNotInstalled(f"no helm at {HELM}: run `make venv` (scripts/install_helm.py installs it)")
    return HELM


def cli_environment(home: Path) -> dict[str, str]:
    """The environment of a user's shell: the virtual environment's bin/ first, a private Helm home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBE"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    for name in ("CONFIG", "CACHE", "DATA"):
        folder = home / f"helm-{name.lower()}"
        folder.mkdir(parents=True, exist_ok=True)
        env[f"HELM_{name}_HOME"] = str(folder)
    env["KUBECONFIG"] = str(home / "kubeconfig")  # absent: nothing to reach
    return env


def run_cli(args: Sequence[str | Path], *, home: Path, cwd: Path | None = None) -> CliRun:
    """Run a program with its arguments as a user would."""
    return _run([str(a) for a in args], home=home, cwd=cwd)


def run_shell(line: str, *, home: Path, cwd: Path | None = None) -> CliRun:
    """Run one command line through bash, as typed into a terminal (pipes, redirects, here-documents)."""
    return _run(line, home=home, cwd=cwd)


def _run(command: list[str] | str, *, home: Path, cwd: Path | None) -> CliRun:
    shell = isinstance(command, str)
    result = subprocess.run(
        command,
        shell=shell,
        executable="/bin/bash" if shell else None,
        cwd=cwd,
        env=cli_environment(home),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
    )
    args = (command,) if isinstance(command, str) else tuple(command)
    return CliRun(args, result.returncode, result.stdout, result.stderr)


def helm(*args: str | Path, home: Path, cwd: Path | None = None) -> CliRun:
    return run_cli([require_helm(), *args], home=home, cwd=cwd)


_SOURCE = re.compile(r"^# Source: (?P<path>\S+)\n", re.MULTILINE)
NOTES = "NOTES.txt"


def template_files(output: str) -> dict[str, str]:
    """`helm template` manifests as {template path: its documents}, the shape of the SDK's render."""
    found: dict[str, list[str]] = {}
    starts = list(_SOURCE.finditer(output))
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(output)
        found.setdefault(match["path"], []).append(output[match.end():end].removesuffix("---\n"))
    return {path: "---\n".join(parts) for path, parts in found.items()}


def install_files(output: str, chart_name: str) -> dict[str, str]:
    """`helm install --dry-run=client` output in the same shape: hooks, manifests and NOTES.txt."""
    head, marker, notes = output.partition("\nNOTES:\n")
    hooks, manifest_marker, manifests = head.partition("\nMANIFEST:\n")
    if not manifest_marker:
        raise AssertionError(f"not the output of helm install --dry-run:\n{output[:500]}")
    files = template_files(f"{hooks}\n{manifests}")
    if marker:
        files[f"{chart_name}/templates/{NOTES}"] = notes
    return files


def documents(files: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """{template path: its parsed documents} (NOTES.txt and empty templates left out)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path, text in files.items():
        if path.endswith(NOTES):
            continue
        docs = [doc for doc in yaml.safe_load_all(text) if doc]
        if docs:
            found[path] = docs
    return found


def sdk_kube_version(workdir: Path) -> str:
    """The Kubernetes version helm-python-sdk renders for (it takes none), read by rendering a probe chart."""
    import helm_python

    chart = workdir / "kube-version-probe"
    (chart / "templates").mkdir(parents=True, exist_ok=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: kube-version-probe\nversion: 0.1.0\n", encoding="utf-8")
    (chart / "templates" / "probe.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\ndata:\n"
        "  version: {{ .Capabilities.KubeVersion.Version | quote }}\n",
        encoding="utf-8",
    )
    (text,) = helm_python.Chart.load(chart).render({}, name="probe", namespace="default").values()
    return str(yaml.safe_load(text)["data"]["version"]).removeprefix("v")


Files = dict[str, str]


def render_differences(left: tuple[Files, Files], right: tuple[Files, Files]) -> list[str]:
    """How two renderers differ, each given as two renders of the same input ({template: text}).

    Equal text is required per template, except for leaves that a renderer itself renders
    differently each time (a generated password, and what hashes it): those are left out. NOTES.txt
    is compared when both sides have it.
    """
    (left_first, left_second), (right_first, right_second) = left, right
    differences = []
    notes = [path for path in left_first if path.endswith(NOTES) and path in right_first]
    differences += [f"{path} differs" for path in notes if left_first[path].strip() != right_first[path].strip()]
    left_docs, right_docs = documents(left_first), documents(right_first)
    if sorted(left_docs) != sorted(right_docs):
        differences.append(f"templates differ: {sorted(left_docs)} and {sorted(right_docs)}")
    for path in sorted(left_docs.keys() & right_docs.keys()):
        deterministic = left_first[path] == left_second[path] and right_first[path] == right_second[path]
        if deterministic:
            if left_first[path].strip() != right_first[path].strip():
                differences.append(f"{path} differs")
            continue
        generated = _differing_leaves(left_docs[path], documents(left_second)[path])
        generated |= _differing_leaves(right_docs[path], documents(right_second)[path])
        if unexplained := _differing_leaves(left_docs[path], right_docs[path]) - generated:
            differences.append(f"{path} differs at {sorted(map(str, unexplained))}")
    return differences


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _leaves(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _leaves(inner, (*path, index))
    else:
        yield path, value


def _differing_leaves(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    left, right = dict(_leaves(a)), dict(_leaves(b))
    absent = object()
    return {path for path in left.keys() | right.keys() if left.get(path, absent) != right.get(path, absent)}
