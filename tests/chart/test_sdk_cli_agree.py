"""The SDK render (devkit/chart.py, what the other chart tests use) and the `helm` CLI agree.

For the same values, release and namespace, `helm template` renders the same templates, each to the
same text, as helm-python-sdk; `helm install --dry-run=client` the same NOTES; and a value that fails
fails both with the same message; `.Capabilities` set through render_chart (kube_version,
api_versions) render as `--kube-version` and `--api-versions` do. So either can stand for the other.
Whatever templates the chart holds are compared, and one value set switches on every
`enabled: false` of values.yaml, so a new optional template is compared as soon as it exists.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from conftest import CHART_DIR, OLDEST_KUBERNETES, load_example, merge_values, render_chart
from devkit.helm_cli import helm, install_files, render_differences, sdk_kube_version, template_files
from test_helm_cli import CHART_NAME, LEASE_A_MODELS, SHARED_VALUES

RELEASE = "lease-a"
NAMESPACE = "models"
DEFAULTS: dict[str, Any] = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))


def switched_on(values: dict[str, Any]) -> dict[str, Any]:
    """Every `enabled: false` of the values, set to true."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "enabled" and value is False:
            out[key] = True
        elif isinstance(value, dict):
            inner = switched_on(value)
            if inner:
                out[key] = inner
    return out


VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "https-example": load_example("ref-https.yaml"),
    "s3-keys-example": load_example("ref-S3-keys.yaml"),
    "aws-role-example": load_example("ref-aws-role.yaml"),
    "shared-and-lease-sidecar": merge_values(SHARED_VALUES, {
        "lease": {"models": LEASE_A_MODELS},
        "fetcher": {"mode": "sidecar", "caBundle": {"configMapName": "company-ca"}},
        "modelRepository": {"type": "ephemeral"},
        "replicaCount": 2,
        "podLabels": {"team": "vision"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }),
    "every-switch-on": merge_values(SHARED_VALUES, {"lease": {"models": LEASE_A_MODELS}}, switched_on(DEFAULTS),
                                    {"fetcher": {"cache": {"existingClaim": {"claimName": "model-cache"}}}}),
    "refused-by-the-templates": {"fetcher": {"mode": "sidecar"}, "kubeVersionOverride": "1.28.0"},
    "refused-by-the-schema": {"triton": {"gpu": 1}},
}


@pytest.fixture(scope="module")
def kube_version(tmp_path_factory: pytest.TempPathFactory) -> str:
    return sdk_kube_version(tmp_path_factory.mktemp("probe"))


@pytest.fixture(scope="module")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm-home")


def sdk_render(chart: helm_python.Chart, values: dict[str, Any], **capabilities: Any) -> dict[str, str] | str:
    """{template: text}, or the error's message; capabilities: render_chart's kube_version, api_versions."""
    try:
        if capabilities:
            return render_chart(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE, chart=chart,
                                **capabilities).files
        return chart.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE)
    except (helm_python.HelmValuesError, helm_python.HelmRenderError) as error:
        return str(error)


def cli_render(helm_home: Path, values_file: Path, *flags: str, install: bool = False,
               chart_dir: Path = CHART_DIR) -> dict[str, str] | str:
    command = ["install", "--dry-run=client"] if install else ["template"]
    run = helm(*command, RELEASE, chart_dir, "-n", NAMESPACE, "-f", values_file, *flags, home=helm_home)
    if run.status != 0:
        return run.stderr
    return install_files(run.stdout, CHART_NAME) if install else template_files(run.stdout)


def assert_same_renders(sdk: tuple[dict[str, str] | str, dict[str, str] | str],
                        cli: tuple[dict[str, str] | str, dict[str, str] | str]) -> None:
    """Two renders by each engine agree (see render_differences), or both fail with the same message."""
    (sdk_first, sdk_second), (cli_first, cli_second) = sdk, cli
    if isinstance(sdk_first, str) or isinstance(cli_first, str):
        assert isinstance(sdk_first, str) and isinstance(cli_first, str), (sdk_first, cli_first)
        assert cli_first.startswith("Error: ")
        assert sdk_first.strip() in cli_first, (sdk_first, cli_first)
        return
    assert not isinstance(sdk_second, str) and not isinstance(cli_second, str)
    assert render_differences((sdk_first, sdk_second), (cli_first, cli_second)) == []


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_template_renders_what_the_sdk_renders(chart, helm_home, kube_version, tmp_path, name):
    values = VALUE_SETS[name]
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values), encoding="utf-8")
    sdk = (sdk_render(chart, values), sdk_render(chart, values))
    cli = tuple(cli_render(helm_home, values_file, "--kube-version", kube_version) for _ in range(2))
    assert_same_renders(sdk, cli)


