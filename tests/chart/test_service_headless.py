"""The optional headless Service, for gRPC clients that balance across the pods themselves."""

from __future__ import annotations

from conftest import FULLNAME


def test_no_headless_service_by_default(render):
    assert len(render({}).kind("Service")) == 1


def test_headless_service_resolves_to_the_triton_pods(render):
    rendered = render({"service": {"headless": {"enabled": True}}})
    services = {s["metadata"]["name"]: s for s in rendered.kind("Service")}
    headless = services[f"{FULLNAME}-headless"]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"] == services[FULLNAME]["spec"]["selector"]
    assert headless["spec"]["selector"].items() <= rendered.deployment["spec"]["template"]["metadata"]["labels"].items()
    ports = {p["name"]: p for p in headless["spec"]["ports"]}
    assert ports["grpc"]["port"] == 8001 and ports["grpc"]["appProtocol"] == "grpc"
    assert "metrics" not in ports  # scraped once, through the ClusterIP Service


def test_headless_name_stays_a_dns_label(render):
    rendered = render({"fullnameOverride": "x" * 63, "service": {"headless": {"enabled": True}}})
    names = [s["metadata"]["name"] for s in rendered.kind("Service")]
    assert all(len(n) <= 63 for n in names) and len(set(names)) == 2
