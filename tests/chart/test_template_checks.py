"""Rules JSON Schema cannot say fail the render, in one message naming every value at fault."""

from __future__ import annotations

import pytest

VOLUME = {"repositoryName": "models", "volumeClaimName": "claim-a"}
S3 = {"repositoryName": "models", "bucketName": "tms-models", "awsRegion": "us-west-2"}


@pytest.mark.parametrize(
    "repositories, first, second",
    [
        ({"volumes": [VOLUME], "s3": [S3]}, "volumes[0]", "s3[0]"),
        ({"volumes": [VOLUME], "S3": [S3]}, "volumes[0]", "S3[0]"),
        ({"s3": [S3], "S3": [S3]}, "s3[0]", "S3[0]"),
        ({"volumes": [VOLUME, {**VOLUME, "volumeClaimName": "claim-b"}]}, "volumes[0]", "volumes[1]"),
    ],
)
def test_repository_name_used_twice_is_refused_naming_it(render_error, repositories, first, second):
    message = render_error({"server": {"modelRepositories": repositories}})
    assert 'repositoryName "models" is used twice' in message
    assert f"server.modelRepositories.{first}" in message
    assert f"server.modelRepositories.{second}" in message


def test_all_problems_are_reported_at_once(render_error):
    message = render_error(
        {
            "server": {"modelRepositories": {"volumes": [VOLUME], "s3": [S3, {**S3, "repositoryName": "other"}], "S3": [{**S3, "repositoryName": "other"}]}},
            "lease": {"models": ["name=a,uri=model://missing/a", "name=a,uri=https://h/a.zip"]},
        }
    )
    assert "VALUES ERROR (4)" in message
    assert 'repositoryName "models"' in message and 'repositoryName "other"' in message
    assert 'names repository "missing"' in message
    assert 'model name "a" is already used by lease.models[0]' in message


def test_model_naming_an_unknown_repository_is_refused(render_error):
    message = render_error({"lease": {"models": [{"name": "m", "uri": "model://aws-models/m"}]}})
    assert "lease.models[0]" in message and '"aws-models"' in message


def test_model_uri_without_a_path_is_refused(render_error):
    message = render_error(
        {"server": {"modelRepositories": {"volumes": [VOLUME]}}, "lease": {"models": ["name=m,uri=model://models/"]}}
    )
    assert "lease.models[0]" in message and "no model path" in message


@pytest.mark.parametrize("spec", ["name=my model,uri=https://h/m.zip", "name=../up,uri=https://h/m.zip", "name=-x/y,uri=https://h/m.zip"])
def test_string_spec_with_a_bad_model_name_is_refused(render_error, spec):
    message = render_error({"lease": {"models": [spec]}})
    assert "lease.models[0]" in message and "model name" in message


def test_string_spec_with_a_bad_uri_scheme_is_refused(render_error):
    message = render_error({"lease": {"models": ["name=m,uri=ftp://h/m.zip"]}})
    assert "lease.models[0]" in message and "ftp://h/m.zip" in message


def test_existing_claim_needs_its_name(render_error):
    message = render_error({"modelRepository": {"type": "existingClaim"}})
    assert "modelRepository.existingClaim.claimName" in message


def test_same_repository_name_in_a_model_and_a_list_is_fine(render):
    rendered = render(
        {"server": {"modelRepositories": {"volumes": [VOLUME], "s3": [{**S3, "repositoryName": "bucket"}]}},
         "lease": {"models": ["name=a,uri=model://models/a", " name=b, uri=model://bucket/parent/b"]}}
    )
    assert rendered.fetcher_values["lease"]["models"][1] == " name=b, uri=model://bucket/parent/b"


@pytest.mark.parametrize("kind", ["requests", "limits"])
@pytest.mark.parametrize("asked, gpus", [(2, 1), ("4", 2), (1, 0)])
def test_gpus_in_resources_must_match_triton_gpus(render_error, kind, asked, gpus):
    message = render_error({"triton": {"gpus": gpus, "resources": {kind: {"nvidia.com/gpu": asked}}}})
    assert f"triton.resources.{kind} asks for {asked} nvidia.com/gpu but triton.gpus is {gpus}" in message


def test_gpus_in_resources_equal_to_triton_gpus_are_fine(render):
    resources = render({"triton": {"gpus": 2, "resources": {"requests": {"nvidia.com/gpu": 2}}}}).triton["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == 2 and resources["limits"]["nvidia.com/gpu"] == 2
