"""The fetcher's observability in the chart: progress and log format, the sidecar's metrics port,
scraping by annotation, and a PodMonitor only where the cluster has the CRD."""

from __future__ import annotations

import re

import yaml

from conftest import CHART_DIR, FULLNAME, merge_values
from fetcher.cli.main import build_parser
from test_sidecar_mode import MODELS, NEWEST_KUBERNETES, sidecar

POD_MONITOR_API = "monitoring.coreos.com/v1/PodMonitor"
POD_MONITOR = {"fetcher": {"metrics": {"podMonitor": {"enabled": True, "interval": "30s",
                                                      "labels": {"release": "kube-prometheus"}}}}}


def parsed_args(rendered):
    return build_parser().parse_args(rendered.fetcher["args"])


def test_the_sidecar_serves_metrics_on_a_named_port(render):
    rendered = render(sidecar(NEWEST_KUBERNETES, MODELS))
    args = parsed_args(rendered)
    assert args.command == "watch" and args.metrics_port == 9102 and args.metrics_address == "0.0.0.0"
    assert rendered.fetcher["ports"] == [{"name": "fetcher-metrics", "containerPort": 9102, "protocol": "TCP"}]
    annotations = rendered.deployment["spec"]["template"]["metadata"]["annotations"]
    assert not any(key.startswith("prometheus.io/") for key in annotations)
    assert not rendered.kind("PodMonitor")


def test_the_port_is_a_value_and_metrics_can_be_turned_off(render):
    rendered = render(sidecar(NEWEST_KUBERNETES, MODELS, {"fetcher": {"metrics": {"port": 9300}}}))
    assert parsed_args(rendered).metrics_port == 9300
    assert rendered.fetcher["ports"][0]["containerPort"] == 9300
    rendered = render(sidecar(NEWEST_KUBERNETES, MODELS, {"fetcher": {"metrics": {"enabled": False}}}))
    assert parsed_args(rendered).metrics_port == 0 and "ports" not in rendered.fetcher


def test_init_mode_has_no_metrics_port_but_progress_and_log_format(render):
    rendered = render(merge_values(MODELS, {"fetcher": {"progressIntervalSeconds": 30, "logFormat": "json"}}))
    args = parsed_args(rendered)
    assert args.command == "fetch" and args.progress_interval == 30.0 and args.log_format == "json"
    assert "ports" not in rendered.fetcher and "--metrics-port" not in rendered.fetcher["args"]
    defaults = parsed_args(render(MODELS))
    assert defaults.progress_interval == 10.0 and defaults.log_format == "text"


def test_scrape_annotations_name_the_sidecars_port(render):
    values = sidecar(NEWEST_KUBERNETES, MODELS, {"fetcher": {"metrics": {"scrapeAnnotations": True}},
                                                 "podAnnotations": {"team": "ml"}})
    annotations = render(values).deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9102"
    assert annotations["prometheus.io/path"] == "/metrics" and annotations["team"] == "ml"
    init = merge_values(MODELS, {"fetcher": {"metrics": {"scrapeAnnotations": True}}})
    assert "prometheus.io/scrape" not in render(init).deployment["spec"]["template"]["metadata"]["annotations"]


def test_a_pod_monitor_is_created_when_the_cluster_has_the_crd(render):
    rendered = render(sidecar(NEWEST_KUBERNETES, MODELS, POD_MONITOR), api_versions=(POD_MONITOR_API,))
    monitor = rendered.one("PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["name"] == f"{FULLNAME}-fetcher"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    # It selects this release's pods, and scrapes the port the sidecar declares.
    pod_labels = rendered.deployment["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint == {"port": "fetcher-metrics", "path": "/metrics", "interval": "30s"}
    assert endpoint["port"] in [p["name"] for p in rendered.fetcher["ports"]]
    assert "PodMonitor" not in rendered.notes


def test_no_pod_monitor_without_the_crd_and_notes_say_why(render):
    rendered = render(sidecar(NEWEST_KUBERNETES, MODELS, POD_MONITOR))
    assert not rendered.kind("PodMonitor")
    assert "no monitoring.coreos.com/v1\nPodMonitor CRD" in rendered.notes


def test_no_pod_monitor_in_init_mode_even_with_the_crd(render):
    rendered = render(merge_values(MODELS, POD_MONITOR), api_versions=(POD_MONITOR_API,))
    assert not rendered.kind("PodMonitor")
    assert "serves metrics only as a sidecar" in rendered.notes


def test_the_schema_refuses_bad_observability_values(render_error):
    assert "logFormat" in render_error({"fetcher": {"logFormat": "xml"}})
    assert "progressIntervalSeconds" in render_error({"fetcher": {"progressIntervalSeconds": -1}})
    assert "interval" in render_error({"fetcher": {"metrics": {"podMonitor": {"interval": "soon"}}}})
    assert "port" in render_error({"fetcher": {"metrics": {"port": 70000}}})


def _registered_names() -> set[str]:
    from fetcher.metrics import FetchMetrics

    metrics = FetchMetrics()
    names = set()
    for family in metrics.registry.collect():
        names.add(family.name)
        names.update({f"{family.name}_total", f"{family.name}_bucket", f"{family.name}_count", f"{family.name}_sum"})
    return names


def test_the_readmes_alerts_and_metrics_table_name_real_metrics():
    readme = (CHART_DIR / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    (rule,) = [yaml.safe_load(b) for b in blocks if "kind: PrometheusRule" in b]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = {r["alert"]: r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]}
    assert set(alerts) == {"ModelFetchFailing", "ModelSyncStale"}
    registered = _registered_names()
    for expr in alerts.values():
        used = set(re.findall(r"model_fetcher_\w+", expr))
        assert used and used <= registered, expr
    table = set(re.findall(r"^\| `(model_fetcher_\w+)` \|", readme, re.M))
    assert table and table <= registered
    from fetcher.metrics import FetchMetrics

    assert {f.name for f in FetchMetrics().registry.collect()} <= {n.removesuffix("_total") for n in table}
