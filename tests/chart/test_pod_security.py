"""Every container (the init container and the test pod too) meets Pod Security "restricted"."""

from __future__ import annotations

import pytest

from conftest import EVERY_ESCAPE_HATCH, load_example, merge_values


def restricted_problems(pod_spec: dict) -> list[str]:
    """The Pod Security Standard "restricted" rules, applied to a pod spec."""
    problems = []
    pod_context = pod_spec.get("securityContext", {})
    for container in pod_spec.get("initContainers", []) + pod_spec["containers"]:
        name = container["name"]
        context = container.get("securityContext", {})
        if not (context.get("runAsNonRoot") or pod_context.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot")
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation")
        if context.get("privileged"):
            problems.append(f"{name}: privileged")
        if "ALL" not in context.get("capabilities", {}).get("drop", []):
            problems.append(f"{name}: capabilities.drop ALL")
        if set(context.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities.add")
        seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile")
    for volume in pod_spec.get("volumes", []):
        if "hostPath" in volume:
            problems.append(f"volume {volume['name']}: hostPath")
    return problems


@pytest.mark.parametrize("example", [None, "ref-S3-keys.yaml", "ref-volumes.yaml"])
def test_triton_pod_is_restricted(render, example):
    rendered = render(load_example(example) if example else {})
    assert restricted_problems(rendered.pod) == []


@pytest.mark.parametrize("mode", ["init", "sidecar"])
def test_pod_with_every_escape_hatch_is_restricted(render, mode):
    rendered = render(merge_values(EVERY_ESCAPE_HATCH, {"fetcher": {"mode": mode}}))
    assert rendered.pod["runtimeClassName"] == "nvidia"
    assert restricted_problems(rendered.pod) == []


def test_helm_test_pod_is_restricted(render):
    assert restricted_problems(render({}).one("Pod", hook=True)["spec"]) == []


def test_restricted_check_catches_a_weakened_container(render):
    rendered = render({"fetcher": {"securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": True}}})
    assert "model-fetcher: allowPrivilegeEscalation" in restricted_problems(rendered.pod)


@pytest.mark.parametrize("container", ["fetcher", "triton"])
def test_read_only_root_filesystem_and_non_root_uid(render, container):
    rendered = render({})
    context = getattr(rendered, container)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["runAsUser"] == 1000
    assert rendered.mounts(getattr(rendered, container))["/tmp"]["volume"]["emptyDir"] == {}


def test_only_the_fetcher_sees_secrets_and_triton_cannot_write_the_repository(render):
    rendered = render(load_example("ref-S3-keys.yaml"))
    triton_volumes = {m["volume"].get("secret", {}).get("secretName") for m in rendered.mounts(rendered.triton).values()}
    assert triton_volumes == {None}
    assert rendered.mounts(rendered.triton)["/models"]["readOnly"] is True


def test_service_account_token_is_not_mounted_without_a_role(render):
    rendered = render({})
    assert rendered.pod["automountServiceAccountToken"] is False
    assert rendered.one("ServiceAccount")["automountServiceAccountToken"] is False
