"""Resilient HTTP(S) downloads into a file: retries, resume by Range, parallel ranged parts.

A server that accepts ranges gets a large file fetched in parallel parts written in place; any
server gets an interrupted transfer resumed from where it broke off (``Range`` with ``If-Range``),
never restarted from zero when it can be avoided. Authorization goes only to the origin it was
chosen for; redirects to plain http from https are refused.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from fetcher.credentials.secrets import SecretValue
from fetcher.buffers import READ_SIZE
from fetcher.errors import DownloadError, TooLargeError, WriteError, os_reason
from fetcher.lease.uri import redact_url
from fetcher.logs import get_logger
from fetcher.progress import ModelProgress
from fetcher.sources.parallel_download import ParallelDownload, RemoteFile, RetryableTransferError
from fetcher.sources.parallel_download import TransferSettings as PartSettings
from fetcher.sources.resume_journal import TransferJournal

MAX_REDIRECTS = 5
RETRY_STATUSES = (429, 500, 502, 503, 504)
PARALLEL_MIN_BYTES = 64 * 1024 * 1024
PART_BYTES = 32 * 1024 * 1024
RESUME_ATTEMPTS = 5


@dataclass(frozen=True)
class HttpSettings:
    ca_bundle: str | None
    connect_timeout: float
    read_timeout: float
    max_bytes: int
    concurrency: int
    deadline: float  # time.monotonic() after which the transfer gives up
    parallel_min_bytes: int = PARALLEL_MIN_BYTES
    part_bytes: int = PART_BYTES


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

    def fetch_to(self, target: str, journal: TransferJournal | None = None) -> int:
        """Download into ``target``; return the bytes received. The file is complete when it returns.

        With a ``journal`` (the model's resumable work folder), a large file's parts are recorded as
        they are written, and a later call resumes them after asking with the recorded validator.
        """
        recorded = journal.previous().get(Path(target).name) if journal is not None else None
        resource, response = self.open(recorded.validator if recorded is not None else None)
        parallel = (resource.accepts_ranges and resource.size is not None
                    and resource.size >= self.settings.parallel_min_bytes and self.settings.concurrency > 1)
        if parallel:
            response.close()
            assert resource.size is not None
            return self._fetch_parts(resource, target, journal)
        if response.status_code == 206:  # the one-byte probe of a resume: now the whole (small) file
            response.close()
            response = self._open(resource.url, first_byte=0, validator=None)
        return self._fetch_stream(target, resource, response)

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

    # -- single stream, resumed by Range when it breaks off ------------------------------------

    def _fetch_stream(self, target: str, resource: Resource, response: requests.Response) -> int:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            return self._stream_into(fd, resource, response)
        finally:
            os.close(fd)

    def _stream_into(self, fd: int, resource: Resource, response: requests.Response) -> int:
        written = 0
        for attempt in range(1, RESUME_ATTEMPTS + 2):
            try:
                written = self._copy_body(fd, response, written, end=resource.size)
                return written
            except _Interrupted as broken:
                written = broken.written
                if attempt > RESUME_ATTEMPTS:
                    raise DownloadError(
                        f"{redact_url(resource.url)}: the transfer broke off {attempt} times, "
                        f"last after {written} bytes: {broken.cause}"
                    ) from None
            self._pause(attempt)
            first_byte = written if resource.accepts_ranges else 0  # without ranges, only from the start
            response = self._open(resource.url, first_byte=first_byte, validator=resource.validator)
            if first_byte == 0 or response.status_code == 200:  # a whole body: the file changed, or no ranges
                if self.progress is not None:
                    self.progress.discard(written)
                written = 0
                os.ftruncate(fd, 0)
            elif self.progress is not None:
                self.progress.reused("resume", written)
        raise AssertionError("unreachable")

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

    def read_range(self, resource: Resource, start: int, end: int) -> Iterator[bytes]:
        """The bytes [start, end) of the file; a broken stream raises RetryableTransferError."""
        try:
            for chunk in self._read_range(resource, start, end):
                self._count(len(chunk))
                yield chunk
        except _RangesIgnored:
            raise DownloadError(f"{redact_url(resource.url)}: the server answered a range with the whole file "
                                "after it had answered one with a part") from None

    def check_deadline(self) -> None:
        self._check_deadline()

    def _count(self, received: int) -> None:
        if self.progress is not None:
            self.progress.add(received)

    # -- parallel parts written in place -----------------------------------------------------

    def _fetch_parts(self, resource: Resource, target: str, journal: TransferJournal | None) -> int:
        assert resource.size is not None
        path = Path(target)
        remote = RemoteFile(key=path.name, relative=path.name, size=resource.size, validator=resource.validator)
        settings = PartSettings(concurrency=self.settings.concurrency, part_size=self.settings.part_bytes,
                                multipart_threshold=self.settings.parallel_min_bytes - 1, attempts=RESUME_ATTEMPTS + 1)
        parts = ParallelDownload(lambda _file, start, end: self._read_range(resource, start, end), settings,
                                 where=redact_url(resource.url), deadline=self.settings.deadline,
                                 progress=self.progress, journal=journal)
        temp_dir = path.parent / f".{path.name}.parts"
        try:
            return parts.run((remote,), path.parent, temp_dir)
        except _RangesIgnored:
            shutil.rmtree(temp_dir, ignore_errors=True)
        get_logger().info("event=single-stream location=%s detail=the server advertises ranges but sent the whole "
                          "file for one; fetching it in one stream", redact_url(resource.url))
        single = Resource(url=resource.url, size=resource.size, accepts_ranges=False, validator=resource.validator)
        response = self._open(resource.url, first_byte=0, validator=None)
        return self._fetch_stream(target, single, response)

    def _read_range(self, resource: Resource, start: int, end: int) -> Iterator[bytes]:
        response = self._open(resource.url, first_byte=start, validator=resource.validator, last_byte=end - 1)
        with response:
            if response.status_code != 206:
                # A 200 is legal: either If-Range saw a new validator (the file changed), or the server
                # ignores ranges although it advertised them (some CDNs and proxies do).
                validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
                if resource.validator is not None and validator is not None and validator != resource.validator:
                    raise DownloadError(f"{redact_url(resource.url)}: the file changed during the download "
                                        f"(its validator went from {resource.validator} to {validator})",
                                        hint="try again once the file on the server is complete")
                raise _RangesIgnored()
            try:
                while chunk := response.raw.read1(READ_SIZE):
                    yield chunk
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                    urllib3.exceptions.HTTPError) as exc:
                raise RetryableTransferError(_cause(exc)) from None

    # -- shared pieces ----------------------------------------------------------------------

    def _copy_body(self, fd: int, response: requests.Response, position: int, *, end: int | None) -> int:
        """Write the body at ``position``; return the position after it, or raise _Interrupted."""
        try:
            with response:
                # read1 hands over whatever has arrived, so bytes before a break are kept for the resume.
                while chunk := response.raw.read1(READ_SIZE):
                    if end is not None and position + len(chunk) > end:
                        raise DownloadError(f"{redact_url(response.url)}: the server sent more than it announced")
                    if position + len(chunk) > self.settings.max_bytes:
                        raise self._too_large()
                    os.pwrite(fd, chunk, position)
                    position += len(chunk)
                    if self.progress is not None:
                        self.progress.add(len(chunk))
                    self._check_deadline()
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError,
                requests.exceptions.Timeout, urllib3.exceptions.HTTPError) as exc:
            raise _Interrupted(position, _cause(exc)) from None
        except OSError as exc:
            raise WriteError.of("cannot write the download", exc) from None
        if end is not None and position < end:
            raise _Interrupted(position, "the body ended early")
        return position

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


class _RangesIgnored(Exception):
    """A range request was answered with the whole, unchanged file."""


class _Interrupted(Exception):
    def __init__(self, written: int, cause: str) -> None:
        super().__init__(cause)
        self.written = written
        self.cause = cause


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
