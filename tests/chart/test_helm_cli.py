"""The user's own Helm commands, run with the real `helm` CLI (make venv installs it).

The other chart tests drive Helm's engine through its Python SDK; these run the commands, flags and
file handling of the README: a shared values file plus one file per lease, `--set-json`,
`--kube-version`, `lint --strict`, `install --dry-run=client`, and the packaged chart.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import CHART_DIR, EXAMPLES, OLDEST_KUBERNETES
from devkit.chart import Rendered
from devkit.helm_cli import CliRun, helm, install_files, render_differences, template_files

CHART_NAME = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))["name"]
CHART_VERSION = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))["version"]
EXAMPLES_DIR = Path(__file__).parent / "examples"
NAMESPACE = "models"
SIDECAR_KUBERNETES = "1.29.0"
# Each mode at the oldest Kubernetes it supports.
MODES = [("init", OLDEST_KUBERNETES), ("sidecar", SIDECAR_KUBERNETES)]

# The README's split: repositories shared by every lease, and one lease's models.
SHARED_VALUES: dict[str, Any] = {
    "fetcher": {"image": {"repository": "registry.example.com/triton-model-fetcher"}},
    "server": {
        "modelRepositories": {
            "https": [{"secretName": "company-models", "targetUri": "models.company.com/internal-cdn/repository"}],
            "volumes": [{"repositoryName": "volume-models", "volumeClaimName": "example-volume-claim"}],
            "s3": [
                {"repositoryName": "repo0", "bucketName": "tms-models", "endpoint": "https://s3.us-west-2.amazonaws.com",
                 "accessKey": "access-key-secret-name", "secretKey": "secret-key-secret-name"},
                {"repositoryName": "aws-models", "bucketName": "tms-aws-models", "awsRegion": "us-west-2"},
            ],
        },
        "security": {"aws": {"role": "arn:aws:iam::000000000000:role/Tms-s3-role"}},
    },
    "triton": {"gpus": 1},
}
LEASE_A_MODELS = [
    "name=my_model,uri=https://cdn.models.company.com/internal-cdn/repository/my_model.zip",
    "name=resnet,uri=model://volume-models/resnet50",
    "name=bert,uri=model://repo0/nlp/bert",
]
LEASE_B_MODELS = ["name=my_model,uri=model://aws-models/my_model"]


@pytest.fixture(scope="module")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm-home")


@pytest.fixture(scope="module")
def lease_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with values.yaml (shared) and lease-a.yaml, as the README has the user write them."""
    folder = tmp_path_factory.mktemp("lease-files")
    (folder / "values.yaml").write_text(yaml.safe_dump(SHARED_VALUES), encoding="utf-8")
    (folder / "lease-a.yaml").write_text(yaml.safe_dump({"lease": {"models": LEASE_A_MODELS}}), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def packaged_chart(helm_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("package")
    run = helm("package", CHART_DIR, "--destination", out, home=helm_home).check()
    archive = out / f"{CHART_NAME}-{CHART_VERSION}.tgz"
    assert archive.is_file(), run.stdout
    assert str(archive) in run.stdout
    return archive


def rendered_template(run: CliRun) -> Rendered:
    run.check()
    return Rendered(template_files(run.stdout))


def rendered_install(run: CliRun) -> Rendered:
    run.check()
    return Rendered(install_files(run.stdout, CHART_NAME))


def lease_models(rendered: Rendered) -> list[Any]:
    return rendered.fetcher_values["lease"]["models"]


def assert_mode(rendered: Rendered, mode: str) -> None:
    fetcher = rendered.fetcher
    words = [*fetcher.get("command", []), *fetcher.get("args", [])]
    if mode == "sidecar":
        assert fetcher.get("restartPolicy") == "Always"
        assert "watch" in words and "fetch" not in words, words
    else:
        assert "restartPolicy" not in fetcher
        assert "fetch" in words and "watch" not in words, words


# -- helm lint --------------------------------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES)
def test_lint_strict_passes_with_each_reference_example(helm_home, example):
    run = helm("lint", "--strict", CHART_DIR, "--namespace", NAMESPACE, "--kube-version", OLDEST_KUBERNETES,
               "-f", EXAMPLES_DIR / example, home=helm_home)
    assert run.status == 0, run.stdout + run.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in run.stdout
    assert "[WARNING]" not in run.stdout and "[ERROR]" not in run.stdout


def test_lint_strict_fails_on_a_value_the_schema_refuses(helm_home):
    run = helm("lint", "--strict", CHART_DIR, "--set", "triton.gpu=1", home=helm_home)
    assert run.status == 1
    assert "[ERROR]" in run.stdout and "additional properties 'gpu' not allowed" in run.stdout
    assert "1 chart(s) failed" in run.stderr


# -- helm template / install --dry-run=client: the README's commands ---------------------------------


@pytest.mark.parametrize(("mode", "kube_version"), MODES)
def test_template_with_shared_values_and_one_lease_file(helm_home, lease_files, mode, kube_version):
    run = helm("template", "lease-a", CHART_DIR, "-n", NAMESPACE, "-f", "values.yaml", "-f", "lease-a.yaml",
               "--set", f"fetcher.mode={mode}", "--kube-version", kube_version, home=helm_home, cwd=lease_files)
    rendered = rendered_template(run)
    assert_mode(rendered, mode)
    assert rendered.deployment["metadata"]["name"] == "lease-a-triton-lease"
    assert rendered.deployment["metadata"]["namespace"] == NAMESPACE
    # Both files reach the fetcher: the lease's models and the shared repositories.
    assert lease_models(rendered) == LEASE_A_MODELS
    repositories = rendered.fetcher_values["server"]["modelRepositories"]
    assert repositories["s3"] == SHARED_VALUES["server"]["modelRepositories"]["s3"]
    assert rendered.fetcher["image"].startswith("registry.example.com/triton-model-fetcher:")


@pytest.mark.parametrize(("mode", "kube_version"), MODES)
def test_template_with_set_json_lease(helm_home, lease_files, mode, kube_version):
    run = helm("template", "lease-b", CHART_DIR, "-n", NAMESPACE, "-f", "values.yaml",
               "--set-json", f"lease.models={json.dumps(LEASE_B_MODELS)}", "--set", f"fetcher.mode={mode}",
               "--kube-version", kube_version, home=helm_home, cwd=lease_files)
    rendered = rendered_template(run)
    assert_mode(rendered, mode)
    assert lease_models(rendered) == LEASE_B_MODELS


def test_later_file_overrides_earlier_like_the_fetcher_merge(helm_home, lease_files, tmp_path):
    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump({"lease": {"models": LEASE_B_MODELS}, "triton": {"gpus": 0}}))
    run = helm("template", "lease-a", CHART_DIR, "-f", lease_files / "values.yaml", "-f", lease_files / "lease-a.yaml",
               "-f", override, "--kube-version", SIDECAR_KUBERNETES, home=helm_home)
    rendered = rendered_template(run)
    assert lease_models(rendered) == LEASE_B_MODELS  # lists are replaced, not appended
    assert "nvidia.com/gpu" not in json.dumps(rendered.triton.get("resources", {}))


def test_kube_version_decides_whether_sidecar_mode_renders(helm_home, lease_files):
    run = helm("template", "lease-a", CHART_DIR, "-f", lease_files / "values.yaml", "--set", "fetcher.mode=sidecar",
               "--kube-version", "1.28.0", home=helm_home)
    assert run.status == 1
    assert run.stdout == ""
    assert "fetcher.mode=sidecar needs Kubernetes 1.29 or newer" in run.stderr
    assert "--kube-version" in run.stderr  # the way out, as the user reads it


@pytest.mark.parametrize("mode", ["init", "sidecar"])
def test_install_dry_run_client_with_lease_file(helm_home, lease_files, mode):
    run = helm("install", "lease-a", CHART_DIR, "-n", NAMESPACE, "-f", "values.yaml", "-f", "lease-a.yaml",
               "--set", f"fetcher.mode={mode}", "--dry-run=client", home=helm_home, cwd=lease_files)
    rendered = rendered_install(run)
    assert "STATUS: pending-install" in run.stdout
    assert_mode(rendered, mode)
    assert lease_models(rendered) == LEASE_A_MODELS
    assert rendered.kind("Pod", hook=True), "the helm test pod is a hook of the release"
    assert 'lease "lease-a"' in rendered.notes


def test_install_dry_run_client_with_set_json(helm_home, lease_files):
    run = helm("install", "lease-b", CHART_DIR, "-n", NAMESPACE, "-f", "values.yaml",
               "--set-json", f"lease.models={json.dumps(LEASE_B_MODELS)}", "--dry-run=client",
               home=helm_home, cwd=lease_files)
    assert lease_models(rendered_install(run)) == LEASE_B_MODELS


def test_install_dry_run_refuses_sidecar_below_1_29_through_the_override(helm_home, lease_files):
    # install takes no --kube-version: kubeVersionOverride is the user's way to render for a cluster.
    run = helm("install", "lease-a", CHART_DIR, "-f", lease_files / "values.yaml", "--dry-run=client",
               "--set", "fetcher.mode=sidecar", "--set", "kubeVersionOverride=1.28.0", home=helm_home)
    assert run.status == 1
    assert "fetcher.mode=sidecar needs Kubernetes 1.29 or newer" in run.stderr


# -- a schema error, as the user sees it -------------------------------------------------------------


@pytest.mark.parametrize("command", ["template", "install"])
def test_schema_error_in_a_lease_file_names_the_value(helm_home, lease_files, tmp_path, command):
    typo = tmp_path / "lease-typo.yaml"
    typo.write_text("lease:\n  model:\n    - name=my_model,uri=model://repo0/my_model\n")
    extra = ["--dry-run=client"] if command == "install" else []
    run = helm(command, "lease-a", CHART_DIR, "-f", lease_files / "values.yaml", "-f", typo, *extra, home=helm_home)
    assert run.status == 1
    assert run.stdout == ""
    assert run.stderr.startswith("Error: ")
    assert "values don't meet the specifications of the schema" in run.stderr
    assert "at '/lease': additional properties 'model' not allowed" in run.stderr


def test_schema_error_from_set_json_names_the_model_spec(helm_home):
    run = helm("template", "lease-a", CHART_DIR, "--set-json", 'lease.models=[{"name": "m"}]', home=helm_home)
    assert run.status == 1
    assert "at '/lease/models/0'" in run.stderr and "missing property 'uri'" in run.stderr


# -- helm package, and the same commands on the .tgz --------------------------------------------------


def test_package_holds_the_chart_with_its_schema_and_readme(packaged_chart):
    with tarfile.open(packaged_chart) as archive:
        names = set(archive.getnames())
    expected = {f"{CHART_NAME}/{p.relative_to(CHART_DIR).as_posix()}" for p in CHART_DIR.rglob("*") if p.is_file()}
    assert expected <= names, expected - names
    assert f"{CHART_NAME}/values.schema.json" in names


@pytest.mark.parametrize(("mode", "kube_version"), MODES)
def test_packaged_chart_renders_as_the_folder_does(helm_home, lease_files, packaged_chart, mode, kube_version):
    args = ["-n", NAMESPACE, "-f", "values.yaml", "-f", "lease-a.yaml", "--set", f"fetcher.mode={mode}"]

    def renders(chart: Path) -> tuple[dict[str, str], dict[str, str]]:
        runs = [helm("template", "lease-a", chart, *args, "--kube-version", kube_version, home=helm_home,
                     cwd=lease_files).check() for _ in range(2)]
        return template_files(runs[0].stdout), template_files(runs[1].stdout)

    from_folder, from_package = renders(CHART_DIR), renders(packaged_chart)
    assert from_package[0], "nothing rendered"
    assert render_differences(from_folder, from_package) == []
    installed = rendered_install(helm("install", "lease-a", packaged_chart, *args, "--dry-run=client",
                                      home=helm_home, cwd=lease_files))
    assert_mode(installed, mode)
    assert lease_models(installed) == LEASE_A_MODELS


def test_packaged_chart_keeps_its_schema(helm_home, packaged_chart):
    run = helm("template", "lease-a", packaged_chart, "--set", "triton.gpu=1", home=helm_home)
    assert run.status == 1
    assert "additional properties 'gpu' not allowed" in run.stderr


def test_packaged_chart_lints_strict(helm_home, packaged_chart):
    run = helm("lint", "--strict", packaged_chart, "--kube-version", OLDEST_KUBERNETES,
               "-f", EXAMPLES_DIR / "ref-volumes.yaml", home=helm_home)
    assert run.status == 0, run.stdout + run.stderr
