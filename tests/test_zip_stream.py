"""Zips unpacked as they arrive over HTTPS: ranged reads of the central directory and the members, or
one sequential stream when the server ignores ranges; never a copy of the archive on disk."""

from __future__ import annotations

import io
import random
import threading
import zipfile
from pathlib import Path

import pytest
import yaml

from devkit.https_server import Fault, RunningServer
from devkit.models import model_files
from fetcher.archive.zip_stream import TAIL_BYTES

LARGE = 700_000  # three such members make the archive larger than the first read of its tail


def model_content(small_files: int = 40) -> dict[str, bytes]:
    rng = random.Random(12)
    files = dict(model_files("m"))
    for n in range(3):
        files[f"1/weights{n}.bin"] = rng.randbytes(LARGE)  # incompressible
    for n in range(small_files):
        files[f"1/vocab/{n:03}.txt"] = f"token {n}\n".encode() * (n + 1)
    return files


class _Unseekable(io.RawIOBase):
    """A write-only stream: zipfile writes data descriptors after each member's data."""

    def __init__(self) -> None:
        self.data = io.BytesIO()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        return self.data.write(data)


def write_zip(path: Path, files: dict[str, bytes], *, descriptors: bool = False,
              method: int = zipfile.ZIP_DEFLATED) -> Path:
    target: io.RawIOBase | Path = _Unseekable() if descriptors else path
    with zipfile.ZipFile(target, "w", compression=method) as zf:  # type: ignore[arg-type]
        for name, content in files.items():
            zf.writestr(name, content)
    if isinstance(target, _Unseekable):
        path.write_bytes(target.data.getvalue())
    return path


def fetch(tmp_path: Path, url: str, cli, ca_file: Path, *extra: str):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"lease": {"models": [f"name=m,uri={url}"]}}))
    root = tmp_path / "models" / "repository"
    result = cli("fetch", "--values", values, "--dest", root, "--termination-log", tmp_path / "termination-log",
                 "--ca-bundle", ca_file, *extra)
    return result, root


def assert_installed(root: Path, files: dict[str, bytes]) -> None:
    model = root / "m"
    found = {str(p.relative_to(model)): p.read_bytes() for p in model.rglob("*") if p.is_file()}
    assert set(found) == set(files)
    assert all(found[name] == content for name, content in files.items() if name != "config.pbtxt")


def break_crc(archive: Path, name: str) -> Path:
    """The archive with the CRC-32 of entry ``name`` changed, in its local header and central directory."""
    with zipfile.ZipFile(archive) as zf:
        crc = zf.getinfo(name).CRC.to_bytes(4, "little")
    data = archive.read_bytes()
    assert data.count(crc) == 2  # local header and central directory
    archive.write_bytes(data.replace(crc, (int.from_bytes(crc, "little") ^ 1).to_bytes(4, "little")))
    return archive


def ranges_asked(server: RunningServer, path: str) -> list[str]:
    return [r.headers["Range"] for r in server.requests_for(path) if "Range" in r.headers]


@pytest.fixture(params=["ranges", "no-ranges", "ranges-ignored"])
def mode(request: pytest.FixtureRequest, https_server: RunningServer) -> str:
    """A server that honours ranges, one that does not, and one that advertises them but sends whole files."""
    https_server.state.accept_ranges = request.param != "no-ranges"
    https_server.state.ignore_ranges = request.param == "ranges-ignored"
    return request.param


