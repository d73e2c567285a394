"""The Deployment's pod: the fetcher's command line, the shared repository volume, Triton."""

from __future__ import annotations

import pytest

from conftest import CONFIG_FILE, FULLNAME, REPOSITORY_ROOT, SECRETS_DIR, VOLUMES_DIR

FETCH_ARGS = [
    "fetch",
    "--values", CONFIG_FILE,
    "--dest", REPOSITORY_ROOT,
    "--secrets-dir", SECRETS_DIR,
    "--volumes-dir", VOLUMES_DIR,
    "--termination-log", "/dev/termination-log",
    "--progress-interval", "10",
    "--log-format", "text",
]


def test_fetcher_runs_the_contracted_command(render):
    fetcher = render({}).fetcher
    assert fetcher["command"] == ["model-fetcher"]
    assert fetcher["args"] == FETCH_ARGS
    assert fetcher["terminationMessagePath"] == "/dev/termination-log"


def test_fetcher_extra_args_come_last(render):
    fetcher = render({"fetcher": {"extraArgs": ["--log-level", "debug"]}}).fetcher
    assert fetcher["args"] == FETCH_ARGS + ["--log-level", "debug"]


def test_fetcher_config_is_the_configmap_mounted_read_only(render):
    rendered = render({})
    mount = rendered.mounts(rendered.fetcher)["/etc/model-fetcher"]
    assert mount["readOnly"] is True
    assert mount["volume"]["configMap"]["name"] == rendered.one("ConfigMap")["metadata"]["name"]


def test_repository_volume_is_shared_and_staging_stays_outside_the_root(render):
    rendered = render({})
    fetcher_mount = rendered.mounts(rendered.fetcher)["/models"]
    triton_mount = rendered.mounts(rendered.triton)["/models"]
    assert fetcher_mount["name"] == triton_mount["name"] == "model-repository"
    assert not fetcher_mount.get("readOnly")
    assert triton_mount["readOnly"] is True
    # The repository root is a folder of the volume, so the fetcher's staging folder
    # (/models/.repository.staging) is on the same filesystem but not inside the root.
    assert REPOSITORY_ROOT.startswith("/models/") and REPOSITORY_ROOT != "/models"
    assert f"--model-repository={REPOSITORY_ROOT}" in rendered.triton["args"]
    assert rendered.fetcher["args"][rendered.fetcher["args"].index("--dest") + 1] == REPOSITORY_ROOT


def test_repository_volume_defaults_to_a_size_limited_empty_dir(render):
    rendered = render({})
    assert rendered.volume("model-repository") == {"name": "model-repository", "emptyDir": {"sizeLimit": "20Gi"}}


