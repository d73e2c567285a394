"""Transient faults survived, permanent ones reported at once: real server, injected faults."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from devkit.https_server import Fault, serve_files
from fetcher.errors import DownloadError
from fetcher.sources.http_transfer import HttpDownload, HttpSettings

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
                  deadline=time.monotonic() + 60, parallel_min_bytes=1 << 40, part_bytes=1 << 20)
    values.update(changes)
    return HttpSettings(**values)


def download(url: str, target: Path, **changes) -> int:
    def status_error(response, where):
        return DownloadError(f"{where}: HTTP {response.status_code}")

    transfer = HttpDownload(url, None, settings(**changes), status_error)
    try:
        return transfer.fetch_to(str(target))
    finally:
        transfer.close()


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


def test_a_file_changed_between_tries_is_fetched_whole_again(tmp_path: Path, big_file: Path) -> None:
    with serve_files(big_file.parent) as server:
        server.state.faults["/weights.zip"] = Fault(times=1, drop_after=700_000)

        def change_after_first_request() -> None:
            server.state.etag = '"v2"'

        result = download_with_hook(server, tmp_path, change_after_first_request)
        # If-Range "v1" no longer holds: the server sends the whole file (200) and the fetcher starts over.
        assert [r.headers.get("If-Range") for r in server.requests_for("/weights.zip")] == [None, '"v1"']
        assert server.state.body_bytes_sent == 700_000 + SIZE
    assert result == SIZE
    assert (tmp_path / "out").read_bytes() == big_file.read_bytes()


def download_with_hook(server, tmp_path: Path, hook) -> int:
    """Download, calling ``hook`` once the first response has been read (the file 'changes' then)."""
    import fetcher.sources.http_transfer as transfer_module

    original = transfer_module.HttpDownload._copy_body
    calls = {"n": 0}

    def copy_body(self, fd, response, position, *, end):
        calls["n"] += 1
        if calls["n"] == 1:
            try:
                return original(self, fd, response, position, end=end)
            finally:
                hook()
        return original(self, fd, response, position, end=end)

    transfer_module.HttpDownload._copy_body = copy_body
    try:
        return download(server.url("weights.zip"), tmp_path / "out")
    finally:
        transfer_module.HttpDownload._copy_body = original


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


def test_parallel_ranged_parts_are_written_in_place(tmp_path: Path, big_file: Path) -> None:
    with serve_files(big_file.parent) as server:
        server.state.faults["/weights.zip"] = Fault(times=0)
        assert download(server.url("weights.zip"), tmp_path / "out", parallel_min_bytes=1, part_bytes=1 << 20) == SIZE
        ranges = sorted(r.headers.get("Range") or "" for r in server.requests_for("/weights.zip"))
    assert (tmp_path / "out").read_bytes() == big_file.read_bytes()
    assert len([r for r in ranges if r]) == 4  # 3 MiB + a bit in 1 MiB parts
    assert "bytes=3145728-3158072" in ranges


def test_a_broken_part_is_resumed_from_where_it_stopped(tmp_path: Path, big_file: Path) -> None:
    with serve_files(big_file.parent) as server:
        # The first request (the probe) is closed unread; then parts; two of them break off.
        server.state.faults["/weights.zip"] = Fault(times=3, drop_after=300_000)
        assert download(server.url("weights.zip"), tmp_path / "out", parallel_min_bytes=1, concurrency=2) == SIZE
    assert (tmp_path / "out").read_bytes() == big_file.read_bytes()


def test_a_server_that_advertises_ranges_but_ignores_them_gets_one_stream(tmp_path: Path, big_file: Path) -> None:
    with serve_files(big_file.parent) as server:
        server.state.ignore_ranges = True  # Accept-Ranges: bytes, yet 200 and the whole file for a Range
        assert download(server.url("weights.zip"), tmp_path / "out", parallel_min_bytes=1, part_bytes=1 << 20) == SIZE
        ranges = [r.headers.get("Range") for r in server.requests_for("/weights.zip")]
    assert (tmp_path / "out").read_bytes() == big_file.read_bytes()
    assert ranges[0] is None and ranges[-1] is None and any(ranges[1:-1])  # probe, parts tried, one stream
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "site"]  # the parts' folder is gone


def test_a_file_that_changes_between_parts_is_reported_as_changed(tmp_path: Path, big_file: Path) -> None:
    import fetcher.sources.http_transfer as transfer_module

    original = transfer_module.HttpDownload._fetch_parts
    with serve_files(big_file.parent) as server:
        def fetch_parts(self, resource, target, *rest):
            server.state.etag = '"v2"'  # the file is replaced after the first response
            return original(self, resource, target, *rest)

        transfer_module.HttpDownload._fetch_parts = fetch_parts
        try:
            with pytest.raises(DownloadError, match=r'the file changed during the download \(its validator went '
                                                    r'from "v1" to "v2"\)'):
                download(server.url("weights.zip"), tmp_path / "out", parallel_min_bytes=1, part_bytes=1 << 20)
        finally:
            transfer_module.HttpDownload._fetch_parts = original


def test_a_refused_connection_says_so(tmp_path: Path) -> None:
    from devkit.ports import free_port

    url = f"http://127.0.0.1:{free_port()}/weights.zip"
    with pytest.raises(DownloadError, match="cannot connect: .*Connection refused"):
        download(url, tmp_path / "out.zip")