def test_a_zip_is_unpacked_straight_into_place(tmp_path: Path, https_server: RunningServer, mode: str,
                                               ca_file: Path, cli) -> None:
    files = model_content()
    archive = write_zip(https_server.state.root / "big.zip", files)
    assert archive.stat().st_size > TAIL_BYTES
    result, root = fetch(tmp_path, https_server.url("big.zip"), cli, ca_file)
    assert result.status == 0, result.stderr
    assert_installed(root, files)
    asked = ranges_asked(https_server, "/big.zip")
    if mode == "ranges":
        # The tail first, then the members: the 43 small ones grouped into a few requests, not one each.
        assert asked[0] == f"bytes={archive.stat().st_size - TAIL_BYTES}-{archive.stat().st_size - 1}"
        assert 1 < len(asked) <= 8
    elif mode == "no-ranges":
        assert asked == [] and len(https_server.requests_for("/big.zip")) == 1
    else:  # the tail asked once, answered whole: the zip read from a new GET in one stream
        assert len(asked) == 1 and len(https_server.requests_for("/big.zip")) == 3
        assert "event=single-stream" in result.stderr
    assert not list((tmp_path / "models").rglob("*.zip"))


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2])
def test_data_descriptors(tmp_path: Path, https_server: RunningServer, mode: str, method: int,
                          ca_file: Path, cli) -> None:
    files = model_content(small_files=5)
    archive = write_zip(https_server.state.root / "dd.zip", files, descriptors=True, method=method)
    with zipfile.ZipFile(archive) as zf:
        assert all(info.flag_bits & 0x8 for info in zf.infolist())
    result, root = fetch(tmp_path, https_server.url("dd.zip"), cli, ca_file)
    assert result.status == 0, result.stderr
    assert_installed(root, files)


@pytest.mark.parametrize("descriptors", [False, True])
def test_zip64_records(tmp_path: Path, https_server: RunningServer, mode: str, descriptors: bool,
                       monkeypatch: pytest.MonkeyPatch, ca_file: Path, cli) -> None:
    files = model_content(small_files=5)
    with monkeypatch.context() as patch:
        patch.setattr(zipfile, "ZIP64_LIMIT", 1000)  # every size and offset past it gets zip64 records
        archive = write_zip(https_server.state.root / "z64.zip", files, descriptors=descriptors)
    data = archive.read_bytes()
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data  # the zip64 end record and its locator
    result, root = fetch(tmp_path, https_server.url("z64.zip"), cli, ca_file)
    assert result.status == 0, result.stderr
    assert_installed(root, files)


def test_a_crc_mismatch_installs_nothing(tmp_path: Path, https_server: RunningServer, mode: str,
                                         ca_file: Path, cli) -> None:
    files = model_content(small_files=2)
    break_crc(write_zip(https_server.state.root / "crc.zip", files), "1/weights1.bin")
    result, root = fetch(tmp_path, https_server.url("crc.zip"), cli, ca_file)
    assert result.status == 1
    assert "model 'm'" in result.stderr and "CRC-32" in result.stderr
    assert not (root / "m").exists()


def test_a_truncated_archive_installs_nothing(tmp_path: Path, https_server: RunningServer, mode: str,
                                              ca_file: Path, cli) -> None:
    data = write_zip(tmp_path / "whole.zip", model_content(small_files=2)).read_bytes()
    (https_server.state.root / "cut.zip").write_bytes(data[: len(data) - 5000])  # no end record
    result, root = fetch(tmp_path, https_server.url("cut.zip"), cli, ca_file)
    assert result.status == 1
    assert "model 'm'" in result.stderr and ("truncated" in result.stderr or "not a valid zip" in result.stderr)
    assert not (root / "m").exists()


def test_a_body_that_keeps_breaking_off_installs_nothing(tmp_path: Path, https_server: RunningServer, mode: str,
                                                         ca_file: Path, cli) -> None:
    write_zip(https_server.state.root / "drop.zip", model_content(small_files=2))
    https_server.state.faults["/drop.zip"] = Fault(times=100, drop_after=300_000)
    result, root = fetch(tmp_path, https_server.url("drop.zip"), cli, ca_file)
    assert result.status == 1
    assert "model 'm'" in result.stderr and "broke" in result.stderr
    assert not (root / "m").exists()
    assert len(https_server.requests_for("/drop.zip")) <= 12  # retries are bounded


def test_a_broken_stream_is_resumed(tmp_path: Path, https_server: RunningServer, mode: str,
                                    ca_file: Path, cli) -> None:
    files = model_content(small_files=2)
    write_zip(https_server.state.root / "once.zip", files)
    https_server.state.faults["/once.zip"] = Fault(times=2, drop_after=300_000)
    result, root = fetch(tmp_path, https_server.url("once.zip"), cli, ca_file)
    assert result.status == 0, result.stderr
    assert_installed(root, files)


