"""S3 models: every object under ``<path>/`` in a bucket, listed with botocore and fetched by presigned GETs.

Credentials, in order: the repository's ``accessKey``/``secretKey`` secrets; else the standard AWS
chain (environment, the web identity token that IRSA gives the service account, instance profile);
else unsigned requests, which public buckets answer. This is the only module that imports botocore
(boto3's core: boto3 adds its own layers and s3transfer to start-up, and nothing used here), and it is
imported only for leases with S3 models.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import threading
import urllib.request
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Iterator

import botocore.exceptions as botocore_errors
import botocore.session
import urllib3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.credentials import Credentials as KeyCredentials

from fetcher.buffers import READ_SIZE
from fetcher.errors import DownloadError, IntegrityError, ModelLayoutError, ResolutionError, TooLargeError, os_reason
from fetcher.lease.model_spec import ModelSpec
from fetcher.lease.values import LeaseValues, S3Repository
from fetcher.logs import get_logger
from fetcher.sources.base import FetchedModel, FetchOptions, ModelPlan
from fetcher.sources.parallel_download import ParallelDownload, RetryableTransferError, TransferSettings
from fetcher.sources.resume_journal import TransferJournal
from fetcher.sources.s3_checks import ObjectChecks
from fetcher.sources.s3_keys import RemoteFile, check_is_model, model_prefix, select_objects
from fetcher.sources.s3_presign import CredentialSource, Presigner

DEFAULT_SIGNING_REGION = "us-east-1"  # what S3-compatible servers expect when none is given
MAX_NAMES_SHOWN = 10
RETRY_STATUSES = (429, 500, 502, 503, 504)  # SlowDown is a 503
ERROR_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")
REQUEST_ATTEMPTS = 5  # per request, with the standard mode's backoff; broken streams are resumed apart

_CHAIN_METHODS = {
    "env": "environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
    "assume-role-with-web-identity": "web identity token (IAM role for the service account)",
    "shared-credentials-file": "shared credentials file",
    "config-file": "AWS config file",
    "iam-role": "instance profile (EC2 metadata)",
    "container-role": "container credentials endpoint",
    "assume-role": "assumed role from the AWS config file",
    "sso": "AWS SSO",
    "custom-process": "credential process",
}

# botocore sessions are not thread-safe; clients made from one are, so only their creation is locked.
_session_lock = threading.Lock()


@lru_cache(maxsize=1)
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@lru_cache(maxsize=1)
def _chain_method() -> str | None:
    """How the default AWS chain finds credentials here, or None when it finds none."""
    with _session_lock:
        credentials = _session().get_credentials()
    return None if credentials is None else str(getattr(credentials, "method", "unknown"))


def forget_cached_credentials() -> None:
    """Drop the cached session and chain result (for callers that change the AWS environment)."""
    _session.cache_clear()
    _chain_method.cache_clear()


@dataclass(frozen=True)
class Credentials:
    kind: str  # "keys", "chain" or "unsigned"
    access_secret: str | None = None
    secret_secret: str | None = None
    method: str | None = None  # the chain's method
    role: str | None = None

    @property
    def secret_label(self) -> str | None:
        return f"{self.access_secret}/{self.secret_secret}" if self.kind == "keys" else None

    def describe(self) -> str:
        """Which credentials are used, fit for explain and error messages (names only, never values)."""
        if self.kind == "keys":
            return (f"access key ID from secret {self.access_secret!r}, "
                    f"secret access key from secret {self.secret_secret!r}")
        if self.kind == "chain":
            text = f"the default AWS credential chain: {_CHAIN_METHODS.get(self.method or '', self.method)}"
            role = self.role or os.environ.get("AWS_ROLE_ARN")
            if role and self.method == "assume-role-with-web-identity":
                text += f" for role {role}"
            return text
        text = "unsigned requests (no key secrets, and the default AWS credential chain finds no credentials)"
        if self.role:
            text += f"; server.security.aws.role {self.role} applies only through the service account's token"
        return text


def choose_credentials(bucket: S3Repository, role: str | None, *, model: str) -> Credentials:
    if bucket.access_key and bucket.secret_key:
        return Credentials(kind="keys", access_secret=bucket.access_key, secret_secret=bucket.secret_key)
    if bucket.access_key or bucket.secret_key:
        given, missing = ("accessKey", "secretKey") if bucket.access_key else ("secretKey", "accessKey")
        raise ResolutionError(
            f"model {model!r}: s3 repository {bucket.repository_name!r} sets {given} but not {missing}",
            hint="give both key secrets, or neither to use the AWS credential chain or unsigned requests",
        )
    method = _chain_method()
    if method is None:
        return Credentials(kind="unsigned", role=role)
    return Credentials(kind="chain", method=method, role=role)


def endpoint_label(bucket: S3Repository) -> str:
    if bucket.endpoint:
        return f"endpoint {bucket.endpoint}"
    return f"region {bucket.aws_region}"


@dataclass(frozen=True)
class S3Target:
    """The model's prefix in its bucket and the credentials chosen for it, once, when it is planned."""

    kind: ClassVar[str] = "s3"
    bucket: S3Repository
    prefix: str
    credentials: Credentials

    @property
    def config(self) -> S3Repository:
        return self.bucket

    @property
    def url(self) -> str:
        return f"s3://{self.bucket.bucket_name}/{self.prefix}"

    @property
    def where(self) -> str:
        return f"{self.url} ({endpoint_label(self.bucket)})"


