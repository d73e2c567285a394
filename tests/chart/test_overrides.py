"""Per-lease overrides: `-f lease.yaml` on top of the chart's values, and `--set-json`."""

from __future__ import annotations

import helm_python
import pytest

from conftest import SECRETS_DIR, VOLUMES_DIR, merge_values

SITE = """
server:
  modelRepositories:
    volumes:
      - repositoryName: volume-models
        volumeClaimName: example-volume-claim
    s3:
      - repositoryName: repo0
        bucketName: tms-models
        awsRegion: us-west-2
"""

LEASE = """
lease:
  models:
    - "name=my_model,uri=model://volume-models/my_model"
    - name: other
      uri: model://repo0/parent/other
triton:
  gpus: 2
"""


def test_site_and_lease_files_merge_like_helm_f(render):
    values = merge_values(helm_python.values_from_yaml(SITE), helm_python.values_from_yaml(LEASE))
    rendered = render(values)
    assert [m if isinstance(m, str) else m["name"] for m in rendered.fetcher_values["lease"]["models"]] == [
        "name=my_model,uri=model://volume-models/my_model", "other"]
    assert rendered.fetcher_values["server"]["modelRepositories"]["s3"][0]["repositoryName"] == "repo0"
    assert f"{VOLUMES_DIR}/volume-models" in rendered.mounts(rendered.triton)
    assert rendered.triton["resources"]["limits"]["nvidia.com/gpu"] == 2
    # The chart's default https secret survives a lease file that does not name https.
    assert f"{SECRETS_DIR}/ngc-model-pull" in rendered.mounts(rendered.fetcher)


def test_a_second_lease_file_replaces_the_model_list(render):
    values = merge_values(helm_python.values_from_yaml(SITE), helm_python.values_from_yaml(LEASE),
                          {"lease": {"models": ["name=only,uri=https://h/only.zip"]}})
    assert render(values).fetcher_values["lease"]["models"] == ["name=only,uri=https://h/only.zip"]


def test_set_json_models(render):
    override = helm_python.parse_set_json('lease.models=["name=my_model,uri=model://volume-models/my_model"]')
    values = merge_values(helm_python.values_from_yaml(SITE), override)
    rendered = render(values)
    assert rendered.fetcher_values["lease"]["models"] == ["name=my_model,uri=model://volume-models/my_model"]
    assert rendered.one("Pod", hook=True)["spec"]["containers"][0]["command"][-1] == "my_model"


def test_set_json_mapping_and_repository(render):
    override = merge_values(
        helm_python.parse_set_json('server.modelRepositories.S3=[{"repositoryName":"aws-models","bucketName":"tms-models","awsRegion":"us-west-2"}]'),
        helm_python.parse_set_json('lease.models=[{"name":"my_model","uri":"model://aws-models/my_model"}]'),
    )
    rendered = render(override)
    assert rendered.fetcher_values["server"]["modelRepositories"]["S3"][0]["repositoryName"] == "aws-models"


def test_set_json_typo_is_refused(render_error):
    message = render_error(helm_python.parse_set_json('lease.model=["name=a,uri=https://h/a.zip"]'))
    assert "model" in message and "/lease" in message


def test_chart_merge_keeps_defaults_beside_a_lease(chart):
    merged = chart.merge_values(helm_python.values_from_yaml(LEASE))
    assert merged["triton"]["gpus"] == 2
    assert merged["triton"]["image"]["repository"] == "nvcr.io/nvidia/tritonserver"
    assert merged["server"]["modelRepositories"]["https"][0]["secretName"] == "ngc-model-pull"


@pytest.mark.parametrize("expression", ['lease.models=["my_model"]', 'lease.models=[{"name":"m"}]'])
def test_set_json_bad_model_spec_is_refused(render_error, expression):
    assert "/lease/models/0" in render_error(helm_python.parse_set_json(expression))