def test_a_sha256_is_checked_over_the_streamed_body(tmp_path: Path, https_server: RunningServer,
                                                    ca_file: Path, cli) -> None:
    import hashlib

    archive = write_zip(https_server.state.root / "h.zip", model_content(small_files=2))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    values = tmp_path / "values.yaml"
    root = tmp_path / "models" / "repository"
    for sha256, status in (("0" * 64, 1), (digest, 0)):
        values.write_text(yaml.safe_dump({"lease": {"models": [
            {"name": "m", "uri": https_server.url("h.zip"), "sha256": sha256}]}}))
        result = cli("fetch", "--values", values, "--dest", root, "--termination-log", tmp_path / "t",
                     "--ca-bundle", ca_file)
        assert result.status == status, result.stderr
        assert (root / "m").exists() == (status == 0)


BIG = 5_000_000  # a member of several chunks (CHUNK_SIZE), larger than the archive's tail


def big_member_content(seed: int) -> dict[str, bytes]:
    files = model_content(small_files=3)
    files["1/big.bin"] = random.Random(seed).randbytes(BIG)
    return files


def big_member_span(archive: Path) -> tuple[int, int]:
    """The offset of the big member's local header and the last byte of its data."""
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("1/big.bin")
        offsets = sorted(i.header_offset for i in zf.infolist()) + [zf.start_dir]
    return info.header_offset, offsets[offsets.index(info.header_offset) + 1] - 1


def transfer_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("transfer")]


def test_a_large_member_broken_off_resumes_at_the_byte_where_it_stopped(
        tmp_path: Path, https_server: RunningServer, ca_file: Path, cli) -> None:
    files = big_member_content(seed=1)
    archive = write_zip(https_server.state.root / "resume.zip", files)
    first, last = big_member_span(archive)
    # Every response breaks off after DROP bytes: the tail (1 MiB) and the small members' ranges pass,
    # the big member's stream breaks off three times (a fourth break would fail the fetch).
    drop = 1_500_000
    https_server.state.faults["/resume.zip"] = Fault(times=100, drop_after=drop)
    result, root = fetch(tmp_path, https_server.url("resume.zip"), cli, ca_file, "--transfer-concurrency", "2")
    assert result.status == 0, result.stderr
    assert_installed(root, files)
    starts = [int(r.removeprefix("bytes=").split("-")[0]) for r in ranges_asked(https_server, "/resume.zip")
              if r.endswith(f"-{last}")]
    assert starts[0] == first
    # Resumed where the bytes stopped, not from the member's local header. (Its last break is resumed
    # from the archive's tail, read first: no request.)
    assert len(starts) == 3 and all(0 < b - a <= drop for a, b in zip(starts, starts[1:]))
    assert not transfer_threads()


def test_a_failure_elsewhere_stops_a_large_member_at_once(tmp_path: Path, https_server: RunningServer,
                                                          ca_file: Path, cli) -> None:
    archive = break_crc(write_zip(https_server.state.root / "stop.zip", big_member_content(seed=2)), "1/weights0.bin")
    https_server.state.send_rate = 4_000_000  # the big member takes more than a second, the bad one little
    result, root = fetch(tmp_path, https_server.url("stop.zip"), cli, ca_file, "--transfer-concurrency", "2")
    assert result.status == 1
    assert "CRC-32" in result.stderr and "weights0.bin" in result.stderr
    assert https_server.state.body_bytes_sent < archive.stat().st_size - BIG // 2  # the big member was cut short
    assert not transfer_threads()
    assert not (root / "m").exists()
    assert not list(tmp_path.rglob("*.partial"))


def test_a_large_member_that_keeps_breaking_off_fails_cleanly(tmp_path: Path, https_server: RunningServer,
                                                              ca_file: Path, cli) -> None:
    write_zip(https_server.state.root / "broken.zip", big_member_content(seed=3))
    # The tail (1 MiB) passes; the big member breaks off four times before its end.
    https_server.state.faults["/broken.zip"] = Fault(times=100, drop_after=1_100_000)
    result, root = fetch(tmp_path, https_server.url("broken.zip"), cli, ca_file, "--transfer-concurrency", "2")
    assert result.status == 1
    assert "model 'm'" in result.stderr and "kept breaking off" in result.stderr
    assert not transfer_threads()
    assert not (root / "m").exists()
