"""Every values example of the reference renders, and gives the pod the example asks for."""

from __future__ import annotations

import pytest

from conftest import CONFIG_FILE, EXAMPLES, SECRETS_DIR, VOLUMES_DIR, load_example


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_renders_a_triton_pod_with_the_fetcher_first(render, example):
    rendered = render(load_example(example))
    assert [c["name"] for c in rendered.pod["initContainers"]] == ["model-fetcher"]
    assert [c["name"] for c in rendered.pod["containers"]] == ["triton"]
    # The fetcher reads exactly the example's repositories and lease.
    values = load_example(example)
    fetcher_values = rendered.fetcher_values
    for key, repositories in values["server"]["modelRepositories"].items():
        assert fetcher_values["server"]["modelRepositories"][key] == repositories
    assert fetcher_values["lease"]["models"] == values["lease"]["models"]
    assert rendered.fetcher["args"][rendered.fetcher["args"].index("--values") + 1] == CONFIG_FILE


def secret_mounts(rendered):
    return {
        path: mount["volume"]["secret"]
        for path, mount in rendered.mounts(rendered.fetcher).items()
        if "secret" in mount["volume"]
    }


def test_https_example_mounts_its_secret_in_the_fetcher_only(render):
    rendered = render(load_example("ref-https.yaml"))
    mounts = secret_mounts(rendered)
    # The example's list replaces the default one (and its ngc-model-pull), as Helm merges lists.
    assert set(mounts) == {f"{SECRETS_DIR}/model-pull"}
    assert mounts[f"{SECRETS_DIR}/model-pull"] == {"secretName": "model-pull", "optional": True}
    assert not [p for p in rendered.mounts(rendered.triton) if p.startswith(SECRETS_DIR)]
    https = rendered.fetcher_values["server"]["modelRepositories"]["https"]
    assert https == [{"secretName": "model-pull", "targetUri": "models.company.com/internal-cdn/repository"}]


def test_default_values_carry_the_ngc_model_pull_secret(render):
    rendered = render({})
    assert secret_mounts(rendered) == {
        f"{SECRETS_DIR}/ngc-model-pull": {"secretName": "ngc-model-pull", "optional": True}
    }


def test_volume_example_mounts_the_claim_read_only_in_both_containers(render):
    rendered = render(load_example("ref-volumes.yaml"))
    path = f"{VOLUMES_DIR}/volume-models"
    for container in (rendered.fetcher, rendered.triton):
        mount = rendered.mounts(container)[path]
        assert mount["readOnly"] is True
        assert mount["volume"]["persistentVolumeClaim"] == {"claimName": "example-volume-claim", "readOnly": True}


@pytest.mark.parametrize("example", ["ref-s3-endpoint.yaml", "ref-s3-region.yaml", "ref-S3-keys.yaml"])
def test_s3_examples_reach_the_fetcher_with_their_bucket_settings(render, example):
    rendered = render(load_example(example))
    repositories = rendered.fetcher_values["server"]["modelRepositories"]
    (entry,) = repositories.get("s3", []) + repositories.get("S3", [])
    expected = load_example(example)["server"]["modelRepositories"]
    (given,) = expected.get("s3", []) + expected.get("S3", [])
    assert entry == given
    assert entry["bucketName"] == "tms-models"
    assert entry.get("endpoint") == "https://s3.us-west-2.amazonaws.com" or entry.get("awsRegion") == "us-west-2"


def test_s3_key_secrets_are_mounted_as_files_under_the_secrets_dir(render):
    rendered = render(load_example("ref-S3-keys.yaml"))
    mounts = secret_mounts(rendered)
    assert mounts[f"{SECRETS_DIR}/access-key-secret-name"] == {"secretName": "access-key-secret-name", "optional": True}
    assert mounts[f"{SECRETS_DIR}/secret-key-secret-name"] == {"secretName": "secret-key-secret-name", "optional": True}
    # The default https secret is still there: the example only adds an S3 list.
    assert f"{SECRETS_DIR}/ngc-model-pull" in mounts


def test_aws_role_example_annotates_the_service_account_and_mounts_its_token(render):
    rendered = render(load_example("ref-aws-role.yaml"))
    account = rendered.one("ServiceAccount")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == "arn:aws:iam::00000000:role/Tms-s3-role"
    assert account["automountServiceAccountToken"] is True
    assert rendered.pod["automountServiceAccountToken"] is True
    assert rendered.pod["serviceAccountName"] == account["metadata"]["name"]
    assert rendered.fetcher_values["server"]["security"]["aws"]["role"] == "arn:aws:iam::00000000:role/Tms-s3-role"


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e != "ref-aws-role.yaml"])
def test_without_a_role_no_token_and_no_annotation(render, example):
    rendered = render(load_example(example))
    account = rendered.one("ServiceAccount")
    assert "eks.amazonaws.com/role-arn" not in (account["metadata"].get("annotations") or {})
    assert account["automountServiceAccountToken"] is False
    assert rendered.pod["automountServiceAccountToken"] is False


def test_all_reference_examples_together(render):
    """The reference's lists in one release: every volume and secret in place, names distinct."""
    from conftest import merge_values

    values = merge_values(load_example("ref-volumes.yaml"), load_example("ref-S3-keys.yaml"), load_example("ref-https.yaml"))
    values["server"]["modelRepositories"]["s3"] = load_example("ref-aws-role.yaml")["server"]["modelRepositories"]["s3"]
    values["lease"]["models"] = [
        "name=http_model,uri=http://www.example.com/models/my_model.zip",
        "name=volume_model,uri=model://volume-models/my_model",
        "name=s3_model,uri=model://repo0/my_model",
        {"name": "aws_model", "uri": "model://aws-models/parent/my_model"},
    ]
    rendered = render(values)
    names = [v["name"] for v in rendered.pod["volumes"]]
    assert len(names) == len(set(names))
    assert set(secret_mounts(rendered)) == {
        f"{SECRETS_DIR}/{name}" for name in ("model-pull", "access-key-secret-name", "secret-key-secret-name")
    }
    assert f"{VOLUMES_DIR}/volume-models" in rendered.mounts(rendered.triton)
