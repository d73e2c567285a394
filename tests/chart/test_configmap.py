"""The ConfigMap holds the fetcher's view of the values, and only that."""

from __future__ import annotations

from conftest import load_example


def test_holds_only_the_keys_the_fetcher_reads(render):
    values = render({"triton": {"gpus": 2}, "podAnnotations": {"a": "b"}}).fetcher_values
    assert set(values) == {"server", "lease"}
    assert set(values["server"]) == {"modelRepositories", "security"}
    assert set(values["lease"]) == {"models"}


def test_values_file_is_helm_values_shaped_and_exact(render):
    models = ["name=my_model,uri=model://repo0/my_model", {"name": "zip", "uri": "https://h/zip.zip", "sha256": "0" * 64}]
    values = {**load_example("ref-S3-keys.yaml"), "lease": {"models": models}}
    fetcher_values = render(values).fetcher_values
    assert fetcher_values["lease"]["models"] == models
    assert fetcher_values["server"]["modelRepositories"]["S3"] == values["server"]["modelRepositories"]["S3"]
    assert fetcher_values["server"]["modelRepositories"]["https"] == [
        {"secretName": "ngc-model-pull", "targetUri": "api.ngc.nvidia.com"}
    ]
    assert fetcher_values["server"]["security"] == {"aws": {"role": ""}}


def test_fetcher_values_pass_the_fetchers_own_schema(render):
    import json

    import jsonschema

    from conftest import ROOT

    schema = json.loads((ROOT / "schemas" / "values.schema.json").read_text())
    for example in ("ref-S3-keys.yaml", "ref-volumes.yaml", "ref-aws-role.yaml", "ref-https.yaml"):
        jsonschema.Draft7Validator(schema).validate(render(load_example(example)).fetcher_values)


def test_uri_with_quotes_and_colons_survives_yaml(render):
    uri = "https://h:8443/p/x.zip?a='1'&b=\"2\": y"
    rendered = render({"lease": {"models": [{"name": "m", "uri": uri}]}})
    assert rendered.fetcher_values["lease"]["models"][0]["uri"] == uri
