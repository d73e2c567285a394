"""Downloading many remote files at once, large ones in parallel ranged parts.

A large file is sized up front and each part is written in place at its offset, so nothing is
reassembled afterwards. Every file is written under a temporary name and renamed into the model
folder only once it is complete (and, with a ``verify`` callable, checked). The transport is a
callable, so this module knows nothing of S3 or HTTP. With a ``TransferJournal`` the progress of
every part is recorded as it is written, and a later run (after a kill) starts each part where the
last one stopped.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from fetcher.errors import DownloadError, IntegrityError, WriteError
from fetcher.progress import ModelProgress
from fetcher.sources.resume_journal import FileRecord, TransferJournal

MiB = 1024 * 1024


@dataclass(frozen=True)
class RemoteFile:
    key: str
    relative: str  # '/'-separated path below the model folder
    size: int
    validator: str | None = None  # what proves the bytes are still the same on a later run (an ETag)


# (file, start, end) -> the bytes [start, end) of the file, in chunks
ReadRange = Callable[[RemoteFile, int, int], Iterator[bytes]]
# (file, its complete download) -> None, or IntegrityError when the bytes are not what the source says
Verify = Callable[[RemoteFile, Path], None]


class RetryableTransferError(Exception):
    """A stream broke off; the part is resumed from the last byte written."""


@dataclass(frozen=True)
class TransferSettings:
    concurrency: int = 8
    part_size: int = 32 * MiB
    multipart_threshold: int = 64 * MiB  # larger files are fetched in parts
    max_parts: int = 10_000
    attempts: int = 4  # per part, for broken streams (the client retries failed requests itself)


def split_parts(size: int, settings: TransferSettings) -> list[tuple[int, int]]:
    """The [start, end) byte ranges of a file of ``size`` bytes."""
    if size <= settings.multipart_threshold:
        return [(0, size)]
    part = max(settings.part_size, -(-size // settings.max_parts))
    return [(start, min(start + part, size)) for start in range(0, size, part)]


@dataclass
class _FileState:
    file: RemoteFile
    temp: Path
    parts_left: int


class ParallelDownload:
    def __init__(self, read_range: ReadRange, settings: TransferSettings, *, where: str,
                 deadline: float | None = None, progress: ModelProgress | None = None,
                 journal: TransferJournal | None = None, verify: Verify | None = None) -> None:
        self.read_range = read_range
        self.progress = progress  # told of every chunk written, and of bytes kept when a part resumes
        self.journal = journal
        self.verify = verify
        self.settings = settings
        self.where = where
        self.deadline = deadline  # time.monotonic() after which the download gives up
        self._cancel = threading.Event()
        self._lock = threading.Lock()

    def run(self, files: tuple[RemoteFile, ...], model_dir: Path, temp_dir: Path) -> int:
        """Download ``files`` into ``model_dir`` through ``temp_dir``; return the bytes written."""
        model_dir.mkdir(parents=True, exist_ok=True)
        temp_dir.mkdir(parents=True, exist_ok=True)
        kept: set[str] = set()
        if self.journal is not None:
            kept = self.journal.begin({f.key: FileRecord(f.size, f.validator, self._part_size(f)) for f in files})
        jobs: list[tuple[_FileState, int, int]] = []
        for remote in files:
            state = _FileState(remote, temp_dir / (hashlib.sha256(remote.key.encode()).hexdigest()[:24] + ".partial"), 0)
            if self._already_done(remote, model_dir, resumable=remote.key in kept):
                continue
            parts = split_parts(remote.size, self.settings)
            state.parts_left = len(parts)
            self._create(state, resumable=remote.key in kept)
            jobs.extend((state, start, end) for start, end in parts)
        # Large files first: their parts keep every worker busy until the end.
        jobs.sort(key=lambda job: -job[0].file.size)
        tasks = [lambda job=job: self._part(job[0], job[1], job[2], model_dir) for job in jobs]
        try:
            return run_all(tasks, self.settings.concurrency, self._cancel)
        finally:
            if self.journal is not None:
                self.journal.close()

    def _part_size(self, remote: RemoteFile) -> int:
        parts = split_parts(remote.size, self.settings)
        return parts[0][1] - parts[0][0] if parts else 0

    def _already_done(self, remote: RemoteFile, model_dir: Path, *, resumable: bool) -> bool:
        """A file an earlier run completed and verified (it is in the model folder only then)."""
        final = model_dir / remote.relative
        try:
            if resumable and final.is_file() and final.stat().st_size == remote.size:
                return True
            final.unlink(missing_ok=True)
        except OSError:
            pass
        return False

    def _create(self, state: _FileState, *, resumable: bool) -> None:
        try:
            if resumable and state.temp.is_file() and state.temp.stat().st_size == state.file.size:
                return  # the parts the journal records as written are in it
            if self.journal is not None:
                self.journal.reset(state.file.key)  # whatever was recorded is not on disk any more
            state.temp.unlink(missing_ok=True)
            fd = os.open(state.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.ftruncate(fd, state.file.size)
            finally:
                os.close(fd)
        except OSError as exc:
            raise WriteError.of(f"cannot create a file for {state.file.key!r}", exc) from None

    def _part(self, state: _FileState, start: int, end: int, model_dir: Path) -> int:
        written = self._write_range(state, start, end)
        with self._lock:
            state.parts_left -= 1
            last = state.parts_left == 0
        if last:
            self._finish(state, model_dir)
        return written

    def _write_range(self, state: _FileState, start: int, end: int) -> int:
        """Write the part ``[start, end)``; return the bytes received for it by this run."""
        key = state.file.key
        offset = min(max(self.journal.offset(key, start), start), end) if self.journal is not None else start
        resumed_at = offset
        if self.progress is not None:
            self.progress.reused("resume", resumed_at - start)  # written by a run that was killed
        failures = 0
        while offset < end:
            if self._cancel.is_set():
                raise Cancelled()
            self._check_deadline()
            try:
                fd = os.open(state.temp, os.O_WRONLY)
                try:
                    for chunk in self.read_range(state.file, offset, end):
                        if self._cancel.is_set():
                            raise Cancelled()
                        self._check_deadline()
                        if offset + len(chunk) > end:
                            raise DownloadError(
                                f"{self.where}: the server sent more bytes than listed for {state.file.key!r}",
                                hint="the object may have changed during the download; try again",
                            )
                        _pwrite_all(fd, chunk, offset)
                        offset += len(chunk)
                        if self.journal is not None:
                            self.journal.advance(key, start, offset)
                        if self.progress is not None:
                            self.progress.add(len(chunk))
                finally:
                    os.close(fd)
                if offset < end:
                    raise RetryableTransferError(f"the stream ended at byte {offset} of {end}")
            except RetryableTransferError as exc:
                failures += 1
                if failures >= self.settings.attempts:
                    raise DownloadError(
                        f"{self.where}: the transfer of {state.file.key!r} kept breaking off ({exc})"
                    ) from None
                if self.progress is not None:
                    self.progress.reused("resume", offset - start)
            except OSError as exc:
                raise WriteError.of(f"{self.where}: cannot write {state.file.relative!r}", exc) from None
        return end - resumed_at

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DownloadError(
                f"{self.where}: the download passed its deadline",
                hint="raise --model-timeout for very large models or slow links",
            )

    def _finish(self, state: _FileState, model_dir: Path) -> None:
        final = model_dir / state.file.relative
        try:
            size = os.stat(state.temp).st_size
            if size != state.file.size:
                raise DownloadError(f"{self.where}: {state.file.key!r} has {size} bytes, {state.file.size} were listed")
            if self.verify is not None:
                try:
                    self.verify(state.file, state.temp)
                except IntegrityError:
                    if self.journal is not None:
                        self.journal.reset(state.file.key)
                    state.temp.unlink(missing_ok=True)
                    raise
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(state.temp, final)
            if self.journal is not None:
                self.journal.completed(state.file.key)
        except OSError as exc:
            raise WriteError.of(f"{self.where}: cannot move {state.file.relative!r} into place", exc) from None


def run_all(tasks: list[Callable[[], int]], concurrency: int, cancel: threading.Event) -> int:
    """Run ``tasks`` on ``concurrency`` threads and return the sum of their results. The first failure
    sets ``cancel`` (which the tasks watch), drops the tasks not started, and is raised once all stopped."""
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="transfer") as pool:
        futures = [pool.submit(task) for task in tasks]
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f.done() and not f.cancelled() and f.exception()), None)
        if failed is not None:
            cancel.set()
            for future in futures:
                future.cancel()
            wait(futures)
            raise _first_error(futures)
    return sum(f.result() for f in futures)


class Cancelled(Exception):
    """Another task failed; this one stopped without finishing."""


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        count = os.pwrite(fd, view, offset)
        view = view[count:]
        offset += count


def _first_error(futures: list[Future[int]]) -> BaseException:
    errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
    real = [e for e in errors if not isinstance(e, Cancelled)]
    return (real or errors)[0]  # type: ignore[return-value]
