"""Shared fixtures of the chart tests: the real Helm engine (helm-python-sdk) renders the chart."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import helm_python
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "chart"
RELEASE = "lease1"
NAMESPACE = "models"
FULLNAME = f"{RELEASE}-triton-lease"

# The Kubernetes versions the chart claims (Chart.yaml kubeVersion ">=1.25.0-0"): the oldest, and
# the newest whose schemas kubernetes-validate ships.
OLDEST_KUBERNETES = "1.25.0"

# Paths of the contract with the fetcher.
CONFIG_FILE = "/etc/model-fetcher/values.yaml"
SECRETS_DIR = "/var/run/secrets/model-fetcher"
VOLUMES_DIR = "/mnt/model-volumes"
REPOSITORY_ROOT = "/models/repository"


def merge_values(*layers: dict[str, Any]) -> dict[str, Any]:
    """Merge values like `helm -f a.yaml -f b.yaml`: mappings merge, anything else is replaced."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = _merge(merged, layer)
    return merged


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class Rendered:
    """The manifests of one render, parsed."""

    files: dict[str, str]
    docs: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for path, text in self.files.items():
            if path.endswith("NOTES.txt"):
                continue
            for doc in yaml.safe_load_all(text):
                if doc:
                    doc.setdefault("_template", path)
                    self.docs.append(doc)

    @property
    def notes(self) -> str:
        return next((text for path, text in self.files.items() if path.endswith("NOTES.txt")), "")

    def manifests(self) -> list[dict[str, Any]]:
        """The documents without the test helper key."""
        return [{k: v for k, v in doc.items() if k != "_template"} for doc in self.docs]

    def kind(self, kind: str, hook: bool | None = False) -> list[dict[str, Any]]:
        found = []
        for doc in self.manifests():
            if doc["kind"] != kind:
                continue
            is_hook = "helm.sh/hook" in (doc["metadata"].get("annotations") or {})
            if hook is None or hook == is_hook:
                found.append(doc)
        return found

    def one(self, kind: str, hook: bool = False) -> dict[str, Any]:
        found = self.kind(kind, hook)
        assert len(found) == 1, f"expected one {kind}, found {len(found)}"
        return found[0]

    @property
    def deployment(self) -> dict[str, Any]:
        return self.one("Deployment")

    @property
    def pod(self) -> dict[str, Any]:
        return self.deployment["spec"]["template"]["spec"]

    @property
    def fetcher(self) -> dict[str, Any]:
        (container,) = [c for c in self.pod["initContainers"] if c["name"] == "model-fetcher"]
        return container

    @property
    def triton(self) -> dict[str, Any]:
        (container,) = [c for c in self.pod["containers"] if c["name"] == "triton"]
        return container

    @property
    def fetcher_values(self) -> dict[str, Any]:
        """The values file the fetcher reads, from the ConfigMap."""
        configmap = self.one("ConfigMap")
        return yaml.safe_load(configmap["data"]["values.yaml"])

    def volume(self, name: str) -> dict[str, Any]:
        (volume,) = [v for v in self.pod["volumes"] if v["name"] == name]
        return volume

    def mounts(self, container: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """mountPath -> {mount..., "volume": the pod volume it mounts}."""
        return {
            m["mountPath"]: {**m, "volume": self.volume(m["name"])}
            for m in container.get("volumeMounts", [])
        }


@pytest.fixture(scope="session")
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART_DIR)


@pytest.fixture(scope="session")
def render(chart: helm_python.Chart) -> Callable[..., Rendered]:
    """render(values, ...) -> Rendered, with the release name and namespace of every test."""

    def _render(values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE) -> Rendered:
        return Rendered(chart.render(values or {}, name=name, namespace=namespace))

    return _render


@pytest.fixture(scope="session")
def render_error(chart: helm_python.Chart) -> Callable[..., str]:
    """render_error(values) -> the message of the Helm error the values must cause."""

    def _render_error(values: dict[str, Any]) -> str:
        with pytest.raises((helm_python.HelmValuesError, helm_python.HelmRenderError)) as info:
            chart.render(values, name=RELEASE, namespace=NAMESPACE)
        return str(info.value)

    return _render_error


@pytest.fixture(scope="session")
def default_values() -> dict[str, Any]:
    return yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))


def load_example(name: str) -> dict[str, Any]:
    return yaml.safe_load((Path(__file__).parent / "examples" / name).read_text(encoding="utf-8"))


EXAMPLES = sorted(p.name for p in (Path(__file__).parent / "examples").glob("*.yaml"))
