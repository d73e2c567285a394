"""HTTP(S) models: a zip of one Triton model directory, fetched with the matching Authorization secret."""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from fetcher.archive.layout import find_model_root
from fetcher.archive.zip_extract import extract_zip
from fetcher.credentials.secrets import SecretValue
from fetcher.credentials.target_uri import choose_secret
from fetcher.errors import DownloadError, SecretError
from fetcher.lease.model_spec import ModelSpec
from fetcher.lease.uri import redact_url
from fetcher.lease.values import LeaseValues
from fetcher.sources.base import FetchedModel, FetchOptions, ModelPlan

CHUNK = 1024 * 1024
MAX_REDIRECTS = 5
RETRY_STATUSES = (429, 500, 502, 503, 504)


def plan_https(spec: ModelSpec, lease: LeaseValues) -> ModelPlan:
    choice = choose_secret(spec.uri.text, lease.https)
    return ModelPlan(
        spec=spec,
        source="https",
        repository=None,
        location=redact_url(spec.uri.text),
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


def _session(options: FetchOptions) -> requests.Session:
    session = requests.Session()
    retry = Retry(
        total=4,
        connect=4,
        read=2,
        status=4,
        backoff_factor=0.25,
        backoff_jitter=0.25,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,
        redirect=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class HttpsSource:
    def __init__(self, options: FetchOptions) -> None:
        self.options = options

    def fetch(self, plan: ModelPlan, workdir: Path) -> FetchedModel:
        secret = self._secret(plan)
        archive = workdir / "model.zip"
        transferred = self._download(plan, secret, archive)
        extracted = workdir / "extracted"
        extracted.mkdir()
        extract_zip(archive, extracted, max_bytes=self.options.max_model_bytes)
        archive.unlink()
        model_dir = find_model_root(extracted, what=f"the zip from {plan.location}")
        return FetchedModel(model_dir=model_dir, bytes_transferred=transferred)

    def _secret(self, plan: ModelPlan) -> SecretValue | None:
        if plan.secret is None:
            return None
        parts = urlsplit(plan.spec.uri.text)
        if parts.scheme == "http" and not is_loopback(parts.hostname or "") and not self.options.allow_plain_http_credentials:
            raise SecretError(
                f"refusing to send secret {plan.secret!r} over plain http to {parts.hostname}",
                hint="serve the model over https, or pass --allow-plain-http-credentials",
            )
        return self.options.secrets.read(plan.secret)

    def _download(self, plan: ModelPlan, secret: SecretValue | None, target: Path) -> int:
        url = plan.spec.uri.text
        origin = _origin(url)
        verify: str | bool = self.options.ca_bundle or True
        timeout = (self.options.connect_timeout, self.options.read_timeout)
        digest = hashlib.sha256() if plan.spec.sha256 else None
        with _session(self.options) as session:
            response = None
            for _ in range(MAX_REDIRECTS + 1):
                headers = {}
                if secret is not None and _origin(url) == origin:
                    headers["Authorization"] = secret.reveal()
                response = self._get(session, url, headers, verify, timeout, plan)
                if not response.is_redirect:
                    break
                location = response.headers.get("Location", "")
                response.close()
                next_url = urljoin(url, location)
                if urlsplit(url).scheme == "https" and urlsplit(next_url).scheme != "https":
                    raise DownloadError(f"{redact_url(url)} redirects to plain http; the downgrade is refused")
                url = next_url
            else:
                raise DownloadError(f"{plan.location}: more than {MAX_REDIRECTS} redirects")
            assert response is not None
            with response:
                self._check_status(response, plan, url)
                expected = response.headers.get("Content-Length")
                written = 0
                try:
                    with open(target, "wb") as out:
                        for chunk in response.iter_content(CHUNK):
                            written += len(chunk)
                            if written > self.options.max_model_bytes:
                                raise DownloadError(
                                    f"{plan.location}: the download is larger than the limit of "
                                    f"{self.options.max_model_bytes} bytes",
                                    hint="raise --max-model-size if the model really is that large",
                                )
                            if digest is not None:
                                digest.update(chunk)
                            out.write(chunk)
                except requests.RequestException as exc:
                    raise DownloadError(f"{plan.location}: the transfer broke off after {written} bytes: {_cause(exc)}") from None
                except OSError as exc:
                    raise DownloadError(f"cannot write the download: {exc.strerror}") from None
        if expected is not None and expected.isdigit() and int(expected) != written:
            raise DownloadError(f"{plan.location}: received {written} bytes of {expected}")
        if digest is not None and digest.hexdigest() != plan.spec.sha256:
            raise DownloadError(f"{plan.location}: sha256 of the download does not match the model spec")
        return written

    def _get(self, session: requests.Session, url: str, headers: dict[str, str], verify: str | bool,
             timeout: tuple[float, float], plan: ModelPlan) -> requests.Response:
        try:
            return session.get(url, headers=headers, stream=True, verify=verify, timeout=timeout, allow_redirects=False)
        except requests.exceptions.SSLError:
            raise DownloadError(
                f"{redact_url(url)}: TLS verification failed",
                hint="give the server's CA with --ca-bundle, or fix the server's certificate",
            ) from None
        except requests.exceptions.RetryError:
            raise DownloadError(f"{redact_url(url)}: the server kept failing after retries") from None
        except requests.exceptions.ConnectionError as exc:
            raise DownloadError(f"{redact_url(url)}: cannot connect: {_cause(exc)}") from None
        except requests.exceptions.Timeout:
            raise DownloadError(f"{redact_url(url)}: timed out") from None
        except requests.RequestException as exc:
            raise DownloadError(f"{redact_url(url)}: {_cause(exc)}") from None

    def _check_status(self, response: requests.Response, plan: ModelPlan, url: str) -> None:
        status = response.status_code
        if status == 200:
            return
        where = redact_url(url)
        if status in (401, 403):
            sent = f"secret {plan.secret!r} was sent" if plan.secret else "no secret was sent"
            raise DownloadError(
                f"{where}: HTTP {status} {response.reason} ({sent})",
                hint="check the secret's content and the targetUri entries (model-fetcher explain)",
            )
        if status == 404:
            raise DownloadError(f"{where}: HTTP 404 Not Found")
        if status in RETRY_STATUSES:
            raise DownloadError(f"{where}: HTTP {status} {response.reason}, still after retries")
        raise DownloadError(f"{where}: HTTP {status} {response.reason}")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


def _cause(exc: BaseException) -> str:
    """A short cause without URLs (which might carry query tokens) or header values."""
    inner: BaseException | None = exc
    while inner is not None and inner.__context__ is not None and not isinstance(inner, OSError):
        inner = inner.__context__
    name = type(inner or exc).__name__
    text = str(getattr(inner, "strerror", "") or "") if inner is not None else ""
    return f"{name}{': ' + text if text else ''}"

