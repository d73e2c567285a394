"""Presigned GET URLs made without boto3's per-call machinery, checked by servers that verify them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3
from botocore.config import Config
from botocore.credentials import Credentials

from devkit.s3_server import TEST_ACCESS_KEY, TEST_SECRET_KEY, S3Endpoint, moto_s3, put_objects, rclone_s3
from fetcher.sources.s3_presign import PROBE_KEY, Presigner

# Keys a naive URL builder gets wrong: spaces, plus, percent, tilde, unicode, nested folders.
KEYS = {
    "model/1/model.onnx": b"weights" * 100,
    "model/vocab files/tok+en%20ized~v2.json": b'{"a": 1}',
    "model/ünïcode/ß.bin": bytes(range(256)),
}
SIGNED_BY_BOTH = {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Expires", "X-Amz-SignedHeaders"}


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    root = tmp_path_factory.mktemp("presign-root")
    with rclone_s3(root, keys=(TEST_ACCESS_KEY, TEST_SECRET_KEY)) as endpoint:
        put_objects(endpoint.client(), "bucket", KEYS)
        yield endpoint


def client_for(endpoint: S3Endpoint, secret: str | None = None) -> Any:
    import boto3

    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint.url, region_name="us-east-1",
        aws_access_key_id=endpoint.access_key, aws_secret_access_key=secret or endpoint.secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def presigner(endpoint: S3Endpoint, secret: str | None = None) -> Presigner:
    credentials = Credentials(endpoint.access_key, secret or endpoint.secret_key)
    return Presigner(client_for(endpoint, secret), "bucket", lambda: credentials, 600)


@pytest.mark.parametrize("key", sorted(KEYS))
def test_a_verifying_server_serves_every_key(private: S3Endpoint, key: str) -> None:
    signer = presigner(private)
    assert signer.base is not None and signer.base.endswith("/bucket/")
    response = urllib3.PoolManager().request("GET", signer.url(key, {}))
    assert response.status == 200
    assert response.data == KEYS[key]


def test_signed_headers_and_an_unsigned_range_are_accepted(private: S3Endpoint) -> None:
    key = "model/1/model.onnx"
    etag = private.client().head_object(Bucket="bucket", Key=key)["ETag"]
    signer = presigner(private)
    whole = {"If-Match": etag, "x-amz-checksum-mode": "ENABLED"}  # as the fetcher asks for a whole object
    url = signer.url(key, whole)
    assert parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"] == ["host;if-match;x-amz-checksum-mode"]
    assert urllib3.PoolManager().request("GET", url, headers=whole).data == KEYS[key]
    part = {"If-Match": etag}  # as it asks for a part: the Range header is not signed
    response = urllib3.PoolManager().request("GET", signer.url(key, part), headers={**part, "Range": "bytes=7-13"})
    assert response.status in (200, 206)  # rclone answers a range with 200 and the range's bytes
    assert response.data == KEYS[key][7:14]


def test_a_wrong_secret_is_refused_by_the_server(private: S3Endpoint) -> None:
    url = presigner(private, secret="not-the-secret-access-key-0123456789").url("model/1/model.onnx", {})
    assert urllib3.PoolManager().request("GET", url).status == 403


def test_the_url_has_the_same_shape_as_boto3s(private: S3Endpoint) -> None:
    key = "model/vocab files/tok+en%20ized~v2.json"
    client = client_for(private)
    ours = urlsplit(presigner(private).url(key, {"If-Match": '"abc"'}))
    theirs = urlsplit(client.generate_presigned_url("get_object", Params={"Bucket": "bucket", "Key": key,
                                                                          "IfMatch": '"abc"'}, ExpiresIn=600))
    assert (ours.scheme, ours.netloc, ours.path) == (theirs.scheme, theirs.netloc, theirs.path)
    ours_query, theirs_query = parse_qs(ours.query), parse_qs(theirs.query)
    assert {name: ours_query[name] for name in SIGNED_BY_BOTH} == {name: theirs_query[name] for name in SIGNED_BY_BOTH}


def test_a_session_token_is_signed_into_the_url(private: S3Endpoint) -> None:
    credentials = Credentials(TEST_ACCESS_KEY, TEST_SECRET_KEY, token="session-token-value")
    url = Presigner(client_for(private), "bucket", lambda: credentials, 600).url("model/1/model.onnx", {})
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Security-Token"] == ["session-token-value"]


def test_unsigned_urls_for_a_public_bucket(tmp_path: Path) -> None:
    (tmp_path / "bucket").mkdir()
    (tmp_path / "bucket" / "model").mkdir()
    (tmp_path / "bucket" / "model" / "a b.bin").write_bytes(b"public bytes")
    with rclone_s3(tmp_path) as endpoint:
        from botocore import UNSIGNED

        import boto3

        client = boto3.session.Session().client("s3", endpoint_url=endpoint.url, region_name="us-east-1",
                                                config=Config(signature_version=UNSIGNED,
                                                              s3={"addressing_style": "path"}))
        url = Presigner(client, "bucket", lambda: None, 600).url("model/a b.bin", {})
        assert "X-Amz-Signature" not in url
        assert urllib3.PoolManager().request("GET", url).data == b"public bytes"


def test_virtual_hosted_buckets_keep_botocores_host() -> None:
    import boto3

    client = boto3.session.Session().client("s3", region_name="eu-west-1", aws_access_key_id="AKIAEXAMPLE",
                                            aws_secret_access_key="secret",
                                            config=Config(signature_version="s3v4",
                                                          s3={"addressing_style": "virtual"}))
    credentials = Credentials("AKIAEXAMPLE", "secret")
    url = urlsplit(Presigner(client, "my-bucket", lambda: credentials, 600).url("m/1/x.bin", {}))
    assert url.netloc == "my-bucket.s3.eu-west-1.amazonaws.com"
    assert url.path == "/m/1/x.bin"
    assert "eu-west-1" in parse_qs(url.query)["X-Amz-Credential"][0]


def test_moto_serves_the_urls_too() -> None:
    with moto_s3() as endpoint:
        put_objects(endpoint.client(), "bucket", {"m/" + PROBE_KEY + "-not-the-probe": b"x", "m/k": b"moto bytes"})
        credentials = Credentials(endpoint.access_key, endpoint.secret_key)
        url = Presigner(client_for(endpoint), "bucket", lambda: credentials, 600).url("m/k", {})
        assert urllib3.PoolManager().request("GET", url).data == b"moto bytes"
