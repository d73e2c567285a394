"""Settings a real cluster needs, passed through to the Deployment and its containers."""

from __future__ import annotations

import pytest

from conftest import FULLNAME

DIGEST = "sha256:" + "a" * 64


def test_runtime_class(render):
    assert render({"runtimeClassName": "nvidia"}).pod["runtimeClassName"] == "nvidia"
    assert "runtimeClassName" not in render({}).pod


def test_topology_spread_gets_the_selector_when_none_is_given(render):
    constraint = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
    own = {**constraint, "topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"team": "ml"}}}
    rendered = render({"topologySpreadConstraints": [constraint, own]})
    first, second = rendered.pod["topologySpreadConstraints"]
    assert first == {**constraint, "labelSelector": {"matchLabels": rendered.deployment["spec"]["selector"]["matchLabels"]}}
    assert second == own
    assert "topologySpreadConstraints" not in render({}).pod


def test_extra_volumes_and_mounts_reach_each_container(render):
    rendered = render({
        "extraVolumes": [{"name": "plugins", "configMap": {"name": "triton-plugins"}}],
        "triton": {"extraVolumeMounts": [{"name": "plugins", "mountPath": "/opt/plugins", "readOnly": True}]},
        "fetcher": {"extraVolumeMounts": [{"name": "plugins", "mountPath": "/etc/plugins"}]},
    })
    assert rendered.volume("plugins") == {"name": "plugins", "configMap": {"name": "triton-plugins"}}
    assert rendered.mounts(rendered.triton)["/opt/plugins"]["readOnly"] is True
    assert rendered.mounts(rendered.fetcher)["/etc/plugins"]["name"] == "plugins"


@pytest.mark.parametrize("container", ["triton", "fetcher"])
def test_env_from(render, container):
    env_from = [{"secretRef": {"name": "proxy"}}, {"configMapRef": {"name": "tuning"}, "prefix": "T_"}]
    rendered = render({container: {"envFrom": env_from}})
    assert getattr(rendered, container)["envFrom"] == env_from
    assert "envFrom" not in getattr(render({}), container)


def test_deployment_annotations_stay_off_the_pod(render):
    rendered = render({"deploymentAnnotations": {"argocd.argoproj.io/sync-wave": "2"}})
    assert rendered.deployment["metadata"]["annotations"] == {"argocd.argoproj.io/sync-wave": "2"}
    assert "argocd.argoproj.io/sync-wave" not in rendered.deployment["spec"]["template"]["metadata"]["annotations"]


def test_pre_stop_sleep_fits_in_the_grace_period(render):
    rendered = render({"triton": {"preStopSleepSeconds": 15}, "terminationGracePeriodSeconds": 90})
    assert rendered.triton["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", "15"]}}}
    assert rendered.pod["terminationGracePeriodSeconds"] == 90
    assert "lifecycle" not in render({"triton": {"preStopSleepSeconds": 0}}).triton


def test_pre_stop_sleep_beyond_the_grace_period_is_refused(render_error):
    message = render_error({"triton": {"preStopSleepSeconds": 30}, "terminationGracePeriodSeconds": 30})
    assert "triton.preStopSleepSeconds=30" in message and "terminationGracePeriodSeconds=30" in message


def test_ephemeral_storage_requests(render):
    rendered = render({
        "triton": {"resources": {"requests": {"cpu": "1", "ephemeral-storage": "25Gi"}, "limits": {"ephemeral-storage": "40Gi"}}},
        "fetcher": {"resources": {"requests": {"ephemeral-storage": "1Gi"}}},
    })
    assert rendered.triton["resources"]["requests"]["ephemeral-storage"] == "25Gi"
    # Merged with the defaults, like any map of values; the GPU limit still comes from triton.gpus.
    assert rendered.triton["resources"]["limits"] == {"ephemeral-storage": "40Gi", "memory": "16Gi", "nvidia.com/gpu": 1}
    assert rendered.fetcher["resources"]["requests"]["ephemeral-storage"] == "1Gi"


def test_images_by_digest(render):
    rendered = render({"triton": {"image": {"digest": DIGEST}}, "fetcher": {"image": {"digest": DIGEST}},
                       "tests": {"image": {"digest": DIGEST}}})
    assert rendered.triton["image"] == f"nvcr.io/nvidia/tritonserver@{DIGEST}"
    assert rendered.fetcher["image"] == f"triton-model-fetcher@{DIGEST}"
    assert rendered.one("Pod", hook=True)["spec"]["containers"][0]["image"] == f"curlimages/curl@{DIGEST}"
    assert render({}).triton["image"] == "nvcr.io/nvidia/tritonserver:25.10-py3"


def test_a_malformed_digest_is_refused(render_error):
    assert "digest" in render_error({"triton": {"image": {"digest": "latest"}}})


def test_global_is_accepted_so_the_chart_can_be_a_subchart(render, render_error):
    rendered = render({"global": {"imageRegistry": "registry.local", "storageClass": "fast"}})
    assert rendered.deployment["metadata"]["name"] == FULLNAME
    assert "additional properties" in render_error({"globals": {}})
