"""`helm lint` (strict) finds nothing above info level, for every claimed Kubernetes version."""

from __future__ import annotations

import helm_python
import pytest

from conftest import CHART_DIR, EVERY_ESCAPE_HATCH, EXAMPLES, load_example

WARNING = 2


@pytest.mark.parametrize("kube_version", ["v1.25.0", "v1.37.0"])
@pytest.mark.parametrize("example", [None, *EXAMPLES])
def test_lint_is_clean(example, kube_version):
    values = load_example(example) if example else None
    report = helm_python.lint(CHART_DIR, values, strict=True, kube_version=kube_version, namespace="models")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= WARNING] == []


@pytest.mark.parametrize("kube_version", ["v1.25.0", "v1.37.0"])
def test_lint_is_clean_with_every_escape_hatch(kube_version):
    report = helm_python.lint(CHART_DIR, EVERY_ESCAPE_HATCH, strict=True, kube_version=kube_version, namespace="models")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= WARNING] == []


def test_lint_reports_bad_values():
    report = helm_python.lint(CHART_DIR, {"triton": {"imag": {}}}, strict=True)
    assert any("imag" in error for error in report["errors"])


def test_lint_is_clean_in_sidecar_mode_with_the_model_control_secret_and_a_network_policy():
    values = {"fetcher": {"mode": "sidecar"},
              "networkPolicy": {"enabled": True, "inferenceFrom": [{"podSelector": {"matchLabels": {"app": "c"}}}]}}
    report = helm_python.lint(CHART_DIR, values, strict=True, kube_version="v1.37.0", namespace="models")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= WARNING] == []
