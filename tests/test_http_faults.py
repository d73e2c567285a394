"""Transient faults survived, permanent ones reported at once: real server, injected faults."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from devkit.https_server import Fault, serve_files
from fetcher.errors import DownloadError
from fetcher.sources.http_transfer import HttpDownload, HttpSettings
from fetcher.sources.parallel_download import RetryableTransferError

SIZE = 3 * 1024 * 1024 + 12345


@pytest.fixture()
def big_file(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir(exist_ok=True)
    path = folder / "weights.zip"
    path.write_bytes(os.urandom(SIZE))
    return path


def settings(**changes) -> HttpSettings:
    values = dict(ca_bundle=None, connect_timeout=5.0, read_timeout=5.0, max_bytes=1 << 30, concurrency=4,
                  deadline=time.monotonic() + 60)
    values.update(changes)
    return HttpSettings(**values)


def transfer(url: str, **changes) -> HttpDownload:
    def status_error(response, where):
        return DownloadError(f"{where}: HTTP {response.status_code}")

    return HttpDownload(url, None, settings(**changes), status_error)


def download(url: str, target: Path, *, after_open=None, **changes) -> int:
    """The whole file in order, as the zip reader takes it from a server without usable ranges."""
    download = transfer(url, **changes)
    try:
        resource, response = download.open()
        if after_open is not None:
            after_open()
        with open(target, "wb") as out:
            for chunk in download.body(resource, response):
                out.write(chunk)
        return target.stat().st_size
    finally:
        download.close()


def test_a_reset_mid_body_is_resumed_with_a_range(tmp_path: Path, big_file: Path) -> None:
    with serve_files(big_file.parent) as server:
        server.state.faults["/weights.zip"] = Fault(times=2, drop_after=1_000_000)
        assert download(server.url("weights.zip"), tmp_path / "out") == SIZE
        ranges = [r.headers.get("Range") for r in server.requests_for("/weights.zip")]
        if_ranges = [r.headers.get("If-Range") for r in server.requests_for("/weights.zip")]
    assert (tmp_path / "out").read_bytes() == big_file.read_bytes()
    assert ranges == [None, "bytes=1000000-", "bytes=2000000-"]
    assert if_ranges[1:] == ['"v1"', '"v1"']
    # Resumed, not restarted: every byte crossed the wire once.
    assert server.state.body_bytes_sent == SIZE


def test_without_ranges_an_interrupted_transfer_starts_over(tmp_path: Path, big_file: Path) -> None:
    with serve_files(big_file.parent) as server:
        server.state.accept_ranges = False
        server.state.faults["/weights.zip"] = Fault(times=1, drop_after=500_000)
        assert download(server.url("weights.zip"), tmp_path / "out") == SIZE
    assert (tmp_path / "out").read_bytes() == big_file.read_bytes()


def test_a_file_changed_between_tries_is_never_mixed(tmp_path: Path, big_file: Path) -> None:
    with serve_files(big_file.parent) as server:
        server.state.faults["/weights.zip"] = Fault(times=1, drop_after=700_000)

        def change_after_first_response() -> None:
            server.state.etag = '"v2"'

        # If-Range "v1" no longer holds: the server sends the whole new file (200), which is refused
        # rather than joined to the first 700,000 bytes of the old one.
        with pytest.raises(DownloadError, match="the file changed during the download"):
            download(server.url("weights.zip"), tmp_path / "out", after_open=change_after_first_response)
        assert [r.headers.get("If-Range") for r in server.requests_for("/weights.zip")] == [None, '"v1"']


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(tmp_path: Path, big_file: Path, status: int) -> None:
    with serve_files(big_file.parent) as server:
        server.state.faults["/weights.zip"] = Fault(times=2, status=status, retry_after="0")
        assert download(server.url("weights.zip"), tmp_path / "out") == SIZE
        assert len(server.requests_for("/weights.zip")) == 3


@pytest.mark.parametrize("status", [401, 403, 404])
def test_permanent_statuses_fail_at_once(tmp_path: Path, big_file: Path, status: int) -> None:
    with serve_files(big_file.parent) as server:
        server.state.faults["/weights.zip"] = Fault(times=5, status=status)
        with pytest.raises(DownloadError, match=f"HTTP {status}"):
            download(server.url("weights.zip"), tmp_path / "out")
        assert len(server.requests_for("/weights.zip")) == 1


def test_a_stalled_server_hits_the_read_timeout(tmp_path: Path, big_file: Path) -> None:
    with serve_files(big_file.parent) as server:
        server.state.accept_ranges = False
        server.state.faults["/weights.zip"] = Fault(times=10, stall_seconds=30)
        started = time.monotonic()
        with pytest.raises(DownloadError):
            download(server.url("weights.zip"), tmp_path / "out", read_timeout=0.5, deadline=time.monotonic() + 4)
        assert time.monotonic() - started < 15


def test_the_overall_deadline_stops_a_slow_transfer(tmp_path: Path, big_file: Path) -> None:
    with serve_files(big_file.parent) as server:
        server.state.faults["/weights.zip"] = Fault(times=100, drop_after=100_000)
        with pytest.raises(DownloadError, match="deadline|broke off"):
            download(server.url("weights.zip"), tmp_path / "out", deadline=time.monotonic() + 1.0)


def read_range(url: str, start: int, end: int, *, after_open=None) -> bytes:
    """The bytes [start, end) as the zip reader takes them: into a buffer, then nothing more."""
    download = transfer(url)
    try:
        resource, response = download.open()
        response.close()
        if after_open is not None:
            after_open()
        body = download.open_range(resource, start, end)
        try:
            buffer = bytearray(end - start + 1)
            count = body.readinto(memoryview(buffer))
            assert body.readinto(memoryview(buffer)) == 0
            return bytes(buffer[:count])
        finally:
            body.close()
    finally:
        download.close()


def test_a_range_is_read_with_if_range(big_file: Path) -> None:
    with serve_files(big_file.parent) as server:
        assert read_range(server.url("weights.zip"), 3145728, SIZE) == big_file.read_bytes()[3145728:]
        last = server.requests_for("/weights.zip")[-1]
    assert last.headers.get("Range") == "bytes=3145728-3158072"
    assert last.headers.get("If-Range") == '"v1"'


def test_a_range_cut_off_raises_a_retryable_error(big_file: Path) -> None:
    with serve_files(big_file.parent) as server:
        server.state.faults["/weights.zip"] = Fault(times=2, drop_after=100_000)
        with pytest.raises(RetryableTransferError):
            read_range(server.url("weights.zip"), 1 << 20, 2 << 20)


def test_a_server_that_advertises_ranges_but_ignores_them_is_told_apart(big_file: Path) -> None:
    with serve_files(big_file.parent) as server:
        server.state.ignore_ranges = True  # Accept-Ranges: bytes, yet 200 and the whole file for a Range
        with pytest.raises(DownloadError, match="answered a range with the whole file"):
            read_range(server.url("weights.zip"), 1 << 20, 2 << 20)


def test_a_file_that_changes_between_ranges_is_reported_as_changed(big_file: Path) -> None:
    with serve_files(big_file.parent) as server:
        def replace_the_file() -> None:
            server.state.etag = '"v2"'  # the file is replaced after the first response

        with pytest.raises(DownloadError, match=r'the file changed during the download \(its validator went '
                                                r'from "v1" to "v2"\)'):
            read_range(server.url("weights.zip"), 1 << 20, 2 << 20, after_open=replace_the_file)


def test_a_refused_connection_says_so(tmp_path: Path) -> None:
    from devkit.ports import free_port

    url = f"http://127.0.0.1:{free_port()}/weights.zip"
    with pytest.raises(DownloadError, match="cannot connect: .*Connection refused"):
        download(url, tmp_path / "out.zip")
