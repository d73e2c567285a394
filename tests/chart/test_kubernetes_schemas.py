"""Every rendered manifest is valid for the oldest and newest Kubernetes versions the chart claims."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest
import yaml

from conftest import CHART_DIR, EVERY_ESCAPE_HATCH, EXAMPLES, OLDEST_KUBERNETES, load_example, merge_values

NEWEST_KUBERNETES = kubernetes_validate.latest_version() + ".0"
VERSIONS = [OLDEST_KUBERNETES, NEWEST_KUBERNETES]

FULL = {
    "server": {
        "modelRepositories": {
            "https": [{"secretName": "ngc-model-pull", "targetUri": "api.ngc.nvidia.com"}],
            "volumes": [{"repositoryName": "volume-models", "volumeClaimName": "example-volume-claim"}],
            "s3": [{"repositoryName": "repo0", "bucketName": "tms-models", "endpoint": "https://s3.us-west-2.amazonaws.com"}],
            "S3": [{"repositoryName": "repo1", "bucketName": "tms-models", "awsRegion": "us-west-2",
                    "accessKey": "access-key-secret-name", "secretKey": "secret-key-secret-name"}],
        },
        "security": {"aws": {"role": "arn:aws:iam::123456789012:role/Tms-s3-role"}},
    },
    "lease": {"models": ["name=a,uri=model://volume-models/a", {"name": "b", "uri": "model://repo1/parent/b"}]},
    "fetcher": {"caBundle": {"configMapName": "corp-ca"}, "env": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}]},
    "triton": {"env": [{"name": "CUDA_VISIBLE_DEVICES", "value": "0"}], "extraArgs": ["--log-verbose=1"]},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "nodeSelector": {"nvidia.com/gpu.present": "true"},
    "imagePullSecrets": [{"name": "ngc-registry"}],
}

VALUE_SETS = {
    "defaults": {},
    **{example: load_example(example) for example in EXAMPLES},
    "full": FULL,
    "ephemeral": merge_values(FULL, {"modelRepository": {"type": "ephemeral", "ephemeral": {"storageClassName": "fast"}}}),
    "existing-claim": {"modelRepository": {"type": "existingClaim", "existingClaim": {"claimName": "models"}},
                       "serviceAccount": {"create": False}, "triton": {"gpus": 0, "shmSize": ""}},
    "escape-hatches": merge_values(FULL, EVERY_ESCAPE_HATCH),
}


def test_claimed_versions_match_chart_yaml():
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={OLDEST_KUBERNETES}-0"
    minor = re.match(r"1\.(\d+)", NEWEST_KUBERNETES).group(1)
    assert chart["annotations"]["triton-lease/tested-kubernetes-versions"] == f"1.{OLDEST_KUBERNETES.split('.')[1]} - 1.{minor}"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_manifests_are_valid(render, name, version):
    rendered = render(VALUE_SETS[name])
    manifests = rendered.manifests()
    assert {m["kind"] for m in manifests} >= {"Deployment", "ConfigMap", "Service", "Pod"}
    for manifest in manifests:
        kubernetes_validate.validate(manifest, version, strict=True)


def test_validation_catches_a_broken_manifest(render):
    deployment = render({}).deployment
    deployment["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, NEWEST_KUBERNETES, strict=True)
