"""Triton's home and caches point at writable mounts under its read-only root filesystem."""

from __future__ import annotations

import pytest

CACHE_VARIABLES = ["HOME", "XDG_CACHE_HOME", "CUDA_CACHE_PATH", "NUMBA_CACHE_DIR"]


def env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def writable_mount(rendered, container, path: str) -> dict | None:
    """The deepest mount holding path, when it is a writable emptyDir."""
    found = rendered.mount_holding(container, path)
    if found is None or found[0].get("readOnly") or "emptyDir" not in found[0]["volume"]:
        return None
    return found[0]


@pytest.mark.parametrize("mode", ["init", "sidecar"])
def test_every_cache_variable_is_on_a_writable_volume(render, mode):
    rendered = render({"fetcher": {"mode": mode}})
    triton = rendered.triton
    assert triton["securityContext"]["readOnlyRootFilesystem"] is True
    variables = env(triton)
    for name in CACHE_VARIABLES:
        assert name in variables, name
        assert writable_mount(rendered, triton, variables[name]), f"{name}={variables[name]} is not writable"
    assert writable_mount(rendered, triton, triton["workingDir"]), "the working directory is not writable"


def test_home_is_its_own_volume_with_an_optional_size_limit(render):
    rendered = render({"triton": {"homeSizeLimit": "2Gi"}})
    home = rendered.mounts(rendered.triton)[env(rendered.triton)["HOME"]]
    assert home["volume"]["emptyDir"] == {"sizeLimit": "2Gi"}
    assert render({}).volume(home["name"])["emptyDir"] == {}


def test_user_env_replaces_a_cache_variable_once(render):
    triton = render({"triton": {"env": [{"name": "CUDA_CACHE_PATH", "value": "/tmp/cuda"}]}}).triton
    names = [e["name"] for e in triton["env"]]
    assert names.count("CUDA_CACHE_PATH") == 1
    assert env(triton)["CUDA_CACHE_PATH"] == "/tmp/cuda"
    assert env(triton)["HOME"] == "/home/triton-server"


def test_the_check_catches_a_path_on_the_root_filesystem(render):
    rendered = render({"triton": {"env": [{"name": "HOME", "value": "/root"}]}})
    assert writable_mount(rendered, rendered.triton, env(rendered.triton)["HOME"]) is None
