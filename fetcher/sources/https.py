"""HTTP(S) models: a zip of one Triton model directory, fetched with the matching Authorization secret."""

from __future__ import annotations

import hashlib
import ipaddress
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator
from urllib.parse import urlsplit

import requests

from fetcher.archive.layout import find_model_root
from fetcher.archive.zip_stream import TAIL_BYTES, unpack_ranged, unpack_sequential
from fetcher.credentials.secrets import SecretValue
from fetcher.credentials.target_uri import choose_secret
from fetcher.errors import DownloadError, IntegrityError, SecretError
from fetcher.lease.model_spec import ModelSpec
from fetcher.lease.uri import redact_url
from fetcher.lease.values import HttpsRepository, LeaseValues
from fetcher.logs import get_logger
from fetcher.progress import ModelProgress
from fetcher.sources.base import FetchedModel, FetchOptions, ModelPlan
from fetcher.sources.http_transfer import RETRY_STATUSES, HttpDownload, HttpSettings, Resource
from fetcher.sources.resume_journal import FileRecord, TransferJournal

ARCHIVE_KEY = "archive"  # the zip's entry in the resume journal


@dataclass(frozen=True)
class HttpsTarget:
    kind: ClassVar[str] = "https"
    url: str
    entry: HttpsRepository | None  # the https entry whose secret applies, if any

    @property
    def config(self) -> HttpsRepository | None:
        return self.entry


def plan(spec: ModelSpec, _repository: None, lease: LeaseValues, _options: FetchOptions) -> ModelPlan[HttpsTarget]:
    choice = choose_secret(spec.uri.text, lease.https)
    return ModelPlan(
        spec=spec,
        target=HttpsTarget(url=spec.uri.text, entry=choice.entry),
        location=spec.uri.shown,
        secret=choice.secret_name,
        reason=choice.reason,
    )


