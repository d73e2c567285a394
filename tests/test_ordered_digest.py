"""The digest of a file whose byte ranges are written in any order, by any threads: always the digest
of the whole file, each byte hashed once, in order; bytes given in memory at the position are
hashed from memory, the rest read back from the real file."""

from __future__ import annotations

import hashlib
import os
import random
import threading
from pathlib import Path
from typing import Any, Callable

import pytest

from fetcher.sources.ordered_digest import READ_BYTES, OrderedDigest
from fetcher.sources.s3_checks import hasher_for

CONTENT = random.Random(7).randbytes(3 * READ_BYTES + 12345)


HASHERS: dict[str, Callable[[], Any]] = {
    "sha256": hashlib.sha256,
    "md5": lambda: hashlib.md5(usedforsecurity=False),
    "crc32c": lambda: hasher_for("CRC32C"),  # fed memoryviews by the read-back, like the others
    "crc64nvme": lambda: hasher_for("CRC64NVME"),
}


def expected(algorithm: str = "sha256", content: bytes = CONTENT) -> bytes:
    hasher = HASHERS[algorithm]()
    hasher.update(content)
    return hasher.digest()


def parts_of(size: int, part: int) -> list[tuple[int, int]]:
    return [(start, min(start + part, size)) for start in range(0, size, part)]


def chunks_of(start: int, end: int, chunk: int) -> list[tuple[int, int]]:
    return [(offset, min(offset + chunk, end)) for offset in range(start, end, chunk)]


def write_at(path: Path, start: int, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, start)
    finally:
        os.close(fd)


def test_a_single_stream_is_hashed_from_memory_without_reading_the_file(tmp_path: Path) -> None:
    digest = OrderedDigest(tmp_path / "never-written", len(CONTENT), hashlib.sha256())
    completions = [digest.written(0, end, CONTENT[start:end]) for start, end in chunks_of(0, len(CONTENT), 65536)]
    assert completions.count(True) == 1 and completions[-1]
    assert digest.digest() == expected()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("algorithm", sorted(HASHERS))
def test_parts_written_in_a_random_order_give_the_digest_of_the_file(tmp_path: Path, seed: int,
                                                                      algorithm: str) -> None:
    rng = random.Random(seed)
    path = tmp_path / "file"
    path.write_bytes(b"\0" * len(CONTENT))
    digest = OrderedDigest(path, len(CONTENT), HASHERS[algorithm]())
    # Each part advances chunk by chunk; the parts' chunks interleave at random, some given in memory.
    streams = [(start, iter(chunks_of(start, end, rng.choice([4096, 65536, 300_001]))))
               for start, end in parts_of(len(CONTENT), rng.choice([100_000, READ_BYTES, 2 * READ_BYTES]))]
    completions = []
    while streams:
        part_start, chunks = stream = rng.choice(streams)
        chunk = next(chunks, None)
        if chunk is None:
            streams.remove(stream)
            continue
        low, high = chunk
        write_at(path, low, CONTENT[low:high])
        completions.append(digest.written(part_start, high, CONTENT[low:high] if rng.random() < 0.7 else b""))
    assert completions.count(True) == 1
    assert digest.digest() == expected(algorithm)


def test_bytes_sent_again_by_a_retry_are_hashed_once(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(CONTENT)
    digest = OrderedDigest(path, len(CONTENT), hashlib.sha256())
    assert not digest.written(0, 100_000, CONTENT[:100_000])
    assert not digest.written(0, 100_000, CONTENT[:100_000])  # the same bytes once more
    assert not digest.written(0, 150_000, CONTENT[50_000:150_000])  # a retry from an earlier offset
    assert not digest.written(0, 120_000)  # a report behind what is known
    assert digest.written(0, len(CONTENT), CONTENT[150_000:])
    assert not digest.written(0, len(CONTENT), CONTENT[-10:])  # complete: nothing more is hashed
    assert digest.digest() == expected()


def test_a_prefix_an_earlier_run_wrote_is_read_back_before_the_stream(tmp_path: Path) -> None:
    path = tmp_path / "file"
    resumed_at = READ_BYTES + 777
    path.write_bytes(CONTENT[:resumed_at] + b"\0" * (len(CONTENT) - resumed_at))
    digest = OrderedDigest(path, len(CONTENT), hashlib.sha256())
    assert not digest.written(0, resumed_at)  # the journal's prefix: on disk, not in memory
    for start, end in chunks_of(resumed_at, len(CONTENT), 65536):
        write_at(path, start, CONTENT[start:end])
        digest.written(0, end, CONTENT[start:end])
    assert digest.digest() == expected()


def test_bytes_written_before_the_hasher_is_chosen_are_hashed_when_it_is(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(CONTENT)
    middle = len(CONTENT) // 2
    digest = OrderedDigest(path, len(CONTENT))
    assert not digest.written(middle, len(CONTENT), CONTENT[middle:])
    assert not digest.written(0, 1000, CONTENT[:1000])
    assert not digest.start(hashlib.sha256())  # hashes [0, 1000), then waits for the gap
    assert digest.written(0, middle, CONTENT[1000:middle])
    assert digest.digest() == expected()
    with pytest.raises(ValueError):
        digest.start(hashlib.sha256())


def test_an_empty_file_is_complete_once_its_hasher_is_chosen(tmp_path: Path) -> None:
    digest = OrderedDigest(tmp_path / "empty", 0)
    assert digest.start(hashlib.sha256())
    assert digest.digest() == hashlib.sha256(b"").digest()


def test_an_incomplete_digest_is_never_given(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(CONTENT)
    digest = OrderedDigest(path, len(CONTENT), hashlib.sha256())
    digest.written(1000, len(CONTENT))  # the first 1000 bytes are missing
    with pytest.raises(ValueError, match="at byte 0 of"):
        digest.digest()


def test_a_file_shorter_than_reported_fails_the_read_back(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(CONTENT[:1000])
    digest = OrderedDigest(path, len(CONTENT), hashlib.sha256())
    with pytest.raises(OSError, match="ends at byte 1000"):
        digest.written(0, len(CONTENT))


@pytest.mark.parametrize("seed", range(4))
def test_threads_writing_parts_at_once_complete_the_digest_once(tmp_path: Path, seed: int) -> None:
    content = random.Random(seed).randbytes(8 * READ_BYTES + 4321)
    path = tmp_path / "file"
    path.write_bytes(b"\0" * len(content))
    digest = OrderedDigest(path, len(content))
    parts = parts_of(len(content), READ_BYTES + 999)
    random.Random(seed).shuffle(parts)
    completions: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(parts) + 1)

    def write_part(start: int, end: int) -> None:
        fd = os.open(path, os.O_WRONLY)
        barrier.wait()
        try:
            for low, high in chunks_of(start, end, 65536):
                os.pwrite(fd, content[low:high], low)
                done = digest.written(start, high, content[low:high])
                with lock:
                    completions.append(done)
        finally:
            os.close(fd)

    threads = [threading.Thread(target=write_part, args=part) for part in parts]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = digest.start(hashlib.sha256())  # chosen while the parts are being written
    for thread in threads:
        thread.join()
    assert completions.count(True) + started == 1
    assert digest.digest() == hashlib.sha256(content).digest()
