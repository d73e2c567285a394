"""networkPolicy: off by default; on, the Triton pods admit the inference and metrics ports only,
each from its listed sources, and the release's `helm test` pod always reaches the HTTP port."""

from __future__ import annotations

import kubernetes_validate
import pytest

from conftest import OLDEST_KUBERNETES, RELEASE
from test_kubernetes_schemas import NEWEST_KUBERNETES

CLIENTS = [{"podSelector": {"matchLabels": {"app": "client"}}},
           {"namespaceSelector": {"matchLabels": {"team": "ml"}}}]
MONITORING = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def policy(render, **settings):
    return render({"networkPolicy": {"enabled": True, **settings}}).one("NetworkPolicy")


def _matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(key) == value for key, value in selector["matchLabels"].items())


def test_off_by_default(render):
    assert render({}).kind("NetworkPolicy") == []


def test_it_selects_the_triton_pods_only(render):
    rendered = render({"networkPolicy": {"enabled": True}})
    selector = rendered.one("NetworkPolicy")["spec"]["podSelector"]
    assert _matches(selector, rendered.deployment["spec"]["template"]["metadata"]["labels"])
    assert not _matches(selector, rendered.one("Pod", hook=True)["metadata"]["labels"])


def test_inference_and_metrics_ports_each_from_their_sources(render):
    rendered = render({"networkPolicy": {"enabled": True, "inferenceFrom": CLIENTS, "metricsFrom": MONITORING}})
    spec = rendered.one("NetworkPolicy")["spec"]
    assert spec["policyTypes"] == ["Ingress"]  # the fetcher's egress to model sources stays open
    inference, metrics = spec["ingress"]
    assert inference["ports"] == [{"port": "http", "protocol": "TCP"}, {"port": "grpc", "protocol": "TCP"}]
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert inference["from"][:2] == CLIENTS and metrics["from"] == MONITORING
    # The named ports are the Triton container's.
    assert {p["name"] for p in rendered.triton["ports"]} == {"http", "grpc", "metrics"}
    # The helm test pod is admitted to the inference ports.
    test_pod = rendered.one("Pod", hook=True)
    (extra,) = inference["from"][2:]
    assert _matches(extra["podSelector"], test_pod["metadata"]["labels"])
    assert extra["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == RELEASE


def test_empty_source_lists_admit_any_source_on_those_ports_only(render):
    spec = policy(render)["spec"]
    assert all("from" not in rule for rule in spec["ingress"])
    assert [port["port"] for rule in spec["ingress"] for port in rule["ports"]] == ["http", "grpc", "metrics"]


@pytest.mark.parametrize("settings", [
    {"inferenceFrom": [{}]},
    {"inferenceFrom": [{"ipBlock": {"except": ["10.0.0.0/8"]}}]},
    {"metricsFrom": "monitoring"},
    {"egress": []},
])
def test_schema_refuses_bad_network_policy_values(render_error, settings):
    render_error({"networkPolicy": {"enabled": True, **settings}})


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, NEWEST_KUBERNETES])
def test_the_policy_is_valid_kubernetes(render, version):
    manifest = policy(render, inferenceFrom=CLIENTS + [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                      metricsFrom=MONITORING)
    kubernetes_validate.validate(manifest, version, strict=True)
