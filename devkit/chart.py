"""The chart rendered by the real Helm engine (helm-python-sdk), and the rendered manifests parsed.

Shared by the chart tests, the pod-contract test and the demo.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART_DIR = ROOT / "chart"


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

    def config_maps(self) -> dict[str, dict[str, str]]:
        """name -> data of every ConfigMap the release creates."""
        return {c["metadata"]["name"]: dict(c.get("data") or {}) for c in self.kind("ConfigMap")}

    def volume(self, name: str) -> dict[str, Any]:
        (volume,) = [v for v in self.pod["volumes"] if v["name"] == name]
        return volume

    def mounts(self, container: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """mountPath -> {mount..., "volume": the pod volume it mounts}."""
        return {
            m["mountPath"]: {**m, "volume": self.volume(m["name"])}
            for m in container.get("volumeMounts", [])
        }

    def mount_holding(self, container: dict[str, Any], path: str) -> tuple[dict[str, Any], str] | None:
        """The deepest mount of `container` that holds `path`, and `path` relative to it; None if none does."""
        target = PurePosixPath(path)
        best: tuple[str, dict[str, Any]] | None = None
        for mount_path, mount in self.mounts(container).items():
            if target == PurePosixPath(mount_path) or PurePosixPath(mount_path) in target.parents:
                if best is None or len(mount_path) > len(best[0]):
                    best = (mount_path, mount)
        return None if best is None else (best[1], str(target.relative_to(best[0])))


def load_chart(chart_dir: Path = CHART_DIR) -> Any:
    import helm_python

    return helm_python.Chart.load(chart_dir)


def render_chart(
    values: dict[str, Any],
    *,
    name: str,
    namespace: str,
    chart: Any = None,
    kube_version: str | None = None,
    api_versions: tuple[str, ...] = (),
) -> Rendered:
    """Render like `helm template NAME chart -n NAMESPACE -f values [--kube-version V] [--api-versions A]`.

    `kube_version` and `api_versions` set `.Capabilities` as those flags do. helm-python-sdk's
    `Chart.render` does not expose them, although the native render of the same Helm engine takes
    them as options; without them the render is `Chart.render`'s, unchanged.
    """
    chart = chart or load_chart()
    if kube_version is None and not api_versions:
        return Rendered(chart.render(values, name=name, namespace=namespace))
    import json

    from helm_python import _native
    from helm_python.chart import _dumps

    options: dict[str, Any] = {"name": name, "namespace": namespace}
    if kube_version is not None:
        options["kube_version"] = kube_version
    if api_versions:
        options["api_versions"] = list(api_versions)
    return Rendered(json.loads(_native.call_string("helm_render", chart._raw(), _dumps(values), json.dumps(options))))


def lint_chart(values: dict[str, Any], *, kube_version: str, namespace: str) -> list[str]:
    """`helm lint --strict --kube-version ...`: its errors and warnings (empty when clean)."""
    import helm_python

    report = helm_python.lint(CHART_DIR, values, strict=True, kube_version=kube_version, namespace=namespace)
    return [str(e) for e in report["errors"]] + [str(m) for m in report["messages"] if m["severity"] >= LINT_WARNING]


LINT_WARNING = 2  # helm's severities: 1 info, 2 warning, 3 error
