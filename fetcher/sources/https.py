"""HTTP(S) models: a zip of one Triton model directory, fetched with the matching Authorization secret."""

from __future__ import annotations

import ipaddress
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

from fetcher.archive.layout import find_model_root
from fetcher.archive.zip_extract import extract_zip
from fetcher.credentials.secrets import SecretValue
from fetcher.credentials.target_uri import choose_secret
from fetcher.errors import DownloadError, IntegrityError, SecretError
from fetcher.file_digest import sha256_hex
from fetcher.lease.model_spec import ModelSpec
from fetcher.lease.uri import redact_url
from fetcher.lease.values import HttpsRepository, LeaseValues
from fetcher.progress import ModelProgress
from fetcher.sources.base import FetchedModel, FetchOptions, ModelPlan
from fetcher.sources.http_transfer import RETRY_STATUSES, HttpDownload, HttpSettings, Resource
from fetcher.sources.resume_journal import TransferJournal


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
        archive = workdir / "model.zip"
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
        try:
            transferred = download.fetch_to(str(archive), TransferJournal(workdir / "journal"))
            resource = download.resource
        finally:
            download.close()
        if plan.spec.sha256 is not None and sha256_hex(archive) != plan.spec.sha256:
            archive.unlink()
            raise IntegrityError(f"{plan.location}: the sha256 of the download does not match the model spec",
                                 hint="the file on the server is not the one the lease pins; nothing was installed")
        progress.phase("unpack")
        extracted = workdir / "extracted"
        shutil.rmtree(extracted, ignore_errors=True)  # a killed run's half extraction: the archive is whole
        extracted.mkdir()
        extract_zip(archive, extracted, max_bytes=self.options.max_model_bytes, workers=self.options.transfer_concurrency)
        archive.unlink()
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


Source = HttpsSource