def test_repository_volume_can_be_a_generic_ephemeral_claim(render):
    rendered = render(
        {"modelRepository": {"type": "ephemeral", "ephemeral": {"storageClassName": "fast-ssd", "size": "200Gi"}}}
    )
    spec = rendered.volume("model-repository")["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert spec["storageClassName"] == "fast-ssd"
    assert spec["resources"]["requests"]["storage"] == "200Gi"
    assert spec["accessModes"] == ["ReadWriteOnce"]


def test_repository_volume_can_be_an_existing_claim(render):
    rendered = render({"modelRepository": {"type": "existingClaim", "existingClaim": {"claimName": "lease-models"}}})
    assert rendered.volume("model-repository") == {
        "name": "model-repository",
        "persistentVolumeClaim": {"claimName": "lease-models"},
    }


def test_secret_named_twice_is_mounted_once(render):
    rendered = render(
        {
            "server": {
                "modelRepositories": {
                    "https": [
                        {"secretName": "shared", "targetUri": "a.example.com"},
                        {"secretName": "shared", "targetUri": "b.example.com"},
                    ],
                    "s3": [{"repositoryName": "r", "bucketName": "tms-models", "awsRegion": "us-west-2",
                            "accessKey": "shared", "secretKey": "s3-secret"}],
                }
            }
        }
    )
    secret_volumes = [v for v in rendered.pod["volumes"] if "secret" in v]
    assert sorted(v["secret"]["secretName"] for v in secret_volumes) == ["s3-secret", "shared"]
    assert all(v["secret"]["optional"] is True for v in secret_volumes)
    paths = sorted(p for p in rendered.mounts(rendered.fetcher) if p.startswith(SECRETS_DIR))
    assert paths == [f"{SECRETS_DIR}/s3-secret", f"{SECRETS_DIR}/shared"]


def test_long_and_dotted_names_give_valid_distinct_volume_names(render):
    long_a = "a" * 60 + ".one"
    long_b = "a" * 60 + ".two"
    rendered = render(
        {"server": {"modelRepositories": {"https": [
            {"secretName": long_a, "targetUri": "a.com"}, {"secretName": long_b, "targetUri": "b.com"}]}}}
    )
    names = [v["name"] for v in rendered.pod["volumes"]]
    assert len(names) == len(set(names))
    import re

    assert all(len(n) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", n) for n in names)
    assert {f"{SECRETS_DIR}/{long_a}", f"{SECRETS_DIR}/{long_b}"} <= set(rendered.mounts(rendered.fetcher))


def test_ca_bundle_is_mounted_and_passed(render):
    rendered = render({"fetcher": {"caBundle": {"configMapName": "corp-ca", "key": "bundle.pem"}}})
    args = rendered.fetcher["args"]
    ca_file = args[args.index("--ca-bundle") + 1]
    mount = rendered.mounts(rendered.fetcher)["/etc/model-fetcher-ca"]
    assert ca_file == "/etc/model-fetcher-ca/ca.crt"
    assert mount["readOnly"] is True
    assert mount["volume"]["configMap"] == {"name": "corp-ca", "items": [{"key": "bundle.pem", "path": "ca.crt"}]}


def test_no_ca_bundle_by_default(render):
    rendered = render({})
    assert "--ca-bundle" not in rendered.fetcher["args"]
    assert "/etc/model-fetcher-ca" not in rendered.mounts(rendered.fetcher)


def test_fetcher_has_a_writable_tmp(render):
    rendered = render({})
    assert rendered.mounts(rendered.fetcher)["/tmp"]["volume"]["emptyDir"] == {}


def test_triton_command_ports_and_extra_args(render):
    triton = render({"triton": {"extraArgs": ["--log-verbose=1"], "image": {"tag": "25.01-py3"}}}).triton
    assert triton["image"] == "nvcr.io/nvidia/tritonserver:25.01-py3"
    assert triton["command"] == ["tritonserver"]
    assert triton["args"] == [
        f"--model-repository={REPOSITORY_ROOT}",
        "--http-port=8000",
        "--grpc-port=8001",
        "--metrics-port=8002",
        "--log-verbose=1",
    ]
    assert {p["name"]: p["containerPort"] for p in triton["ports"]} == {"http": 8000, "grpc": 8001, "metrics": 8002}


def test_default_triton_image_is_a_py3_tag(render):
    image = render({}).triton["image"]
    assert image.startswith("nvcr.io/nvidia/tritonserver:") and image.endswith("-py3")


def test_triton_ports_follow_the_values(render):
    triton = render({"triton": {"ports": {"http": 9000}}}).triton
    assert "--http-port=9000" in triton["args"]
    assert triton["livenessProbe"]["httpGet"]["port"] == "http"
    assert {p["name"]: p["containerPort"] for p in triton["ports"]}["http"] == 9000


def test_probes(render):
    triton = render({"triton": {"startupProbe": {"failureThreshold": 120}}}).triton
    assert triton["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert triton["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert triton["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert triton["startupProbe"]["failureThreshold"] == 120
    assert triton["startupProbe"]["periodSeconds"] == 10


@pytest.mark.parametrize("gpus, expected", [(1, 1), (4, 4), (0, None)])
def test_gpus_become_the_nvidia_limit(render, gpus, expected):
    resources = render({"triton": {"gpus": gpus}}).triton["resources"]
    assert resources["limits"].get("nvidia.com/gpu") == expected
    assert resources["limits"]["memory"] == "16Gi"


def test_gpu_limit_does_not_leak_into_the_fetcher(render):
    assert "nvidia.com/gpu" not in str(render({"triton": {"gpus": 2}}).fetcher["resources"])


def test_scheduling_values_reach_the_pod(render):
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["a100"]}]}]}}}
    pod = render({
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [toleration],
        "affinity": affinity,
        "priorityClassName": "inference",
        "imagePullSecrets": [{"name": "ngc-registry"}],
    }).pod
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [toleration]
    assert pod["affinity"] == affinity
    assert pod["priorityClassName"] == "inference"
    assert pod["imagePullSecrets"] == [{"name": "ngc-registry"}]


def test_checksum_rolls_the_pods_when_the_lease_changes(render):
    def checksum(values):
        return render(values).deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    base = checksum({"lease": {"models": ["name=a,uri=https://h/a.zip"]}})
    assert base == checksum({"lease": {"models": ["name=a,uri=https://h/a.zip"]}})
    assert base != checksum({"lease": {"models": ["name=a,uri=https://h/b.zip"]}})
    assert base != checksum({"lease": {"models": ["name=a,uri=https://h/a.zip"]},
                             "server": {"security": {"aws": {"role": "arn:aws:iam::123456789012:role/r"}}}})
    # A value the fetcher does not read leaves the pods alone.
    assert base == checksum({"lease": {"models": ["name=a,uri=https://h/a.zip"]}, "triton": {"gpus": 2}})


def test_selector_uses_only_name_and_instance(render):
    rendered = render({})
    selector = rendered.deployment["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "triton-lease", "app.kubernetes.io/instance": "lease1"}
    labels = rendered.deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()


def test_names_are_release_scoped(render):
    rendered = render({})
    assert rendered.deployment["metadata"]["name"] == FULLNAME
    other = render({}, name="lease2")
    assert other.deployment["metadata"]["name"] != FULLNAME
    assert render({}, name="my-triton-lease").deployment["metadata"]["name"] == "my-triton-lease"


def test_replicas(render):
    assert render({"replicaCount": 3}).deployment["spec"]["replicas"] == 3
