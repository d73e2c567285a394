"""Resilient HTTP(S) reads of one file: retries, resume by Range, ranges for the parts a zip needs.

The whole body in order (``body``), its tail (``read_tail``) or any range of it (``open_range``);
an interrupted transfer is resumed from where it broke off (``Range`` with ``If-Range``), never
restarted from zero when it can be avoided. Authorization goes only to the origin it was
chosen for; redirects to plain http from https are refused.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, Iterator
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from fetcher.credentials.secrets import SecretValue
from fetcher.buffers import READ_SIZE
from fetcher.errors import DownloadError, TooLargeError, os_reason
from fetcher.lease.uri import redact_url
from fetcher.progress import ModelProgress
from fetcher.sources.parallel_download import RetryableTransferError

MAX_REDIRECTS = 5
RETRY_STATUSES = (429, 500, 502, 503, 504)
RESUME_ATTEMPTS = 5


@dataclass(frozen=True)
class HttpSettings:
    ca_bundle: str | None
    connect_timeout: float
    read_timeout: float
    max_bytes: int
    concurrency: int
    deadline: float  # time.monotonic() after which the transfer gives up


@dataclass(frozen=True)
class Resource:
    """What the first response said about the file."""

    url: str  # after redirects
    size: int | None
    accepts_ranges: bool
    validator: str | None  # ETag or Last-Modified, for If-Range


def make_session(pool_size: int) -> requests.Session:
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
    adapter = HTTPAdapter(max_retries=retry, pool_connections=2, pool_maxsize=max(pool_size, 4))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


class HttpDownload:
    """One file's download. ``describe_status`` turns a final non-2xx response into a DownloadError."""

    def __init__(self, url: str, secret: SecretValue | None, settings: HttpSettings,
                 describe_status: Callable[[requests.Response, str], DownloadError],
                 progress: ModelProgress | None = None) -> None:
        self.start_url = url
        self.progress = progress
        self.secret = secret
        self.settings = settings
        self.describe_status = describe_status
        self.session = make_session(settings.concurrency * 4)  # zips: each worker may read ahead in parts
        self.resource: Resource | None = None  # what the first response of open said

    def close(self) -> None:
        self.session.close()

    def open(self, recorded: str | None = None) -> tuple[Resource, requests.Response]:
        """GET the file: what the response says about it, and the response, its body unread.

        With the validator ``recorded`` by an earlier, killed run, only one byte is asked for, with
        ``If-Range`` on it: a 206 says the file is the same (the kept bytes are good), a 200 with
        the whole body that it changed.
        """
        if recorded is not None:
            response = self._open(self.start_url, first_byte=0, last_byte=0, validator=recorded)
        else:
            response = self._open(self.start_url, first_byte=0, validator=None)
        resource = self.resource = self.describe(response)
        if resource.size is not None and resource.size > self.settings.max_bytes:
            response.close()
            raise self._too_large()
        if self.progress is not None:
            self.progress.expect(resource.size)
        return resource, response

    def describe(self, response: requests.Response) -> Resource:
        """What a first response (a whole body, or a range) says about the file."""
        return Resource(
            url=response.url,
            size=_content_length(response),
            accepts_ranges=(response.status_code == 206
                            or response.headers.get("Accept-Ranges", "").lower() == "bytes"),
            validator=response.headers.get("ETag") or response.headers.get("Last-Modified"),
        )

    def probe(self) -> Resource:
        """What the server says about the file now, for one byte of it (a change check)."""
        response = self._open(self.start_url, first_byte=0, last_byte=0, validator=None)
        response.close()  # a server without ranges sends the whole file: it is not read
        return self.describe(response)

    def body(self, resource: Resource, response: requests.Response) -> Iterator[bytes]:
        """The whole file, in order, from ``response`` (of ``open``) on. A break is resumed with a Range,
        or from a server without ranges by a new GET whose bytes already handed over are dropped."""
        position = 0  # bytes handed over
        for attempt in range(1, RESUME_ATTEMPTS + 2):
            offset = _first_byte(response)
            try:
                with response:
                    while chunk := response.raw.read1(READ_SIZE):
                        if offset < position:  # a new GET from the start: skip what was handed over
                            drop = min(len(chunk), position - offset)
                            offset += drop
                            chunk = chunk[drop:]
                            if not chunk:
                                continue
                        offset += len(chunk)
                        if resource.size is not None and offset > resource.size:
                            raise DownloadError(f"{redact_url(resource.url)}: the server sent more than it announced")
                        if offset > self.settings.max_bytes:
                            raise self._too_large()
                        self._check_deadline()
                        position = offset
                        self._count(len(chunk))
                        yield chunk
                if resource.size is None or position >= resource.size:
                    return
                cause = "the body ended early"
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError,
                    requests.exceptions.Timeout, urllib3.exceptions.HTTPError) as exc:
                cause = _cause(exc)
            if attempt > RESUME_ATTEMPTS:
                raise DownloadError(f"{redact_url(resource.url)}: the transfer broke off {attempt} times, "
                                    f"last after {position} bytes: {cause}")
            self._pause(attempt)
            response = self._open(resource.url, first_byte=position if resource.accepts_ranges else 0,
                                  validator=resource.validator)
            validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
            if response.status_code == 200 and resource.validator and validator and validator != resource.validator:
                response.close()
                raise DownloadError(f"{redact_url(resource.url)}: the file changed during the download",
                                    hint="try again once the file on the server is complete")
            if response.status_code == 206 and self.progress is not None:
                self.progress.reused("resume", position)

    def read_tail(self, resource: Resource, start: int) -> bytes | None:
        """The file's bytes from ``start`` to its end by one range request, or None when the server
        answers with the whole file (it ignores ranges although it advertised them)."""
        assert resource.size is not None
        for attempt in range(1, RESUME_ATTEMPTS + 2):
            response = self._open(resource.url, first_byte=start, validator=resource.validator,
                                  last_byte=resource.size - 1)
            with response:
                if response.status_code != 206:
                    return None
                try:
                    data = b"".join(iter(lambda: response.raw.read1(READ_SIZE), b""))
                    cause = f"{len(data)} of {resource.size - start} bytes came"
                except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                        urllib3.exceptions.HTTPError) as exc:
                    data, cause = b"", _cause(exc)
            self._count(len(data))
            if len(data) == resource.size - start:
                return data
            if attempt > RESUME_ATTEMPTS:
                raise DownloadError(f"{redact_url(resource.url)}: the read of the archive's end broke off "
                                    f"{attempt} times: {cause}")
            self._pause(attempt)
        raise AssertionError("unreachable")

    def open_range(self, resource: Resource, start: int, end: int) -> RangeBody:
        """The bytes [start, end) of the file, read into the caller's buffers (``RangeBody.readinto``)."""
        response = self._open(resource.url, first_byte=start, validator=resource.validator, last_byte=end - 1)
        if response.status_code != 206:
            response.close()
            # A 200 is legal: either If-Range saw a new validator (the file changed), or the server
            # ignores ranges although it advertised them (some CDNs and proxies do).
            validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
            if resource.validator is not None and validator is not None and validator != resource.validator:
                raise DownloadError(f"{redact_url(resource.url)}: the file changed during the download "
                                    f"(its validator went from {resource.validator} to {validator})",
                                    hint="try again once the file on the server is complete")
            raise DownloadError(f"{redact_url(resource.url)}: the server answered a range with the whole file "
                                "after it had answered one with a part")
        return RangeBody(response, self._count)

    def check_deadline(self) -> None:
        self._check_deadline()

    def _count(self, received: int) -> None:
        if self.progress is not None:
            self.progress.add(received)

    # -- shared pieces ----------------------------------------------------------------------

    def _open(self, url: str, *, first_byte: int, validator: str | None, last_byte: int | None = None) -> requests.Response:
        """GET ``url`` (following redirects by hand) and return a 200/206 response, or raise."""
        for _ in range(MAX_REDIRECTS + 1):
            self._check_deadline()
            headers = {"Accept-Encoding": "identity"}  # bytes as stored: ranges and lengths refer to them
            if self.secret is not None and origin(url) == origin(self.start_url):
                headers["Authorization"] = self.secret.reveal()
            if first_byte or last_byte is not None:
                headers["Range"] = f"bytes={first_byte}-{'' if last_byte is None else last_byte}"
                if validator:
                    headers["If-Range"] = validator
            response = self._get(url, headers)
            if response.is_redirect:
                location = response.headers.get("Location", "")
                response.close()
                next_url = urljoin(url, location)
                if urlsplit(url).scheme == "https" and urlsplit(next_url).scheme != "https":
                    raise DownloadError(f"{redact_url(url)} redirects to plain http; the downgrade is refused")
                url = next_url
                continue
            if response.status_code in (200, 206):
                return response
            try:
                raise self.describe_status(response, url)
            finally:
                response.close()
        raise DownloadError(f"{redact_url(self.start_url)}: more than {MAX_REDIRECTS} redirects")

    def _get(self, url: str, headers: dict[str, str]) -> requests.Response:
        verify: str | bool = self.settings.ca_bundle or True
        timeout = (self.settings.connect_timeout, self.settings.read_timeout)
        try:
            return self.session.get(url, headers=headers, stream=True, verify=verify, timeout=timeout,
                                    allow_redirects=False)
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
            raise DownloadError(f"{redact_url(url)}: no answer within {self.settings.read_timeout:.0f}s") from None
        except requests.RequestException as exc:
            raise DownloadError(f"{redact_url(url)}: {_cause(exc)}") from None

    def _check_deadline(self) -> None:
        if time.monotonic() > self.settings.deadline:
            raise DownloadError(f"{redact_url(self.start_url)}: the download passed its deadline",
                                hint="raise --model-timeout for very large models or slow servers")

    def _too_large(self) -> TooLargeError:
        return TooLargeError(f"{redact_url(self.start_url)}: the download", self.settings.max_bytes)

    def _pause(self, attempt: int) -> None:
        delay = min(0.1 * 2**attempt, 5.0) * (0.5 + random.random() / 2)
        if time.monotonic() + delay > self.settings.deadline:
            self._check_deadline()
        time.sleep(delay)


