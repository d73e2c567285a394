"""GET URLs presigned like boto3's ``generate_presigned_url``, for a fraction of its CPU.

boto3 resolves the bucket's endpoint, addressing style and region through its event machinery on
every call: about 0.3 ms of CPU per URL, which the GIL makes the bound for models of many small
objects. Here boto3 is asked once, for the URL of a probe key, which gives the bucket's base URL;
each object's URL is then that base plus the key, encoded as botocore encodes keys, and signed
with botocore's own SigV4 query signer (about 0.08 ms). Endpoint rules stay botocore's.
"""

from __future__ import annotations

from typing import Any, Callable

from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.utils import percent_encode

PROBE_KEY = "model-fetcher-probe"
SERVICE = "s3"

# () -> credentials with access_key, secret_key and token (refreshed when they expire), or None: unsigned
CredentialSource = Callable[[], Any]


class Presigner:
    """Presigned GET URLs for the objects of one bucket."""

    def __init__(self, client: Any, bucket: str, credentials: CredentialSource, expires: int) -> None:
        self.client = client
        self.bucket = bucket
        self.credentials = credentials
        self.expires = expires
        self.region = client.meta.region_name
        probe = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": PROBE_KEY},
                                              ExpiresIn=expires)
        path = probe.partition("?")[0]
        # None: the probe's URL does not end in its key, so keys cannot be appended; boto3 signs each.
        self.base = path[:-len(PROBE_KEY)] if path.endswith("/" + PROBE_KEY) else None

    def url(self, key: str, headers: dict[str, str]) -> str:
        """The presigned URL of a GET of ``key``; ``headers`` (If-Match, x-amz-checksum-mode) are
        signed and must be sent with it. A Range header is not signed and may be added."""
        if self.base is None:
            return self._by_boto3(key, headers)
        url = self.base + percent_encode(key, safe="/~")
        credentials = self.credentials()
        if credentials is None:
            return url
        request = AWSRequest(method="GET", url=url, headers=dict(headers))
        S3SigV4QueryAuth(credentials, SERVICE, self.region, expires=self.expires).add_auth(request)
        return request.prepare().url

    def _by_boto3(self, key: str, headers: dict[str, str]) -> str:
        params: dict[str, str] = {"Bucket": self.bucket, "Key": key}
        lowered = {name.lower(): value for name, value in headers.items()}
        if "if-match" in lowered:
            params["IfMatch"] = lowered["if-match"]
        if "x-amz-checksum-mode" in lowered:
            params["ChecksumMode"] = lowered["x-amz-checksum-mode"]
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=self.expires)