@dataclass(frozen=True)
class _Connection:
    """What the models of one repository and credentials share in a run."""

    client: Any  # botocore's: listing, HEAD, and GETs through a proxy
    pool: urllib3.PoolManager  # presigned GETs
    presigner: Presigner


def plan(spec: ModelSpec, bucket: S3Repository, lease: LeaseValues, _options: FetchOptions) -> ModelPlan[S3Target]:
    credentials = choose_credentials(bucket, lease.aws_role, model=spec.name)
    target = S3Target(bucket, model_prefix(spec.uri.path or ""), credentials)  # a model:// URI always has a path
    return ModelPlan(
        spec=spec,
        target=target,
        location=target.where,
        secret=credentials.secret_label,
        reason=credentials.describe(),
    )


class S3Source:
    def __init__(self, options: FetchOptions, settings: TransferSettings | None = None,
                 request_attempts: int = REQUEST_ATTEMPTS) -> None:
        self.options = options
        self.settings = settings or TransferSettings(concurrency=options.transfer_concurrency)
        self.request_attempts = request_attempts
        self._checks: ObjectChecks | None = None  # of the model being fetched (one source per model)

    def fetch(self, plan: ModelPlan[S3Target], workdir: Path) -> FetchedModel:
        deadline = time.monotonic() + self.options.model_timeout
        target = plan.target
        connection = self._connection(target)
        client = connection.client
        etags: dict[str, str] = {}
        objects = select_objects(self._list(client, target, etags), target.prefix, where=target.where)
        if not objects.files:
            raise ModelLayoutError(
                f"{target.where} holds no objects",
                hint=self._neighbours_hint(client, target),
            )
        check_is_model(objects, where=target.where)
        if objects.total_bytes > self.options.max_model_bytes:
            raise TooLargeError(target.where, self.options.max_model_bytes,
                                size=objects.total_bytes)
        get_logger().info(
            "model=%s event=s3-listed objects=%d bytes=%d credentials=%s",
            plan.spec.name, len(objects.files), objects.total_bytes, target.credentials.kind,
        )
        progress = self.options.observer.model(plan.spec.name, plan.source)
        progress.expect(objects.total_bytes)
        model_dir = workdir / "model"
        for folder in objects.folders:
            (model_dir / folder).mkdir(parents=True, exist_ok=True)
        files = tuple(dataclasses.replace(f, validator=etags.get(f.key)) for f in objects.files)
        checks = self._checks = ObjectChecks(client, target)
        download = ParallelDownload(self._reader(connection, target), self.settings, where=target.where,
                                    deadline=deadline, progress=progress, journal=TransferJournal(workdir / "journal"),
                                    begin_check=checks.begin)
        transferred = download.run(files, model_dir, workdir / "partial")
        get_logger().info("model=%s event=s3-verified %s", plan.spec.name, checks.summary())
        return FetchedModel(model_dir=model_dir, bytes_transferred=transferred,
                            validators=_validators(files))

    def validators(self, plan: ModelPlan[S3Target]) -> dict[str, Any] | None:
        """The listing's ETags and sizes of the model's objects (one LIST, no content)."""
        target = plan.target
        client = self._client(target)
        etags: dict[str, str] = {}
        objects = select_objects(self._list(client, target, etags), target.prefix, where=target.where)
        return _validators(tuple(dataclasses.replace(f, validator=etags.get(f.key)) for f in objects.files))

    def _client(self, target: S3Target) -> Any:
        return self._connection(target).client

    def _connection(self, target: S3Target) -> _Connection:
        """The client, pool and presigner of the target's repository and credentials, shared by the
        run's models (the secrets' values are part of the key, so rotated secrets make new ones)."""
        keys = self._keys(target)
        identity = None if keys is None else hashlib.sha256("\0".join(keys).encode()).hexdigest()
        key = ("s3", target.bucket, target.credentials, identity, self.options.ca_bundle, self.options.connect_timeout,
               self.options.read_timeout, self.options.model_timeout, self.settings.concurrency, self.request_attempts)
        return self.options.clients.get(key, lambda: self._connect(target, keys))

    def _keys(self, target: S3Target) -> tuple[str, str] | None:
        credentials = target.credentials
        if credentials.kind != "keys":
            return None
        assert credentials.access_secret and credentials.secret_secret
        return (self.options.secrets.read(credentials.access_secret).reveal(),
                self.options.secrets.read(credentials.secret_secret).reveal())

    def _connect(self, target: S3Target, keys: tuple[str, str] | None) -> _Connection:
        bucket = target.bucket
        config = Config(
            max_pool_connections=max(10, self.settings.concurrency + 2),
            retries={"max_attempts": self.request_attempts, "mode": "standard"},
            connect_timeout=self.options.connect_timeout,
            read_timeout=self.options.read_timeout,
            s3={"addressing_style": "path" if bucket.endpoint else "auto"},
            # s3v4 for presigned URLs too (botocore presigns with the legacy scheme otherwise, which servers refuse)
            signature_version=UNSIGNED if target.credentials.kind == "unsigned" else "s3v4",
        )
        key_args = {} if keys is None else {"aws_access_key_id": keys[0], "aws_secret_access_key": keys[1]}
        region = bucket.aws_region or (DEFAULT_SIGNING_REGION if bucket.endpoint else None)
        try:
            with _session_lock:
                client = _session().create_client(
                    "s3",
                    endpoint_url=bucket.endpoint,
                    region_name=region,
                    # An explicit CA must win over AWS_CA_BUNDLE; None lets botocore read that variable.
                    verify=self.options.ca_bundle or None,
                    config=config,
                    **key_args,
                )
                chain = _session().get_credentials() if target.credentials.kind == "chain" else None
        except ValueError as exc:
            raise ResolutionError(f"s3 repository {bucket.repository_name!r}: {exc}") from None
        if keys is not None:
            frozen = KeyCredentials(*keys)
            credentials: CredentialSource = lambda: frozen  # noqa: E731
        elif chain is not None:
            credentials = chain.get_frozen_credentials  # refreshed when a web identity's expire
        else:
            credentials = lambda: None  # noqa: E731  (unsigned)
        expires = int(min(7 * 24 * 3600, self.options.model_timeout + 300))
        try:
            presigner = Presigner(client, bucket.bucket_name, credentials, expires)
        except (botocore_errors.BotoCoreError, botocore_errors.ClientError) as exc:
            raise map_error(exc, target, action="presigning a request") from None
        retry = urllib3.Retry(total=self.request_attempts - 1, connect=self.request_attempts - 1, read=0,
                              status=self.request_attempts - 1, backoff_factor=0.2, backoff_jitter=0.2,
                              status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET"}),
                              respect_retry_after_header=True, raise_on_status=False, redirect=False)
        ca = self.options.ca_bundle or os.environ.get("AWS_CA_BUNDLE") or None
        # Sized for every model of the run fetching at once: a full pool would drop connections.
        pool = urllib3.PoolManager(maxsize=max(16, 4 * (self.settings.concurrency + 2)), retries=retry, ca_certs=ca,
                                   timeout=urllib3.Timeout(connect=self.options.connect_timeout,
                                                           read=self.options.read_timeout))
        return _Connection(client=client, pool=pool, presigner=presigner)

    def _list(self, client: Any, target: S3Target, etags: dict[str, str]) -> Iterator[tuple[str, int]]:
        """The (key, size) of each object under the prefix; their ETags go into ``etags``."""
        paginator = client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=target.bucket.bucket_name, Prefix=target.prefix):
                for item in page.get("Contents") or []:
                    if item.get("ETag"):
                        etags[item["Key"]] = str(item["ETag"])
                    yield item["Key"], int(item.get("Size", 0))
        except botocore_errors.BotoCoreError as exc:
            raise map_error(exc, target, action="listing") from None
        except botocore_errors.ClientError as exc:
            raise map_error(exc, target, action="listing") from None

    def _neighbours_hint(self, client: Any, target: S3Target) -> str:
        """Folder names next to the missing model, to spot a typo or a missing parent folder."""
        parent = target.prefix.rstrip("/").rpartition("/")[0]
        parent_prefix = parent + "/" if parent else ""
        try:
            reply = client.list_objects_v2(
                Bucket=target.bucket.bucket_name, Prefix=parent_prefix, Delimiter="/", MaxKeys=100
            )
        except (botocore_errors.BotoCoreError, botocore_errors.ClientError):
            return "check the model path in the uri"
        names = sorted(p["Prefix"][len(parent_prefix):] for p in reply.get("CommonPrefixes") or [])
        where = f"s3://{target.bucket.bucket_name}/{parent_prefix}"
        if not names:
            return f"{where} holds no folders either; models sit at the bucket's top level or under one parent folder"
        shown = ", ".join(names[:MAX_NAMES_SHOWN]) + (" ..." if len(names) > MAX_NAMES_SHOWN else "")
        return f"folders in {where}: {shown}"

    def _reader(self, connection: _Connection, target: S3Target):
        """Presigned GETs sent over one pooled urllib3 client: measured at 0.6x the CPU of botocore's
        get_object per request, and the presigning at a quarter of botocore's (bench/README.md),
        which the GIL makes the bound for many small objects. Through a proxy from the environment,
        botocore sends them itself."""
        if _proxied(target):
            return self._client_reader(connection.client, target)
        return self._presigned_reader(connection, target)

    def _presigned_reader(self, connection: _Connection, target: S3Target):
        pool, presigner = connection.pool, connection.presigner
        by_client = self._client_reader(connection.client, target)
        checks = self._checks

        def read_range(remote: RemoteFile, start: int, end: int) -> Iterator[bytes]:
            if any(part in (".", "..") for part in remote.key.split("/")):
                yield from by_client(remote, start, end)  # urllib3 would resolve the dot segments of the URL
                return
            action = f"downloading {remote.key!r}"
            whole = start == 0 and end >= remote.size
            signed: dict[str, str] = {}
            if whole:  # the object's checksum comes with it, when it has one
                signed["x-amz-checksum-mode"] = "ENABLED"
            if remote.validator:  # never bytes of another version of the object
                signed["If-Match"] = remote.validator
            try:  # presigned for each request, so refreshed credentials (a web identity's) are used
                url = presigner.url(remote.key, signed)
            except (botocore_errors.BotoCoreError, botocore_errors.ClientError) as exc:
                raise map_error(exc, target, action=action) from None
            headers = signed if whole else {**signed, "Range": f"bytes={start}-{end - 1}"}
            try:
                response = pool.request("GET", url, headers=headers, preload_content=False)
            except urllib3.exceptions.SSLError:
                raise map_error(botocore_errors.SSLError(endpoint_url="", error=""), target, action=action) from None
            except urllib3.exceptions.HTTPError as exc:  # its text holds the URL, and so the signature
                raise DownloadError(f"{target.where}: {action}: cannot reach the S3 endpoint "
                                    f"({os_reason(exc) or type(exc).__name__})",
                                    hint="check the endpoint URL (or awsRegion) and that the endpoint is reachable "
                                         "from the pod") from None
            try:
                if response.status not in (200, 206):
                    match = ERROR_CODE.search(response.read(4096, decode_content=False) or b"")
                    code = match.group(1).decode() if match else str(response.status)
                    if response.status == 412:
                        raise _changed(target, remote)
                    error = botocore_errors.ClientError(
                        {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": response.status}}, "GetObject")
                    raise map_error(error, target, action=action)
                if whole and checks is not None:
                    checks.seen_headers(remote.key, response.headers)
                while chunk := response.read1(READ_SIZE):
                    yield chunk
            except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError,
                    urllib3.exceptions.DecodeError) as exc:
                raise RetryableTransferError(type(exc).__name__) from None
            finally:
                response.release_conn()

        return read_range

    def _client_reader(self, client: Any, target: S3Target):
        bucket_name = target.bucket.bucket_name
        checks = self._checks  # what each whole-object GET says is kept for the check of that object

        def read_range(remote: RemoteFile, start: int, end: int) -> Iterator[bytes]:
            request: dict[str, Any] = {"Bucket": bucket_name, "Key": remote.key}
            whole = start == 0 and end >= remote.size
            if whole:
                request["ChecksumMode"] = "ENABLED"  # the object's checksum comes with it, when it has one
            else:
                request["Range"] = f"bytes={start}-{end - 1}"
            if remote.validator:
                request["IfMatch"] = remote.validator  # never bytes of another version of the object
            try:
                response = client.get_object(**request)
            except (botocore_errors.BotoCoreError, botocore_errors.ClientError) as exc:
                if _code(exc) in ("PreconditionFailed", "412"):
                    raise _changed(target, remote) from None
                raise map_error(exc, target, action=f"downloading {remote.key!r}") from None
            if whole and checks is not None:
                checks.seen(remote.key, response)
            body = response["Body"]
            try:
                yield from body.iter_chunks(READ_SIZE)
            except botocore_errors.FlexibleChecksumError:
                raise IntegrityError(f"{target.where}: {remote.key!r} does not match the checksum S3 "
                                     "gives for it", hint="nothing was installed") from None
            except (
                botocore_errors.ResponseStreamingError,
                botocore_errors.IncompleteReadError,
                botocore_errors.ReadTimeoutError,
                botocore_errors.ConnectionClosedError,
            ) as exc:
                raise RetryableTransferError(type(exc).__name__) from None
            finally:
                body.close()

        return read_range


def _proxied(target: S3Target) -> bool:
    """Whether the environment sends requests to this endpoint through a proxy (as botocore would)."""
    endpoint = target.bucket.endpoint or "https://s3.amazonaws.com"
    scheme, _, rest = endpoint.partition("://")
    host = rest.split("/", 1)[0].rsplit(":", 1)[0]
    return scheme.lower() in urllib.request.getproxies() and not urllib.request.proxy_bypass(host)


DENIED_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled",
                "InvalidToken", "ExpiredToken", "UnsupportedAlgorithm", "AuthorizationHeaderMalformed",
                "InvalidSecurity", "MissingSecurityHeader", "AccountProblem"}


