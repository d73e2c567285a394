"""chart/values.schema.json: generated from schemas/, strict, and each rule refuses its bad value."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest

from conftest import CHART_DIR, ROOT

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))
SOURCE = json.loads((ROOT / "schemas" / "values.schema.json").read_text(encoding="utf-8"))


def test_committed_schema_is_the_generators_output():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_chart_schema.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_schema_is_draft_07():
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_fetcher_definitions_are_copied_unchanged_from_schemas():
    for name, definition in SOURCE["definitions"].items():
        assert SCHEMA["definitions"][name] == definition, name
    assert SCHEMA["properties"]["server"]["properties"] == SOURCE["properties"]["server"]["properties"]
    assert SCHEMA["properties"]["lease"] == SOURCE["properties"]["lease"]


def _objects(node, path="#"):
    """Every schema node that declares properties."""
    if isinstance(node, dict):
        if "properties" in node:
            yield path, node
        for key, value in node.items():
            yield from _objects(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _objects(value, f"{path}/{i}")


def test_every_object_with_properties_refuses_unknown_keys():
    loose = [path for path, node in _objects(SCHEMA) if node.get("additionalProperties") is not False]
    assert loose == []
    assert SCHEMA["additionalProperties"] is False


def test_default_values_pass_the_schema(chart, default_values):
    chart.validate_schema(default_values)
    jsonschema.Draft7Validator(SCHEMA).validate(default_values)


def test_every_chart_leaf_key_has_a_description_and_default(default_values):
    def walk(schema, values, path):
        for key, prop in schema.get("properties", {}).items():
            if "$ref" in prop:
                continue
            assert "properties" in prop or prop.get("description"), f"{path}{key} has no description"
            if key not in values:
                continue
            if "properties" in prop:
                walk(prop, values[key], f"{path}{key}.")
            else:
                assert prop["default"] == values[key], f"{path}{key}"

    chart_only = {"properties": {k: v for k, v in SCHEMA["properties"].items() if k not in ("server", "lease")}}
    walk(chart_only, default_values, "")


S3_OK = {"repositoryName": "repo0", "bucketName": "tms-models", "awsRegion": "us-west-2"}

# (id, values, what the message must name)
BAD_VALUES = [
    (
        "repositoryName-uppercase",
        {"server": {"modelRepositories": {"volumes": [{"repositoryName": "Volume_Models", "volumeClaimName": "c"}]}}},
        ["/server/modelRepositories/volumes/0/repositoryName", "Volume_Models"],
    ),
    (
        "repositoryName-space",
        {"server": {"modelRepositories": {"s3": [{**S3_OK, "repositoryName": "repo 0"}]}}},
        ["/server/modelRepositories/s3/0/repositoryName"],
    ),
    (
        "s3-without-endpoint-or-region",
        {"server": {"modelRepositories": {"s3": [{"repositoryName": "repo0", "bucketName": "tms-models"}]}}},
        ["/server/modelRepositories/s3/0", "endpoint", "awsRegion"],
    ),
    (
        "S3-without-endpoint-or-region",
        {"server": {"modelRepositories": {"S3": [{"repositoryName": "repo0", "bucketName": "tms-models"}]}}},
        ["/server/modelRepositories/S3/0", "endpoint", "awsRegion"],
    ),
    (
        # The reference's own comment spells it "http:/s3.us-west-2.amazonaws.com": not a URL.
        "endpoint-single-slash",
        {"server": {"modelRepositories": {"s3": [{**S3_OK, "endpoint": "http:/s3.us-west-2.amazonaws.com"}]}}},
        ["/server/modelRepositories/s3/0/endpoint", "http:/s3.us-west-2.amazonaws.com"],
    ),
    (
        "endpoint-without-scheme",
        {"server": {"modelRepositories": {"s3": [{**S3_OK, "endpoint": "s3.us-west-2.amazonaws.com"}]}}},
        ["/server/modelRepositories/s3/0/endpoint"],
    ),
    (
        "s3-without-bucket",
        {"server": {"modelRepositories": {"s3": [{"repositoryName": "repo0", "awsRegion": "us-west-2"}]}}},
        ["/server/modelRepositories/s3/0", "bucketName"],
    ),
    (
        "typo-in-s3-entry",
        {"server": {"modelRepositories": {"s3": [{**S3_OK, "bucket": "tms-models"}]}}},
        ["/server/modelRepositories/s3/0", "bucket"],
    ),
    (
        "typo-repositories-key",
        {"server": {"modelRepository": {"volumes": []}}},
        ["/server", "modelRepository"],
    ),
    (
        "typo-lowercase-https-key",
        {"server": {"modelRepositories": {"http": [{"secretName": "a", "targetUri": "b.com"}]}}},
        ["/server/modelRepositories", "http"],
    ),
    (
        "typo-top-level",
        {"leases": {"models": []}},
        ["leases"],
    ),
    (
        "typo-security",
        {"server": {"security": {"aws": {"roleArn": "arn:aws:iam::000000000000:role/x"}}}},
        ["/server/security/aws", "roleArn"],
    ),
    (
        "typo-chart-key",
        {"triton": {"image": {"repository": "r", "tag": "t", "pullPolicy": "Always", "digest": "x"}}},
        ["/triton/image", "digest"],
    ),
    (
        "https-without-targetUri",
        {"server": {"modelRepositories": {"https": [{"secretName": "ngc-model-pull"}]}}},
        ["/server/modelRepositories/https/0", "targetUri"],
    ),
    (
        "secretName-not-a-kubernetes-name",
        {"server": {"modelRepositories": {"https": [{"secretName": "My Secret", "targetUri": "a.com"}]}}},
        ["/server/modelRepositories/https/0/secretName"],
    ),
    (
        "role-not-an-arn",
        {"server": {"security": {"aws": {"role": "Tms-s3-role"}}}},
        ["/server/security/aws/role"],
    ),
    (
        "model-spec-without-uri",
        {"lease": {"models": ["name=my_model"]}},
        ["/lease/models/0"],
    ),
    (
        "model-spec-bare-name",
        {"lease": {"models": ["my_model"]}},
        ["/lease/models/0"],
    ),
    (
        "model-mapping-without-uri",
        {"lease": {"models": [{"name": "my_model"}]}},
        ["/lease/models/0"],
    ),
    (
        "model-mapping-bad-scheme",
        {"lease": {"models": [{"name": "my_model", "uri": "ftp://host/m.zip"}]}},
        ["/lease/models/0"],
    ),
    (
        "model-mapping-unknown-key",
        {"lease": {"models": [{"name": "my_model", "uri": "http://a/m.zip", "url": "x"}]}},
        ["/lease/models/0"],
    ),
    (
        "fetcher-mode-unknown",
        {"fetcher": {"mode": "daemon"}},
        ["/fetcher/mode", "init"],
    ),
    (
        "model-repository-type-unknown",
        {"modelRepository": {"type": "hostPath"}},
        ["/modelRepository/type", "emptyDir"],
    ),
    (
        "gpus-negative",
        {"triton": {"gpus": -1}},
        ["/triton/gpus"],
    ),
    (
        "port-out-of-range",
        {"triton": {"ports": {"http": 70000}}},
        ["/triton/ports/http"],
    ),
    (
        "resource-quantity-garbage",
        {"triton": {"resources": {"limits": {"memory": "lots"}}}},
        ["/triton/resources/limits/memory"],
    ),
    (
        "probe-typo",
        {"triton": {"startupProbe": {"failureTreshold": 10}}},
        ["/triton/startupProbe", "failureTreshold"],
    ),
]


@pytest.mark.parametrize("values, names", [pytest.param(v, n, id=i) for i, v, n in BAD_VALUES])
def test_bad_value_is_refused_naming_it(render_error, values, names):
    message = render_error(values)
    for name in names:
        assert name in message, f"{name!r} not in {message!r}"


GOOD_VALUES = [
    ("S3-capital", {"server": {"modelRepositories": {"S3": [S3_OK]}}}),
    ("endpoint-and-region", {"server": {"modelRepositories": {"s3": [{**S3_OK, "endpoint": "http://play.min.io:9000"}]}}}),
    ("ip-target", {"server": {"modelRepositories": {"https": [{"secretName": "ip-pull", "targetUri": "10.0.0.7/models"}]}}}),
    ("mapping-with-sha256", {"lease": {"models": [{"name": "m", "uri": "https://h/m.zip", "sha256": "a" * 64}]}}),
    ("no-role", {"server": {"security": {"aws": {"role": ""}}}}),
    ("gpu-free", {"triton": {"gpus": 0}}),
    ("numeric-quantity", {"triton": {"resources": {"requests": {"cpu": 2}}}}),
]


@pytest.mark.parametrize("values", [pytest.param(v, id=i) for i, v in GOOD_VALUES])
def test_good_value_is_accepted(render, values):
    render(values)


IP_TARGET_URIS = [
    "2001:db8::1",
    "::1",
    "[2001:db8::1]",
    "[2001:db8::1]:8443",
    "[::1]/models/internal",
    "::ffff:192.0.2.1/models",
    "192.0.2.10:8080/models",
]


@pytest.mark.parametrize("target_uri", IP_TARGET_URIS)
def test_ip_target_uris_the_fetcher_takes_pass_the_schema(render, target_uri):
    from fetcher.credentials.target_uri import parse_target_uri
    from fetcher.lease.values import validate_values

    assert parse_target_uri(target_uri).is_ip
    rendered = render({"server": {"modelRepositories": {"https": [{"secretName": "s", "targetUri": target_uri}]}}})
    # The chart passes it on, and the fetcher's own check of the values (the same schema) takes it.
    validate_values(rendered.fetcher_values, origin="the ConfigMap")
    assert rendered.fetcher_values["server"]["modelRepositories"]["https"][0]["targetUri"] == target_uri


def test_an_ipv6_target_uri_chooses_its_secret():
    from fetcher.credentials.target_uri import choose_secret
    from fetcher.lease.values import HttpsRepository

    entries = (HttpsRepository(secret_name="v6", target_uri="[2001:db8::1]:8443/models"),)
    assert choose_secret("https://[2001:db8::1]:8443/models/m.zip", entries).secret_name == "v6"
    assert choose_secret("https://[2001:db8::2]:8443/models/m.zip", entries).secret_name is None


@pytest.mark.parametrize("target_uri", ["[2001:db8::1", "models.example.com/a b", "-bad.example.com", "h?x=1"])
def test_malformed_target_uris_are_refused(render_error, target_uri):
    message = render_error({"server": {"modelRepositories": {"https": [{"secretName": "s", "targetUri": target_uri}]}}})
    assert "targetUri" in message