@pytest.mark.parametrize("name", ["defaults", "shared-and-lease-sidecar", "refused-by-the-schema"])
def test_helm_install_dry_run_renders_what_the_sdk_renders(chart, helm_home, kube_version, tmp_path, name):
    # install takes no --kube-version: both engines are given the SDK's version as the chart's override.
    values = merge_values(VALUE_SETS[name], {"kubeVersionOverride": kube_version})
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values), encoding="utf-8")
    sdk = (sdk_render(chart, values), sdk_render(chart, values))
    cli = tuple(cli_render(helm_home, values_file, install=True) for _ in range(2))
    assert_same_renders(sdk, cli)


SERVICE_MONITOR = "monitoring.coreos.com/v1/ServiceMonitor"


@pytest.mark.parametrize(("name", "kube_version", "api_versions"), [
    ("every-switch-on", OLDEST_KUBERNETES, ()),
    ("every-switch-on", "1.29.0", (SERVICE_MONITOR,)),
    ("shared-and-lease-sidecar", "1.29.0", (SERVICE_MONITOR,)),
    ("shared-and-lease-sidecar", "1.28.0", ()),
])
def test_capabilities_given_to_the_sdk_render_as_the_cli_flags_do(chart, helm_home, tmp_path, name, kube_version,
                                                                  api_versions):
    # The chart tests set .Capabilities through render_chart(kube_version=, api_versions=); the user
    # through --kube-version and --api-versions.
    values = VALUE_SETS[name]
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values), encoding="utf-8")
    capabilities = {"kube_version": kube_version, "api_versions": api_versions}
    sdk = (sdk_render(chart, values, **capabilities), sdk_render(chart, values, **capabilities))
    flags = ["--kube-version", kube_version, *[f"--api-versions={api}" for api in api_versions]]
    cli = tuple(cli_render(helm_home, values_file, *flags) for _ in range(2))
    assert_same_renders(sdk, cli)
    enabled = values.get("metrics", {}).get("serviceMonitor", {}).get("enabled")
    if enabled and api_versions and (CHART_DIR / "templates" / "servicemonitor.yaml").exists():
        assert any("kind: ServiceMonitor" in text for text in cli[0].values()), "the API version reached the render"


def test_a_difference_would_be_seen(chart, helm_home, kube_version, tmp_path):
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump({"replicaCount": 3}), encoding="utf-8")
    sdk = sdk_render(chart, {"replicaCount": 2})
    cli = cli_render(helm_home, values_file, "--kube-version", kube_version)
    with pytest.raises(AssertionError):
        assert_same_renders((sdk, sdk), (cli, cli))


def test_generated_values_are_told_apart_from_differences(helm_home, kube_version, tmp_path):
    chart_dir = tmp_path / "generated"
    (chart_dir / "templates").mkdir(parents=True)
    (chart_dir / "Chart.yaml").write_text("apiVersion: v2\nname: generated\nversion: 0.1.0\n")
    (chart_dir / "templates" / "secret.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: generated\n"
        "stringData:\n  token: {{ randAlphaNum 24 | quote }}\n  replicas: {{ .Values.count | quote }}\n"
    )
    chart = helm_python.Chart.load(chart_dir)
    values_file = tmp_path / "values.yaml"
    values_file.write_text("count: 1\n")
    sdk = (sdk_render(chart, {"count": 1}), sdk_render(chart, {"count": 1}))
    cli = tuple(cli_render(helm_home, values_file, "--kube-version", kube_version, chart_dir=chart_dir) for _ in range(2))
    assert sdk[0] != sdk[1] and cli[0] != cli[1]  # the token is new on every render
    assert_same_renders(sdk, cli)
    other = (sdk_render(chart, {"count": 2}), sdk_render(chart, {"count": 2}))
    with pytest.raises(AssertionError):
        assert_same_renders(other, cli)
