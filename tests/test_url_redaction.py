"""Presigned and token-bearing URLs: no query value reaches a log, an error, explain or the termination message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fetcher.errors import ModelSpecError
from fetcher.lease.model_spec import parse_model_spec
from fetcher.lease.uri import redact_url

# What an S3 presigned GET carries (the shape boto3's generate_presigned_url gives), an Azure SAS
# signature and a plain token: every value is a credential until it expires.
SIGNATURE = "5f1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
PRESIGNED = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLEKEY7%2F20261126%2Fus-west-2%2Fs3"
             f"%2Faws4_request&X-Amz-Date=20261126T090000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
             f"&X-Amz-Signature={SIGNATURE}")
SECRETS = (SIGNATURE, "AKIAEXAMPLEKEY7", "sas-sig-0a9b8c", "redirect-token-77d1")


@pytest.mark.parametrize(("url", "shown"), [
    ("https://h/m.zip?" + PRESIGNED,
     "https://h/m.zip?X-Amz-Algorithm=***&X-Amz-Credential=***&X-Amz-Date=***&X-Amz-Expires=***"
     "&X-Amz-SignedHeaders=***&X-Amz-Signature=***"),
    ("https://acct.blob.core.windows.net/c/m.zip?sv=2022-11-02&sig=sas-sig-0a9b8c",
     "https://acct.blob.core.windows.net/c/m.zip?sv=***&sig=***"),
    ("https://user:pw@h/m.zip?token=t#frag", "https://***@h/m.zip?token=***#***"),
    ("https://h/m.zip?bare-token-value", "https://h/m.zip?***"),
    ("https://h/m.zip", "https://h/m.zip"),
    ("https://h/it's?sig=after-a-quote", "https://h/it's?sig=***"),
])
def test_redact_url_hides_userinfo_and_every_query_value(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_urls_inside_text_are_redacted() -> None:
    text = f"name=m,uri=https://h/m.zip?{PRESIGNED} and http://u:p@other/x?sig=sas-sig-0a9b8c"
    redacted = redact_url(text)
    assert not any(secret in redacted for secret in SECRETS) and "u:p" not in redacted
    assert "X-Amz-Signature=***" in redacted and "http://***@other/x?sig=***" in redacted


@pytest.mark.parametrize("raw", [
    f"nam=m,uri=https://h/m.zip?{PRESIGNED}",  # malformed spec
    f"name=m,uri=https://h:99999/m.zip?{PRESIGNED}",  # bad port
])
def test_spec_errors_do_not_echo_query_values(raw: str) -> None:
    with pytest.raises(ModelSpecError) as error:
        parse_model_spec(raw, origin="--model")
    assert SIGNATURE not in str(error.value) and "AKIAEXAMPLEKEY7" not in str(error.value)


def test_query_values_never_appear_in_logs_explain_or_termination_message(tmp_path: Path, https_server,
                                                                          ca_file: Path, cli) -> None:
    https_server.state.redirects["/moved.zip"] = "/nope.zip?token=redirect-token-77d1"
    models = [
        f"name=presigned,uri={https_server.url('my_model.zip')}?{PRESIGNED}",  # installs
        f"name=missing,uri={https_server.url('nope.zip')}?sv=2022-11-02&sig=sas-sig-0a9b8c",  # 404
        f"name=redirected,uri={https_server.url('moved.zip')}",  # 404 after a redirect carrying a token
    ]
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"lease": {"models": models}}))
    termination = tmp_path / "termination"
    outputs = [cli("explain", "--values", values), cli("explain", "--values", values, "--json"),
               cli("fetch", "--values", values, "--dest", tmp_path / "repo", "--ca-bundle", ca_file,
                   "--termination-log", termination, "--log-level", "DEBUG")]
    fetch = outputs[2]
    assert fetch.status == 1
    assert (tmp_path / "repo" / "presigned" / "config.pbtxt").is_file()
    # The server got the whole query; the outputs show its names only.
    assert [r.query for r in https_server.requests_for("/my_model.zip")] == [PRESIGNED]
    everything = "".join(o.stdout + o.stderr for o in outputs) + termination.read_text()
    assert not [secret for secret in SECRETS if secret in everything]
    assert "model=presigned event=start" in fetch.stderr and "X-Amz-Signature=***" in fetch.stderr
    assert "nope.zip?sv=***&sig=***: HTTP 404" in termination.read_text()
    assert "nope.zip?token=***: HTTP 404" in termination.read_text()
    assert f"my_model.zip?{PRESIGNED.split('&')[0].split('=')[0]}=***" in outputs[0].stdout
    assert '"uri": "https://127.0.0.1' in outputs[1].stdout and "sig=***" in outputs[1].stdout
