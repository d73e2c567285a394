"""model://<repositoryName>/<path>: which repository a URI names, and what explain says about it.

Every volume and S3 example of the reference's model-repositories page is planned here.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from fetcher.cli.explain import print_plans
from fetcher.errors import ResolutionError, ValuesError
from fetcher.plan import plan_lease
from tests.support.lease_runs import lease, options_for

REFERENCE_VALUES = {
    "server": {
        "modelRepositories": {
            "volumes": [{"repositoryName": "volume-models", "volumeClaimName": "example-volume-claim"}],
            "s3": [
                {"repositoryName": "repo0", "bucketName": "tms-models",
                 "endpoint": "https://s3.us-west-2.amazonaws.com"},
                {"repositoryName": "aws-models", "bucketName": "tms-models", "awsRegion": "us-west-2"},
            ],
            "S3": [
                {"repositoryName": "private-repo", "bucketName": "tms-models",
                 "endpoint": "https://s3.us-west-2.amazonaws.com",
                 "accessKey": "access-key-secret-name", "secretKey": "secret-key-secret-name"},
            ],
        },
        "security": {"aws": {"role": "arn:aws:iam::00000000:role/Tms-s3-role"}},
    },
}


pytestmark = pytest.mark.usefixtures("no_ambient_aws_credentials")


def explain(values: dict, *models: str, tmp_path: Path) -> list[dict]:
    plans = plan_lease(lease(values, *models), options_for(tmp_path, volumes_dir=Path("/mnt/model-volumes")))
    out = io.StringIO()
    print_plans(plans, out, as_json=True)
    return json.loads(out.getvalue())


def test_every_reference_example_resolves(tmp_path: Path) -> None:
    plans = explain(
        REFERENCE_VALUES,
        "name=my_model,uri=model://volume-models/my_model",
        "name=endpoint_model,uri=model://repo0/my_model",
        "name=aws_model,uri=model://aws-models/my_model",
        "name=private_model,uri=model://private-repo/parent/my_model",
        tmp_path=tmp_path,
    )
    by_name = {p["name"]: p for p in plans}
    assert by_name["my_model"] == {
        "name": "my_model",
        "uri": "model://volume-models/my_model",
        "source": "volume",
        "repository": "volume-models",
        "location": "/mnt/model-volumes/volume-models/my_model",
        "secret": None,
        "reason": "volume claim 'example-volume-claim' mounted at /mnt/model-volumes/volume-models; linked into the "
                  "repository (copied instead when its config.pbtxt names the model differently)",
    }
    assert by_name["endpoint_model"]["source"] == "s3"
    assert by_name["endpoint_model"]["location"] == \
        "s3://tms-models/my_model/ (endpoint https://s3.us-west-2.amazonaws.com)"
    assert by_name["aws_model"]["location"] == "s3://tms-models/my_model/ (region us-west-2)"
    # Outside a pod there is no web identity token: explain says what will happen here, and why.
    assert by_name["aws_model"]["secret"] is None
    assert by_name["aws_model"]["reason"].startswith("unsigned requests")
    assert "arn:aws:iam::00000000:role/Tms-s3-role" in by_name["aws_model"]["reason"]
    private = by_name["private_model"]
    assert private["repository"] == "private-repo"  # from the `S3:` spelling
    assert private["location"] == "s3://tms-models/parent/my_model/ (endpoint https://s3.us-west-2.amazonaws.com)"
    assert private["secret"] == "access-key-secret-name/secret-key-secret-name"


def test_an_unknown_repository_lists_the_configured_ones(tmp_path: Path) -> None:
    with pytest.raises(ResolutionError) as caught:
        explain(REFERENCE_VALUES, "name=m,uri=model://nfs-models/m", tmp_path=tmp_path)
    text = str(caught.value)
    assert "model 'm': repository 'nfs-models'" in text
    assert "configured repositories: volume-models, repo0, aws-models, private-repo" in text


def test_an_unknown_repository_with_none_configured_says_so(tmp_path: Path) -> None:
    with pytest.raises(ResolutionError, match="no volumes or s3 repositories are configured"):
        explain({}, "name=m,uri=model://repo0/m", tmp_path=tmp_path)


@pytest.mark.parametrize("other_key", ["s3", "S3"])
def test_the_same_name_in_volumes_and_s3_is_a_values_error(other_key: str, tmp_path: Path) -> None:
    values = {"server": {"modelRepositories": {
        "volumes": [{"repositoryName": "shared", "volumeClaimName": "claim"}],
        other_key: [{"repositoryName": "shared", "bucketName": "bucket", "awsRegion": "us-west-2"}],
    }}}
    with pytest.raises(ValuesError, match="repository name 'shared' is configured more than once"):
        explain(values, tmp_path=tmp_path)


def test_a_volume_and_a_bucket_with_different_names_resolve_to_their_own_sources(tmp_path: Path) -> None:
    plans = explain(REFERENCE_VALUES, "name=a,uri=model://volume-models/x", "name=b,uri=model://aws-models/x",
                    tmp_path=tmp_path)
    assert [p["source"] for p in plans] == ["volume", "s3"]


def test_explain_never_needs_the_secrets_or_the_volume(tmp_path: Path) -> None:
    # Neither the secrets folder nor the volumes exist here: explain still answers.
    plans = explain(REFERENCE_VALUES, "name=p,uri=model://private-repo/my_model",
                    "name=v,uri=model://volume-models/my_model", tmp_path=tmp_path)
    assert [p["name"] for p in plans] == ["p", "v"]
