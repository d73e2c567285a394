"""fetcher.cache: the node's shared model cache, mounted into the fetcher and read-only into Triton."""

from __future__ import annotations

import kubernetes_validate
import pytest

from conftest import OLDEST_KUBERNETES
from test_pod_security import restricted_problems

MOUNT = "/var/cache/model-fetcher"
CLAIM = {"fetcher": {"cache": {"enabled": True, "existingClaim": {"claimName": "model-cache"}}}}
HOST_PATH = {"fetcher": {"cache": {"enabled": True, "type": "hostPath", "maxSize": "500Gi"}}}
SIDECAR = {"kubeVersionOverride": "1.33.0", "fetcher": {"mode": "sidecar", **CLAIM["fetcher"]}}


def env_names(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container.get("env", [])}


def test_off_by_default(render):
    rendered = render({})
    assert "--cache-dir" not in rendered.fetcher["args"]
    assert rendered.triton["command"] == ["tritonserver"]
    assert all(v["name"] != "model-cache" for v in rendered.pod["volumes"])


def test_a_claim_is_mounted_into_the_fetcher_and_read_only_into_triton(render):
    rendered = render(CLAIM)
    args = rendered.fetcher["args"]
    assert args[args.index("--cache-dir") + 1] == MOUNT
    assert args[args.index("--cache-max-size") + 1] == "100Gi"
    assert rendered.volume("model-cache") == {"name": "model-cache", "persistentVolumeClaim": {"claimName": "model-cache"}}
    fetcher_mount = rendered.mounts(rendered.fetcher)[MOUNT]
    triton_mount = rendered.mounts(rendered.triton)[MOUNT]
    assert not fetcher_mount.get("readOnly") and triton_mount["readOnly"] is True
    # Triton holds the pod's lease lock while it runs; both containers name the lease by the pod's UID.
    assert rendered.triton["command"] == ["/bin/sh", "-c", 'exec 9<"$0" && flock --shared 9 && exec tritonserver "$@"',
                                          f"{MOUNT}/pods/$(POD_UID).lock"]
    for container in (rendered.fetcher, rendered.triton):
        assert env_names(container)["POD_UID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.uid"}}
    assert restricted_problems(rendered.pod) == []


def test_host_path_needs_baseline_pod_security(render):
    rendered = render(HOST_PATH)
    assert rendered.volume("model-cache")["hostPath"] == {"path": "/var/cache/triton-model-cache",
                                                          "type": "DirectoryOrCreate"}
    assert restricted_problems(rendered.pod) == ["volume model-cache: hostPath"]
    args = rendered.fetcher["args"]
    assert args[args.index("--cache-max-size") + 1] == "500Gi"


def test_triton_env_values_are_kept_beside_the_pod_uid(render):
    rendered = render({**CLAIM, "triton": {"env": [{"name": "CUDA_VISIBLE_DEVICES", "value": "0"}]}})
    assert {"POD_UID", "CUDA_VISIBLE_DEVICES"} <= set(env_names(rendered.triton))


def test_sidecar_mode_mounts_the_cache_too(render):
    rendered = render(SIDECAR)
    assert rendered.fetcher["args"][0] == "watch" and "--cache-dir" in rendered.fetcher["args"]
    assert rendered.mounts(rendered.triton)[MOUNT]["readOnly"] is True


@pytest.mark.parametrize(("values", "version"), [(CLAIM, OLDEST_KUBERNETES), (HOST_PATH, OLDEST_KUBERNETES),
                                                 (SIDECAR, kubernetes_validate.latest_version() + ".0")],
                         ids=["claim", "hostPath", "sidecar"])
def test_manifests_are_valid(render, values, version):
    for manifest in render(values).manifests():
        kubernetes_validate.validate(manifest, version, strict=True)


def test_a_claim_cache_needs_the_claim_name(render_error):
    message = render_error({"fetcher": {"cache": {"enabled": True}}})
    assert "fetcher.cache.existingClaim.claimName is required" in message


@pytest.mark.parametrize("size", ["100GB", "1.5Gi", "", "10gi"])
def test_max_size_is_bytes_or_a_binary_suffix(render_error, size):
    message = render_error({"fetcher": {"cache": {"enabled": True, "maxSize": size,
                                                  "existingClaim": {"claimName": "c"}}}})
    assert "maxSize" in message