class RangeBody:
    """The body of one range response. ``readinto`` fills the caller's buffer in one call (urllib3 and
    http.client loop over the TLS records below it), rather than a bytes object per TLS record passed
    up through generators: a large range costs one pass of Python per buffer."""

    def __init__(self, response: requests.Response, count: Callable[[int], None]) -> None:
        self._response = response
        self._count = count

    def readinto(self, buffer: memoryview) -> int:
        """Bytes read into ``buffer``, as many as fit unless the body ends first; 0 once it ended.
        A broken stream raises RetryableTransferError."""
        try:
            count = self._response.raw.readinto(buffer)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                urllib3.exceptions.HTTPError) as exc:
            raise RetryableTransferError(_cause(exc)) from None
        self._count(count)
        return count

    def close(self) -> None:
        self._response.close()


def _first_byte(response: requests.Response) -> int:
    """Where the body of a 200 or 206 response starts in the file."""
    if response.status_code != 206:
        return 0
    first = response.headers.get("Content-Range", "").removeprefix("bytes ").partition("-")[0]
    return int(first) if first.isdigit() else 0


def _content_length(response: requests.Response) -> int | None:
    if response.status_code == 206:
        content_range = response.headers.get("Content-Range", "")
        total = content_range.rsplit("/", 1)[-1]
        return int(total) if total.isdigit() else None
    value = response.headers.get("Content-Length", "")
    return int(value) if value.isdigit() else None


def _cause(exc: BaseException) -> str:
    """A short cause without URLs (which may carry query tokens) or header values."""
    inner: BaseException | None = exc
    while inner is not None and inner.__context__ is not None and not isinstance(inner, OSError):
        inner = inner.__context__
    name = type(inner or exc).__name__
    text = str(getattr(inner, "strerror", "") or "") if inner is not None else ""
    text = text or os_reason(exc) or ""  # requests hides "Connection refused" deeper than the context chain
    return f"{name}{': ' + text if text else ''}"
