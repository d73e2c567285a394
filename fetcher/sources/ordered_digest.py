"""A file's digest computed front to back while its byte ranges are written in any order.

A parallel download writes the parts of a file at once, each front to back from its own start. A
hasher needs the bytes in order; this feeds it every byte of the file once, in order, as soon as
all the bytes before it are written, so the digest is ready moments after the last byte arrives
rather than after a second read of the whole file.

Writers report runs: ``written(run_start, end, data)`` says the bytes ``[run_start, end)`` are on
disk, ``data`` being the last of them, still in memory. Bytes at the digest's position are hashed
from that memory; any others (a prefix written by an earlier run, the bytes of a part that got
ahead of the position) are read back from the file, from the page cache as they were just
written. Bytes before the position are never hashed twice, so a stream retried over the same
offsets does no harm. One thread hashes at a time and never holds the lock while hashing: the
others record their progress and return, and the hashing thread loops until nothing is left.
"""

from __future__ import annotations

import errno
import os
import threading
from typing import Protocol

READ_BYTES = 1024 * 1024  # each read-back; one buffer per read-back, reused for its reads


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


class OrderedDigest:
    def __init__(self, path: str | os.PathLike[str], size: int, hasher: Hasher | None = None) -> None:
        """The digest of the ``size`` bytes of the file at ``path``; with no ``hasher``, written bytes
        are recorded until ``start`` gives one."""
        self.path = path
        self.size = size
        self._hasher = hasher
        self._lock = threading.Lock()
        self._runs: dict[int, int] = {}  # run start -> end of the bytes written from it, not all hashed yet
        self._position = 0  # the bytes [0, position) are hashed
        self._hashing = hasher is None  # a thread is hashing, or the hasher is not chosen yet
        self._complete = False

    def start(self, hasher: Hasher) -> bool:
        """Hash with ``hasher`` (for a digest made without one) whatever is written so far. True when
        this call completed the digest."""
        with self._lock:
            if self._hasher is not None:
                raise ValueError("the digest has a hasher already")
            self._hasher = hasher
        return self._hash_while_written(b"", 0)

    def written(self, run_start: int, end: int, data: bytes = b"") -> bool:
        """The bytes ``[run_start, end)`` are on disk, ``data`` being the last of them. True for the one
        call that completed the digest (it hashed the file's last byte)."""
        with self._lock:
            if end > self._runs.get(run_start, run_start):
                self._runs[run_start] = end
            if self._hashing:
                return False  # another thread hashes these bytes too before it stops
            self._hashing = True
        return self._hash_while_written(data, end - len(data))

    def digest(self) -> bytes:
        with self._lock:
            if not self._complete or self._hasher is None:
                raise ValueError(f"the digest is at byte {self._position} of {self.size}")
            return self._hasher.digest()

    def _hash_while_written(self, data: bytes, data_start: int) -> bool:
        """Hash until no written bytes are left at the position; this thread holds the hashing flag.
        A failure leaves the flag set: the digest is broken and nothing hashes it again."""
        while True:
            with self._lock:
                start, stop = self._position, self._reach()
                if stop <= start:
                    self._hashing = False
                    completed = start == self.size and not self._complete
                    self._complete = self._complete or completed
                    return completed
            self._hash(start, stop, data, data_start)
            with self._lock:
                self._position = stop
                self._runs = {run: end for run, end in self._runs.items() if end > stop}

    def _reach(self) -> int:
        """Where a written run that holds the position ends (under the lock); the hashing loop goes on
        from there into the next run."""
        for run, end in self._runs.items():
            if run <= self._position < end:
                return min(end, self.size)
        return self._position

    def _hash(self, start: int, stop: int, data: bytes, data_start: int) -> None:
        """Hash ``[start, stop)``: the part ``data`` holds from memory, the rest from the file."""
        data_end = data_start + len(data)
        low, high = max(start, data_start), min(stop, data_end)
        if low >= high:
            self._read_back(start, stop)
            return
        self._read_back(start, low)
        assert self._hasher is not None
        self._hasher.update(data if (low, high) == (data_start, data_end)
                            else memoryview(data)[low - data_start:high - data_start])
        self._read_back(high, stop)

    def _read_back(self, start: int, stop: int) -> None:
        if start >= stop:
            return
        assert self._hasher is not None
        buffer = bytearray(min(READ_BYTES, stop - start))
        view = memoryview(buffer)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            while start < stop:
                count = os.preadv(fd, [view[:min(len(view), stop - start)]], start)
                if count <= 0:
                    raise OSError(errno.EIO, f"the file ends at byte {start}, before bytes recorded as written")
                self._hasher.update(view[:count])
                start += count
        finally:
            os.close(fd)