def is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpsSource:
    def __init__(self, options: FetchOptions) -> None:
        self.options = options

    def fetch(self, plan: ModelPlan[HttpsTarget], workdir: Path) -> FetchedModel:
        secret = self._secret(plan)
        settings = HttpSettings(
            ca_bundle=self.options.ca_bundle,
            connect_timeout=self.options.connect_timeout,
            read_timeout=self.options.read_timeout,
            max_bytes=self.options.max_model_bytes,
            concurrency=self.options.transfer_concurrency,
            deadline=time.monotonic() + self.options.model_timeout,
        )
        progress = self.options.observer.model(plan.spec.name, plan.source)
        download = self._download(plan, secret, settings, progress)
        extracted = workdir / "extracted"
        try:
            transferred = self._unpack(download, plan, extracted, workdir / "members", TransferJournal(workdir / "journal"))
            resource = download.resource
        finally:
            download.close()
        model_dir = find_model_root(extracted, what=f"the zip from {plan.location}")
        return FetchedModel(model_dir=model_dir, bytes_transferred=transferred,
                            validators=_validators(resource) if resource is not None else None)

    def validators(self, plan: ModelPlan[HttpsTarget]) -> dict[str, Any] | None:
        settings = HttpSettings(
            ca_bundle=self.options.ca_bundle,
            connect_timeout=self.options.connect_timeout,
            read_timeout=self.options.read_timeout,
            max_bytes=self.options.max_model_bytes,
            concurrency=1,
            deadline=time.monotonic() + min(self.options.model_timeout, 4 * self.options.read_timeout),
        )
        download = self._download(plan, self._secret(plan), settings)
        try:
            return _validators(download.probe())
        finally:
            download.close()

    def _download(self, plan: ModelPlan[HttpsTarget], secret: SecretValue | None, settings: HttpSettings,
                  progress: ModelProgress | None = None) -> HttpDownload:
        return HttpDownload(plan.target.url, secret, settings, lambda r, url: _status_error(r, url, plan),
                            progress=progress)

    def _unpack(self, download: HttpDownload, plan: ModelPlan[HttpsTarget], extracted: Path, temp_dir: Path,
                journal: TransferJournal) -> int:
        """Unpack the zip into ``extracted`` as it arrives; return the bytes received.

        A server that accepts ranges gets the central directory read from the archive's tail and the
        members' ranges read in parallel; any other server, or a sha256 to check over the whole body,
        gets the body read once through a sequential zip reader. Neither keeps a copy of the archive.

        Resume: the journal records the zip's size and validator. When a later run finds them unchanged
        (its first request asks for one byte with ``If-Range`` on the recorded validator), the members a
        killed run unpacked and checked are kept (a member reaches its place only once its CRC-32 and
        size agree), and a stored member cut short resumes at its last written byte.
        """
        recorded = journal.previous().get(ARCHIVE_KEY)
        resource, response = download.open(recorded.validator if recorded is not None else None)
        ranged = bool(resource.accepts_ranges and resource.size and plan.spec.sha256 is None)
        kept = journal.begin({ARCHIVE_KEY: FileRecord(resource.size or 0, resource.validator, 0)}) if ranged else set()
        journal.close()
        keep = ARCHIVE_KEY in kept
        if not keep:
            shutil.rmtree(extracted, ignore_errors=True)
            shutil.rmtree(temp_dir, ignore_errors=True)
        extracted.mkdir(exist_ok=True)
        max_bytes = self.options.max_model_bytes
        if (response.status_code == 200 and resource.size is not None and resource.size <= TAIL_BYTES
                and plan.spec.sha256 is None):
            tail: bytes | None = b"".join(download.body(resource, response))  # small: the whole zip in memory
        elif ranged:
            response.close()
            assert resource.size is not None
            tail = download.read_tail(resource, max(0, resource.size - TAIL_BYTES))
        else:
            tail = None
        if tail is not None:
            assert resource.size is not None
            return unpack_ranged(resource.size, lambda first, end: download.open_range(resource, first, end),
                                 extracted, temp_dir, max_bytes=max_bytes, where=plan.location,
                                 concurrency=self.options.transfer_concurrency, tail=tail,
                                 check=download.check_deadline, keep=keep).bytes_read
        shutil.rmtree(extracted, ignore_errors=True)  # one stream from the start: nothing is kept
        shutil.rmtree(temp_dir, ignore_errors=True)
        extracted.mkdir()
        if ranged or response.status_code == 206:
            if ranged:
                get_logger().info("model=%s event=single-stream detail=the server advertises ranges but sent the "
                                  "whole file for one; reading the zip in one stream", plan.spec.name)
            response.close()
            resource, response = download.open()
        digest = hashlib.sha256() if plan.spec.sha256 is not None else None
        chunks = download.body(resource, response)
        received = unpack_sequential(_hashed(chunks, digest), extracted, temp_dir, max_bytes=max_bytes).bytes_read
        if digest is not None and digest.hexdigest() != plan.spec.sha256:
            raise IntegrityError(f"{plan.location}: the sha256 of the download does not match the model spec",
                                 hint="the file on the server is not the one the lease pins; nothing was installed")
        return received

    def _secret(self, plan: ModelPlan[HttpsTarget]) -> SecretValue | None:
        if plan.secret is None:
            return None
        parts = urlsplit(plan.target.url)
        entry = plan.target.entry
        allowed = entry is not None and entry.allow_plain_http
        if parts.scheme == "http" and not is_loopback(parts.hostname or "") and not allowed:
            raise SecretError(
                f"refusing to send secret {plan.secret!r} over plain http to {parts.hostname}",
                hint="serve the model over https, or set allowPlainHttp: true on that "
                     "server.modelRepositories.https entry",
            )
        return self.options.secrets.read(plan.secret)


def _status_error(response: requests.Response, url: str, plan: ModelPlan[HttpsTarget]) -> DownloadError:
    status = response.status_code
    where = redact_url(url)
    if status in (401, 403):
        sent = f"secret {plan.secret!r} was sent" if plan.secret else "no secret was sent"
        return DownloadError(
            f"{where}: HTTP {status} {response.reason} ({sent})",
            hint="check the secret's content and the targetUri entries (model-fetcher explain)",
        )
    if status in RETRY_STATUSES:
        return DownloadError(f"{where}: HTTP {status} {response.reason}, still after retries")
    return DownloadError(f"{where}: HTTP {status} {response.reason}")


def _validators(resource: Resource) -> dict[str, Any] | None:
    """The validator (ETag, else Last-Modified) and size; None when the server gives no validator."""
    if resource.validator is None:
        return None
    return {"validator": resource.validator, "size": resource.size}


def _hashed(chunks: Iterator[bytes], digest: "hashlib._Hash | None") -> Iterator[bytes]:
    for chunk in chunks:
        if digest is not None:
            digest.update(chunk)
        yield chunk


Source = HttpsSource
