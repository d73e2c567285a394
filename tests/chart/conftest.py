"""Shared fixtures of the chart tests: the real Helm engine (helm-python-sdk) renders the chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import helm_python
import pytest
import yaml

from devkit.chart import CHART_DIR, ROOT, Rendered, merge_values, render_chart  # noqa: F401 - shared with the demo

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


@pytest.fixture(scope="session")
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART_DIR)


@pytest.fixture(scope="session")
def render(chart: helm_python.Chart) -> Callable[..., Rendered]:
    """render(values, ...) -> Rendered, with the release name and namespace of every test."""

    def _render(
        values: dict[str, Any] | None = None,
        *,
        name: str = RELEASE,
        namespace: str = NAMESPACE,
        kube_version: str | None = None,
        api_versions: tuple[str, ...] = (),
    ) -> Rendered:
        return render_chart(values or {}, name=name, namespace=namespace, chart=chart,
                            kube_version=kube_version, api_versions=api_versions)

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


# Every optional setting of a real cluster at once (each has its own test file too).
EVERY_ESCAPE_HATCH: dict[str, Any] = {
    "replicaCount": 2,
    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "50%"}},
    "progressDeadlineSeconds": 7200,
    "deploymentAnnotations": {"team": "ml"},
    "runtimeClassName": "nvidia",
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                   "whenUnsatisfiable": "DoNotSchedule"}],
    "extraVolumes": [{"name": "plugins", "configMap": {"name": "triton-plugins"}}],
    "podLabels": {"team": "ml"},
    "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
    "service": {"headless": {"enabled": True}},
    "metrics": {"serviceMonitor": {"enabled": True, "interval": "30s"}},
    "triton": {"envFrom": [{"secretRef": {"name": "triton-env"}}], "homeSizeLimit": "2Gi",
               "extraVolumeMounts": [{"name": "plugins", "mountPath": "/opt/plugins", "readOnly": True}],
               "resources": {"requests": {"ephemeral-storage": "25Gi"}},
               "image": {"digest": "sha256:" + "b" * 64}},
    "fetcher": {"envFrom": [{"configMapRef": {"name": "proxy"}}],
                "extraVolumeMounts": [{"name": "plugins", "mountPath": "/etc/plugins"}]},
}
