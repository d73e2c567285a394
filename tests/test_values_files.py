"""Values files: merged like helm -f, checked against schemas/, read into the fetcher's view."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fetcher.errors import ValuesError
from fetcher.lease.values import load_lease, merge_values


def write(path: Path, document: object) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path


def test_later_files_override_earlier_ones_like_helm(tmp_path: Path) -> None:
    base = write(tmp_path / "values.yaml", {
        "server": {"modelRepositories": {"https": [{"secretName": "ngc-model-pull", "targetUri": "api.ngc.nvidia.com"}]},
                   "image": {"tag": "x"}},
        "lease": {"models": ["name=a,uri=https://h.org/a.zip"]},
    })
    lease_file = write(tmp_path / "lease.yaml", {"lease": {"models": [{"name": "b", "uri": "https://h.org/b.zip"}]}})
    lease = load_lease([base, lease_file])
    assert [m.name for m in lease.models] == ["b"]  # lists are replaced, not appended
    assert [h.secret_name for h in lease.https] == ["ngc-model-pull"]  # maps merge


def test_null_deletes_a_key_like_helm() -> None:
    merged = merge_values({"a": {"b": 1, "c": 2}}, {"a": {"b": None}})
    assert merged == {"a": {"c": 2}}


def test_models_from_values_and_command_line_are_joined(tmp_path: Path) -> None:
    values = write(tmp_path / "v.yaml", {"lease": {"models": ["name=a,uri=https://h.org/a.zip"]}})
    lease = load_lease([values], ["name=b,uri=https://h.org/b.zip"])
    assert [m.name for m in lease.models] == ["a", "b"]


def test_a_model_named_twice_is_refused(tmp_path: Path) -> None:
    values = write(tmp_path / "v.yaml", {"lease": {"models": ["name=a,uri=https://h.org/a.zip"]}})
    with pytest.raises(ValuesError, match="'a' is named twice"):
        load_lease([values], ["name=a,uri=https://h.org/other.zip"])


def test_both_spellings_of_s3_are_read(tmp_path: Path) -> None:
    values = write(tmp_path / "v.yaml", {"server": {"modelRepositories": {
        "s3": [{"repositoryName": "repo0", "bucketName": "tms-models", "awsRegion": "us-west-2"}],
        "S3": [{"repositoryName": "repo1", "bucketName": "tms-models", "endpoint": "https://s3.us-west-2.amazonaws.com",
                "accessKey": "access-key-secret-name", "secretKey": "secret-key-secret-name"}],
    }}})
    lease = load_lease([values])
    assert [(s.repository_name, s.endpoint, s.aws_region, s.access_key) for s in lease.s3] == [
        ("repo0", None, "us-west-2", None),
        ("repo1", "https://s3.us-west-2.amazonaws.com", None, "access-key-secret-name"),
    ]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"server": {"modelRepositories": {"volumes": [{"repositoryName": "Volume_Models", "volumeClaimName": "c"}]}}},
         "server.modelRepositories.volumes[0].repositoryName"),
        ({"server": {"modelRepositories": {"s3": [{"repositoryName": "r", "bucketName": "tms-models"}]}}},
         "needs endpoint or awsRegion"),
        ({"server": {"modelRepositories": {"s3": [{"repositoryName": "r", "bucketName": "b12", "endpoint": "s3.amazonaws.com"}]}}},
         "server.modelRepositories.s3[0].endpoint"),
        ({"server": {"modelRepositories": {"https": [{"secretName": "s", "targetUri": "h.org", "tagetUri": "x"}]}}},
         "unknown key(s) tagetUri"),
        ({"server": {"modelRepositories": {"http": []}}}, "unknown key(s) http"),
        ({"server": {"modelRepositories": {"https": [{"targetUri": "h.org"}]}}}, "secretName is required"),
        ({"lease": {"models": [42]}}, "lease.models[0]"),
        # A mapping spec: the exact key at fault, not the string-or-mapping summary.
        ({"lease": {"models": [{"name": "m", "uri": "https://h.org/m.zip", "sha256": "xyz"}]}},
         "lease.models[0].sha256: does not have the expected form"),
        ({"lease": {"models": [{"name": "m"}]}}, "lease.models[0]: uri is required"),
        ({"lease": {"models": [{"name": "m", "url": "https://h.org/m.zip"}]}}, "lease.models[0]: unknown key(s) url"),
        ({"server": {"modelRepositories": {
            "volumes": [{"repositoryName": "dup", "volumeClaimName": "c"}],
            "s3": [{"repositoryName": "dup", "bucketName": "b12", "awsRegion": "us-west-2"}]}}},
         "'dup' is configured more than once"),
    ],
)
def test_bad_values_name_their_path(tmp_path: Path, document: dict, expected: str) -> None:
    values = write(tmp_path / "bad.yaml", document)
    with pytest.raises(ValuesError) as error:
        load_lease([values])
    assert expected in str(error.value)


def test_schema_errors_do_not_echo_the_bad_value(tmp_path: Path) -> None:
    values = write(tmp_path / "bad.yaml", {"server": {"modelRepositories": {
        "https": [{"secretName": "Bearer tok-SECRET-123", "targetUri": "h.org"}]}}})
    with pytest.raises(ValuesError) as error:
        load_lease([values])
    assert "tok-SECRET-123" not in str(error.value)
    assert "secretName" in str(error.value)


@pytest.mark.parametrize(("content", "expected"), [("a: [", "not valid YAML"), ("- 1\n- 2\n", "must be a mapping")])
def test_unreadable_values_files(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(content)
    with pytest.raises(ValuesError, match=expected):
        load_lease([path])
    with pytest.raises(ValuesError, match="cannot read"):
        load_lease([tmp_path / "missing.yaml"])
