"""The Service exposes Triton's three ports to the Triton pods only."""

from __future__ import annotations

from conftest import FULLNAME


def test_ports_and_selector(render):
    rendered = render({})
    service = rendered.one("Service")
    assert service["metadata"]["name"] == FULLNAME
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        "http": (8000, "http"), "grpc": (8001, "grpc"), "metrics": (8002, "metrics"),
    }
    pod_labels = rendered.deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    # The helm test pod is not behind the Service.
    test_pod_labels = rendered.one("Pod", hook=True)["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= test_pod_labels.items()
    assert not rendered.deployment["spec"]["selector"]["matchLabels"].items() <= test_pod_labels.items()


def test_type_and_annotations(render):
    service = render({"service": {"type": "LoadBalancer", "annotations": {"x": "y"}}}).one("Service")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["metadata"]["annotations"] == {"x": "y"}