def map_error(exc: Exception, target: S3Target, *, action: str) -> DownloadError:
    """A clear DownloadError for a botocore failure: never the server's message, which may echo keys."""
    where = target.where
    credentials = target.credentials
    if isinstance(exc, botocore_errors.ClientError):
        error = exc.response.get("Error") or {}
        code = str(error.get("Code") or "")
        status = int((exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
        if code in ("NoSuchBucket",) or (status == 404 and code in ("", "404") and action == "listing"):
            return DownloadError(
                f"{where}: bucket {target.bucket.bucket_name!r} does not exist",
                hint="check bucketName and the endpoint/awsRegion of the s3 repository",
            )
        if code == "AuthorizationHeaderMalformed" and target.bucket.aws_region:
            return DownloadError(
                f"{where}: {action} refused (AuthorizationHeaderMalformed): the bucket is in another region",
                hint="set awsRegion to the bucket's region",
            )
        if code in DENIED_CODES or status in (401, 403) or (credentials.kind == "unsigned" and status == 400):
            return DownloadError(
                f"{where}: {action} refused: {_status_text(code, status)}, "
                f"using {credentials.describe()}",
                hint=_denied_hint(code, credentials),
            )
        if code in ("PermanentRedirect", "301") or status == 301:
            return DownloadError(
                f"{where}: the bucket is in another region than the one configured",
                hint="set awsRegion to the bucket's region, or endpoint to its regional endpoint",
            )
        if code in ("NoSuchKey", "404") or status == 404:
            return DownloadError(f"{where}: {action}: the object disappeared during the download (HTTP 404)")
        return DownloadError(f"{where}: {action} failed: {_status_text(code, status)}")
    if isinstance(exc, botocore_errors.SSLError):
        return DownloadError(
            f"{where}: TLS verification failed",
            hint="give the server's CA with --ca-bundle, or fix the server's certificate",
        )
    if isinstance(exc, (botocore_errors.EndpointConnectionError, botocore_errors.ConnectTimeoutError,
                        botocore_errors.ProxyConnectionError)):
        return DownloadError(
            f"{where}: cannot reach the S3 endpoint ({os_reason(exc) or type(exc).__name__})",
            hint="check the endpoint URL (or awsRegion) and that the endpoint is reachable from the pod",
        )
    if isinstance(exc, botocore_errors.ReadTimeoutError):
        return DownloadError(f"{where}: {action}: the S3 endpoint stopped answering (read timeout)")
    if isinstance(exc, botocore_errors.NoCredentialsError):
        return DownloadError(f"{where}: {action}: no AWS credentials found")
    return DownloadError(f"{where}: {action} failed: {type(exc).__name__}")


def _changed(target: S3Target, remote: RemoteFile) -> DownloadError:
    return DownloadError(f"{target.where}: {remote.key!r} changed during the download (its ETag is not "
                         f"{remote.validator} any more)", hint="the next try fetches the new version from the start")


def _code(exc: Exception) -> str:
    if isinstance(exc, botocore_errors.ClientError):
        return str((exc.response.get("Error") or {}).get("Code") or "")
    return ""


def _validators(files: tuple[RemoteFile, ...]) -> dict[str, Any]:
    """The ETag and size of every object, by key: what a later listing is compared with."""
    return {"objects": {f.key: [f.validator, f.size] for f in files}}


def _status_text(code: str, status: int) -> str:
    return f"{code} (HTTP {status})" if code and not code.isdigit() else f"HTTP {status}"


def _denied_hint(code: str, credentials: Credentials) -> str:
    if credentials.kind == "keys":
        if code == "InvalidAccessKeyId":
            return f"the access key ID in secret {credentials.access_secret!r} is not known to the server"
        if code == "SignatureDoesNotMatch":
            return f"the secret access key in secret {credentials.secret_secret!r} does not match its access key ID"
        return (f"check secrets {credentials.access_secret!r} and {credentials.secret_secret!r}, and that their key "
                "may list and read the bucket (s3:ListBucket, s3:GetObject)")
    if credentials.kind == "unsigned":
        return "the bucket is not public: set accessKey/secretKey secrets, or server.security.aws.role on EKS"
    return "the credentials the AWS chain found may not list and read the bucket (s3:ListBucket, s3:GetObject)"


Source = S3Source
