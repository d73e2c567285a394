"""Every S3 object checked against what S3 says it is, before the model can be installed.

In order of preference:
1. the object's full-object checksum, which S3 returns when asked (``ChecksumMode=ENABLED``) and
   the object was uploaded with one: SHA-256, SHA-1, CRC64NVME, CRC32C or CRC32 (CRC32C and
   CRC64NVME with ``awscrt``, a dependency of the package, imported only for those);
2. else the ETag, which is the MD5 of the object for a single-part upload without SSE-KMS or SSE-C
   encryption (32 hexadecimal digits, no ``-N`` suffix);
3. else (a multipart ETag, a composite checksum): nothing to compute against; the ETag is recorded,
   every ranged GET carries ``If-Match`` on it and a restart compares it again.

The checksum of an object fetched in one GET comes with that GET; a large object fetched in ranged
parts costs one HEAD, sent when its first bytes arrive. Either way the download feeds the chosen
hasher the object's bytes as they are written (``ObjectCheck``), so the digest is ready with the
last byte and no file is read again whole.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import botocore.exceptions as botocore_errors

from fetcher.errors import IntegrityError
from fetcher.sources.parallel_download import RemoteFile

MD5_ETAG = re.compile(r"^[0-9a-fA-F]{32}$")
META_KEYS = ("ETag", "ChecksumSHA256", "ChecksumSHA1", "ChecksumCRC64NVME", "ChecksumCRC32C", "ChecksumCRC32",
             "ChecksumType", "ServerSideEncryption", "SSECustomerAlgorithm")
HEADERS = {"ETag": "etag", "ChecksumSHA256": "x-amz-checksum-sha256", "ChecksumSHA1": "x-amz-checksum-sha1",
           "ChecksumCRC64NVME": "x-amz-checksum-crc64nvme", "ChecksumCRC32C": "x-amz-checksum-crc32c",
           "ChecksumCRC32": "x-amz-checksum-crc32", "ChecksumType": "x-amz-checksum-type",
           "ServerSideEncryption": "x-amz-server-side-encryption",
           "SSECustomerAlgorithm": "x-amz-server-side-encryption-customer-algorithm"}


class _Crc:
    """A CRC in hashlib's shape, its digest big-endian as S3 encodes it."""

    def __init__(self, update: Callable[[bytes, int], int], width: int) -> None:
        self._update, self._width, self._value = update, width, 0

    def update(self, data: bytes) -> None:
        self._value = self._update(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._width, "big")


def _crc32c() -> Callable[[bytes, int], int] | None:
    try:
        from awscrt import checksums  # type: ignore[import-not-found]

        return checksums.crc32c
    except ImportError:
        pass
    try:
        import crc32c  # type: ignore[import-not-found]

        return lambda data, value: crc32c.crc32c(data, value)
    except ImportError:
        return None


def _crc64nvme() -> Callable[[bytes, int], int] | None:
    try:
        from awscrt import checksums  # type: ignore[import-not-found]

        return checksums.crc64nvme
    except (ImportError, AttributeError):
        return None


def hasher_for(algorithm: str) -> Any | None:
    """A hasher for one of S3's checksum algorithms, or None when none is installed here."""
    if algorithm == "SHA256":
        return hashlib.sha256()
    if algorithm == "SHA1":
        return hashlib.sha1()
    if algorithm == "CRC32":
        return _Crc(lambda data, value: zlib.crc32(data, value), 4)
    if algorithm == "CRC32C":
        update = _crc32c()
        return _Crc(update, 4) if update else None
    if algorithm == "CRC64NVME":
        update = _crc64nvme()
        return _Crc(update, 8) if update else None
    return None


@dataclass(frozen=True)
class ObjectCheck:
    """How one object is checked: the digest S3 gives and a hasher that computes it, or no hasher
    when there is nothing to compute (a multipart ETag, a composite checksum)."""

    where: str
    remote: RemoteFile
    method: str
    expected: bytes
    hasher: Any | None

    def verify(self, actual: bytes) -> None:
        if actual != self.expected:
            shown = actual.hex() if self.method == "md5" else base64.b64encode(actual).decode()
            wanted = self.expected.hex() if self.method == "md5" else base64.b64encode(self.expected).decode()
            raise IntegrityError(
                f"{self.where}: file {self.remote.relative!r} (object {self.remote.key!r}) has {self.method} {shown}, "
                f"S3 says {wanted}",
                hint="the object is damaged, or changed while it was read; nothing was installed",
            )


class ObjectChecks:
    """The checks of one model's objects: the metadata each GET brought, and the verdicts."""

    def __init__(self, client: Any, target: Any) -> None:
        self.client = client
        self.target = target  # an S3Target
        self._lock = threading.Lock()
        self._meta: dict[str, dict[str, Any]] = {}
        self._methods: Counter[str] = Counter()

    def seen(self, key: str, response: dict[str, Any]) -> None:
        """Keep what a GET of the whole object said about it."""
        with self._lock:
            self._meta[key] = {name: response[name] for name in META_KEYS if response.get(name)}

    def seen_headers(self, key: str, headers: Any) -> None:
        """Keep what a GET of the whole object said, from its HTTP headers (a presigned GET)."""
        self.seen(key, {name: headers.get(header) for name, header in HEADERS.items()})

    def summary(self) -> str:
        with self._lock:
            return " ".join(f"{method}={count}" for method, count in sorted(self._methods.items())) or "objects=0"

    def begin(self, remote: RemoteFile) -> ObjectCheck:
        """How ``remote`` is checked, from what its whole-object GET said (else from a HEAD)."""
        method, expected, hasher = self._choose(self._metadata(remote))
        with self._lock:
            self._methods[method] += 1
        return ObjectCheck(self.target.where, remote, method, expected, hasher)

    def _metadata(self, remote: RemoteFile) -> dict[str, Any]:
        with self._lock:
            meta = self._meta.pop(remote.key, None)
        if meta is not None:
            return meta
        request: dict[str, Any] = {"Bucket": self.target.bucket.bucket_name, "Key": remote.key, "ChecksumMode": "ENABLED"}
        if remote.validator:
            request["IfMatch"] = remote.validator
        try:
            response = self.client.head_object(**request)
        except (botocore_errors.BotoCoreError, botocore_errors.ClientError) as exc:
            from fetcher.sources.s3 import map_error

            raise map_error(exc, self.target, action=f"reading the checksum of {remote.key!r}") from None
        return {name: response[name] for name in META_KEYS if response.get(name)}

    @staticmethod
    def _choose(meta: dict[str, Any]) -> tuple[str, bytes, Any | None]:
        """(method, expected digest, hasher); the hasher is None when nothing can be computed."""
        composite = str(meta.get("ChecksumType", "")).upper() == "COMPOSITE"
        for algorithm in ("SHA256", "SHA1", "CRC64NVME", "CRC32C", "CRC32"):
            value = str(meta.get(f"Checksum{algorithm}") or "")
            if not value or composite or "-" in value:
                continue
            hasher = hasher_for(algorithm)
            if hasher is not None:
                try:
                    return algorithm.lower(), base64.b64decode(value, validate=True), hasher
                except ValueError:
                    continue
        etag = str(meta.get("ETag") or "").strip('"')
        encrypted = str(meta.get("ServerSideEncryption") or "").startswith("aws:kms") or meta.get("SSECustomerAlgorithm")
        if MD5_ETAG.match(etag) and not encrypted:
            return "md5", bytes.fromhex(etag), hashlib.md5(usedforsecurity=False)
        return "etag-recorded", b"", None
