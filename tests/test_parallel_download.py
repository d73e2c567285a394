"""The part scheduler on its own, its transport a plain callable over bytes in memory: files land
whole, each checked by a digest fed as it is written; the journal records progress every
PROGRESS_LINE_BYTES of a part and a later run resumes there, checking the resumed bytes too."""

from __future__ import annotations

import hashlib
import json
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from fetcher.errors import DownloadError, IntegrityError
from fetcher.sources.parallel_download import (PROGRESS_LINE_BYTES, ParallelDownload, RemoteFile,
                                               RetryableTransferError, TransferSettings)
from fetcher.sources.resume_journal import COMPLETE, LOG_NAME, TransferJournal

KiB = 1024
MiB = 1024 * KiB
CHUNK = 64 * KiB
SETTINGS = TransferSettings(concurrency=4, part_size=1 * MiB, multipart_threshold=2 * MiB)


def content_of(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


CONTENTS = {"m/config.pbtxt": content_of(1, 300), "m/1/small.bin": content_of(2, 200 * KiB),
            "m/1/empty.bin": b"", "m/1/large.bin": content_of(3, 5 * MiB + 123)}


def remote_files() -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(key, key.removeprefix("m/"), len(data), validator=f'"{key}"')
                 for key, data in CONTENTS.items())


