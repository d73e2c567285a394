"""The ServiceMonitor for Triton's metrics: only when switched on and the CRD exists."""

from __future__ import annotations

SERVICE_MONITOR = "monitoring.coreos.com/v1/ServiceMonitor"
ON = {"metrics": {"serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prometheus"}}}}


def test_created_when_enabled_and_the_crd_exists(render):
    rendered = render(ON, api_versions=(SERVICE_MONITOR,))
    monitor = rendered.one("ServiceMonitor")
    service = rendered.one("Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "15s"}
    assert "metrics" in {p["name"] for p in service["spec"]["ports"]}
    assert "no monitoring.coreos.com/v1" not in rendered.notes


def test_skipped_with_a_warning_when_the_crd_is_missing(render):
    rendered = render(ON)
    assert rendered.kind("ServiceMonitor") == []
    assert "metrics.serviceMonitor.enabled is true, but the cluster has no monitoring.coreos.com/v1" in rendered.notes


def test_not_created_when_switched_off(render):
    assert render({}, api_versions=(SERVICE_MONITOR,)).kind("ServiceMonitor") == []
