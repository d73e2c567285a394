"""Model specs: the tmsctl string form and the mapping form, and the errors for malformed ones."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from fetcher.errors import ModelSpecError
from fetcher.lease.model_spec import parse_model_spec


def test_reference_examples_parse() -> None:
    https = parse_model_spec("name=my_model,uri=http://www.example.com/models/my_model.zip", origin="t")
    assert (https.name, https.uri.scheme, https.uri.text) == ("my_model", "http", "http://www.example.com/models/my_model.zip")
    volume = parse_model_spec("name=my_model,uri=model://volume-models/my_model", origin="t")
    assert (volume.uri.scheme, volume.uri.repository, volume.uri.path) == ("model", "volume-models", "my_model")
    s3 = parse_model_spec("name=my_model,uri=model://aws-models/parent/my_model", origin="t")
    assert (s3.uri.repository, s3.uri.path) == ("aws-models", "parent/my_model")


def test_mapping_form_and_order_and_spaces() -> None:
    spec = parse_model_spec({"name": "m", "uri": "https://h.org/m.zip", "sha256": "A" * 64}, origin="t")
    assert spec.sha256 == "a" * 64
    assert parse_model_spec(" uri=https://h.org/m.zip , name=m ", origin="t").name == "m"


def test_commas_inside_the_url_are_kept() -> None:
    spec = parse_model_spec("name=m,uri=https://h.org/get?files=a,b&x=1", origin="t")
    assert spec.uri.text == "https://h.org/get?files=a,b&x=1"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("my_model", "malformed model spec"),
        ("name=m", "has no uri"),
        ("uri=https://h.org/m.zip", "has no name"),
        ("name=m,uri=", "has no uri"),
        ("name=m,uri=ftp://h.org/m.zip", "unsupported uri"),
        ("name=../x,uri=https://h.org/m.zip", "not a valid Triton model name"),
        ("name=m,uri=model://Volume_Models/m", "not a valid repository name"),
        ("name=m,uri=model://repo/", "names no model path"),
        ("name=m,uri=model://repo/a/../b", "plain folder names"),
        ("name=m,uri=model:///m", "names no repository"),
        ("name=m,name=n,uri=https://h.org/m.zip", "gives name twice"),
        ("name=m,uri=https://h.org:99999/m.zip", "invalid port"),
        ("name=m,uri=https:///m.zip", "has no host"),
        ("name=m,uri=https://h.org/m.zip,sha256=xyz", "64 hexadecimal"),
        ("name=m,colour=red,uri=https://h.org/m.zip", "not a valid Triton model name"),
        ("name=m,https://h.org/m.zip", "has no uri="),
    ],
)
def test_malformed_specs_name_the_problem(raw: str, expected: str) -> None:
    with pytest.raises(ModelSpecError) as error:
        parse_model_spec(raw, origin="lease.models[0]")
    assert expected in str(error.value)
    assert "lease.models[0]" in str(error.value) or "model 'm'" in str(error.value)


def test_credentials_in_a_url_are_refused_and_never_echoed() -> None:
    with pytest.raises(ModelSpecError) as error:
        parse_model_spec("name=m,uri=https://alice:hunter2@h.org/m.zip", origin="t")
    assert "carries credentials" in str(error.value)
    assert "hunter2" not in str(error.value) and "alice" not in str(error.value)


def test_unknown_mapping_keys_are_refused() -> None:
    with pytest.raises(ModelSpecError, match="unknown key"):
        parse_model_spec({"name": "m", "uri": "https://h.org/m.zip", "url": "x"}, origin="t")


@given(st.text(max_size=80))
def test_property_parser_raises_only_its_own_error(raw: str) -> None:
    try:
        spec = parse_model_spec(raw, origin="t")
    except ModelSpecError:
        return
    assert spec.name and spec.uri.text


def test_a_spec_without_uri_blames_the_missing_key_not_the_name() -> None:
    with pytest.raises(ModelSpecError) as error:
        parse_model_spec("name=m,https://h.org/m.zip", origin="--model")
    assert "has no uri=" in str(error.value) and "'uri=' before it" in str(error.value)
    assert "not a valid Triton model name" not in str(error.value)