@dataclass
class Transport:
    """Serves CONTENTS in CHUNK pieces and notes every range asked; ``faults`` break chosen ranges."""

    faults: dict[tuple[str, int], tuple[int, type[Exception]]] = field(default_factory=dict)
    asked: list[tuple[str, int, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, remote: RemoteFile, start: int, end: int) -> Iterator[bytes]:
        with self.lock:
            self.asked.append((remote.key, start, end))
            fault = self.faults.pop((remote.key, start), None)
        data = CONTENTS[remote.key]
        for offset in range(start, end, CHUNK):
            if fault is not None and offset - start >= fault[0]:
                raise fault[1]("the stream broke")
            yield data[offset:min(offset + CHUNK, end)]


@dataclass
class Sha256Check:
    remote: RemoteFile
    expected: bytes
    hasher: Any = field(default_factory=hashlib.sha256)

    def verify(self, digest: bytes) -> None:
        if digest != self.expected:
            raise IntegrityError(f"{self.remote.key} has sha256 {digest.hex()}")


@dataclass
class Checks:
    """Checks every file against the SHA-256 of ``contents``; notes the files it was asked for."""

    contents: dict[str, bytes] = field(default_factory=lambda: CONTENTS)
    begun: list[str] = field(default_factory=list)

    def begin(self, remote: RemoteFile) -> Sha256Check:
        self.begun.append(remote.key)
        return Sha256Check(remote, hashlib.sha256(self.contents[remote.key]).digest())


def download(tmp_path: Path, transport: Transport, checks: Checks | None = None) -> int:
    journal = TransferJournal(tmp_path / "journal")
    run = ParallelDownload(transport, SETTINGS, where="test", journal=journal,
                           begin_check=(checks or Checks()).begin)
    return run.run(remote_files(), tmp_path / "model", tmp_path / "partial")


def installed(tmp_path: Path) -> dict[str, bytes]:
    return {key: (tmp_path / "model" / key.removeprefix("m/")).read_bytes() for key in CONTENTS}


def log_lines(tmp_path: Path) -> list[list[Any]]:
    return [json.loads(line) for line in (tmp_path / "journal" / LOG_NAME).read_text().splitlines()]


def test_every_file_lands_whole_and_checked(tmp_path: Path) -> None:
    transport, checks = Transport(), Checks()
    assert download(tmp_path, transport, checks) == sum(len(data) for data in CONTENTS.values())
    assert installed(tmp_path) == CONTENTS
    assert sorted(checks.begun) == sorted(CONTENTS)
    assert list((tmp_path / "partial").iterdir()) == []
    large = [(start, end) for key, start, end in transport.asked if key == "m/1/large.bin"]
    assert sorted(large) == [(start, min(start + MiB, 5 * MiB + 123)) for start in range(0, 5 * MiB + 123, MiB)]


def test_progress_lines_come_every_few_hundred_kib_of_a_part_and_none_for_small_files(tmp_path: Path) -> None:
    download(tmp_path, Transport())
    lines = log_lines(tmp_path)
    assert sorted(key for key, start, _ in lines if start == COMPLETE) == sorted(CONTENTS)
    progress = [(key, start, offset) for key, start, offset in lines if start != COMPLETE]
    assert {key for key, _, _ in progress} == {"m/1/large.bin"}  # the others are single parts below the step
    for part_start in range(0, 5 * MiB + 123, MiB):
        offsets = [offset for _, start, offset in progress if start == part_start]
        part_end = min(part_start + MiB, 5 * MiB + 123)
        assert offsets[-1] == part_end  # its end, whatever the step
        steps = [b - a for a, b in zip([part_start] + offsets, offsets[:-1])]
        assert all(step >= PROGRESS_LINE_BYTES for step in steps), steps


def test_a_broken_single_stream_is_resumed_and_its_digest_is_right(tmp_path: Path) -> None:
    transport = Transport(faults={("m/1/small.bin", 0): (2 * CHUNK, RetryableTransferError)})
    download(tmp_path, transport)
    assert installed(tmp_path) == CONTENTS
    assert [(start, end) for key, start, end in transport.asked if key == "m/1/small.bin"] == \
        [(0, 200 * KiB), (2 * CHUNK, 200 * KiB)]


def test_a_failed_run_is_resumed_from_the_journal_and_the_kept_bytes_are_checked(tmp_path: Path) -> None:
    broken_at = 3 * PROGRESS_LINE_BYTES + CHUNK
    first = Transport(faults={("m/1/large.bin", 2 * MiB): (broken_at, DownloadError)})
    with pytest.raises(DownloadError):
        download(tmp_path, first)
    second, checks = Transport(), Checks()
    download(tmp_path, second, checks)
    assert installed(tmp_path) == CONTENTS
    asked = [(start, end) for key, start, end in second.asked if key == "m/1/large.bin"]
    # The broken part starts again where its last progress line said, not where its bytes stopped.
    resumed = [start for start, _ in asked if 2 * MiB <= start < 3 * MiB]
    assert resumed and 2 * MiB < resumed[0] <= 2 * MiB + broken_at
    assert all(start != 2 * MiB for start, _ in asked)
    assert "m/1/large.bin" in checks.begun  # checked over the kept bytes and the new ones


def test_kept_bytes_that_do_not_match_fail_the_check_and_are_dropped(tmp_path: Path) -> None:
    first = Transport(faults={("m/1/large.bin", 0): (3 * PROGRESS_LINE_BYTES, DownloadError)})
    with pytest.raises(DownloadError):
        download(tmp_path, first)
    for temp in (tmp_path / "partial").iterdir():  # the kept bytes go bad on disk
        with open(temp, "r+b") as damaged:
            damaged.write(b"\xff" * 10)
    with pytest.raises(IntegrityError, match="m/1/large.bin has sha256"):
        download(tmp_path, Transport())
    download(tmp_path, Transport())  # nothing of the bad bytes is reused
    assert installed(tmp_path) == CONTENTS


def test_a_digest_that_does_not_match_installs_nothing(tmp_path: Path) -> None:
    checks = Checks(contents={**CONTENTS, "m/1/large.bin": b"other bytes"})
    with pytest.raises(IntegrityError, match="m/1/large.bin has sha256"):
        download(tmp_path, Transport(), checks)
    assert not (tmp_path / "model" / "1" / "large.bin").exists()
    assert not [p for p in (tmp_path / "partial").iterdir() if p.stat().st_size == 5 * MiB + 123]
