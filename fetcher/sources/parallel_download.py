"""Downloading many remote files at once, large ones in parallel ranged parts.

A large file is sized up front and each part is written in place at its offset, so nothing is
reassembled afterwards. Every file is written under a temporary name, created by the first of its
parts to start, and renamed into the model folder only once it is complete (and, with a
``begin_check``, checked). The transport is a callable, so this module knows nothing of S3 or HTTP.

Checks: when a file's first bytes arrive (a whole-file response has brought what the source says
about the file by then), ``begin_check`` gives the file's check, whose hasher is fed the bytes in
order as they are written (``OrderedDigest``): the bytes of a single stream from memory, those of
ranged parts from the page cache as soon as the parts before them are written. The digest is
ready when the last byte is, and the check compares it then.

Resume: with a ``TransferJournal`` the progress of every part is recorded as it is written, at
most every ``PROGRESS_LINE_BYTES`` and at the part's end, and a later run (after a kill) starts each
part where the journal says the last one stopped. A kill loses at most ``PROGRESS_LINE_BYTES`` of
each part in flight; a file of one part smaller than that records no progress, only its completion.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

from fetcher.errors import DownloadError, IntegrityError, WriteError
from fetcher.progress import ModelProgress
from fetcher.sources.ordered_digest import Hasher, OrderedDigest
from fetcher.sources.resume_journal import FileRecord, TransferJournal

MiB = 1024 * 1024
# How far a part gets between two progress lines of the journal. A line per 64 KiB chunk was a
# tenth of the CPU of many small files; now a file of one part below this size writes none, and a
# GiB costs 4096 lines (about 20 ms). A kill makes the next run fetch again up to this much of each
# part in flight: at 8 MiB the kill test sent 1.47x the model's size over 6 kills (bound: 1.3x).
PROGRESS_LINE_BYTES = 256 * 1024


@dataclass(frozen=True)
class RemoteFile:
    key: str
    relative: str  # '/'-separated path below the model folder
    size: int
    validator: str | None = None  # what proves the bytes are still the same on a later run (an ETag)


# (file, start, end) -> the bytes [start, end) of the file, in chunks
ReadRange = Callable[[RemoteFile, int, int], Iterator[bytes]]


class FileCheck(Protocol):
    """The check of one file: a hasher to feed its bytes in order (None when the source gives
    nothing to compute), then the verdict on the digest."""

    @property
    def hasher(self) -> Hasher | None: ...

    def verify(self, digest: bytes) -> None:
        """Raise IntegrityError when ``digest`` is not what the source says."""


# file -> its check, chosen from what the source says about the file (called once per file)
BeginCheck = Callable[[RemoteFile], FileCheck]


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
    temp: str  # paths as strings: a Path costs microseconds per file to build and convert
    parts: int
    resumable: bool  # the journal kept this file's progress from an earlier run
    pending: int  # parts not written yet, plus the digest until it is complete
    lock: threading.Lock = field(default_factory=threading.Lock)
    created: bool = False  # a file of several parts: its temporary file is created and sized
    digest: OrderedDigest | None = None  # made when the temporary file is
    check: FileCheck | None = None
    check_begun: bool = False

    @property
    def records_progress(self) -> bool:
        """Whether parts of this file write progress lines: a small single-part file has nothing to resume."""
        return self.parts > 1 or self.file.size >= PROGRESS_LINE_BYTES


class ParallelDownload:
    def __init__(self, read_range: ReadRange, settings: TransferSettings, *, where: str,
                 deadline: float | None = None, progress: ModelProgress | None = None,
                 journal: TransferJournal | None = None, begin_check: BeginCheck | None = None) -> None:
        self.read_range = read_range
        self.progress = progress  # told of every chunk written, and of bytes kept when a part resumes
        self.journal = journal
        self.begin_check = begin_check
        self.settings = settings
        self.where = where
        self.deadline = deadline  # time.monotonic() after which the download gives up
        self._cancel = threading.Event()

    def run(self, files: tuple[RemoteFile, ...], model_dir: Path, temp_dir: Path) -> int:
        """Download ``files`` into ``model_dir`` through ``temp_dir``; return the bytes written."""
        model_dir.mkdir(parents=True, exist_ok=True)
        temp_dir.mkdir(parents=True, exist_ok=True)
        for folder in sorted({f.relative.rpartition("/")[0] for f in files} - {""}):
            (model_dir / folder).mkdir(parents=True, exist_ok=True)
        kept: set[str] = set()
        if self.journal is not None:
            kept = self.journal.begin({f.key: FileRecord(f.size, f.validator, self._part_size(f)) for f in files})
        present = _files_in(model_dir)
        jobs: list[tuple[_FileState, int, int]] = []
        for remote in files:
            resumable = remote.key in kept
            if remote.relative in present and self._already_done(remote, model_dir, present, resumable=resumable):
                continue
            parts = split_parts(remote.size, self.settings)
            temp = os.path.join(temp_dir, hashlib.sha256(remote.key.encode()).hexdigest()[:24] + ".partial")
            state = _FileState(remote, temp, len(parts), resumable,
                               pending=len(parts) + (self.begin_check is not None))
            jobs.extend((state, start, end) for start, end in parts)
        # Large files first: their parts keep every worker busy until the end.
        jobs.sort(key=lambda job: -job[0].file.size)
        root = os.fspath(model_dir)
        tasks = [lambda job=job: self._part(job[0], job[1], job[2], root) for job in jobs]
        try:
            return run_all(tasks, self.settings.concurrency, self._cancel)
        finally:
            if self.journal is not None:
                self.journal.close()

    def _part_size(self, remote: RemoteFile) -> int:
        parts = split_parts(remote.size, self.settings)
        return parts[0][1] - parts[0][0] if parts else 0

    @staticmethod
    def _already_done(remote: RemoteFile, model_dir: Path, present: dict[str, int], *, resumable: bool) -> bool:
        """A file an earlier run completed and verified (it is in the model folder only then); any
        other file of that name is removed, so that no later run can take it for this one."""
        if resumable and present[remote.relative] == remote.size:
            return True
        try:
            (model_dir / remote.relative).unlink(missing_ok=True)
        except OSError:
            pass
        return False

    def _part(self, state: _FileState, start: int, end: int, model_dir: str) -> int:
        fd = self._open(state)
        try:
            written, digest_completed = self._write_range(state, fd, start, end)
        finally:
            os.close(fd)
        # No bytes arrived for the file (it is empty, or an earlier run wrote them): its check begins now.
        digest_completed |= self._begin_check(state)
        with state.lock:
            state.pending -= 1 + digest_completed
            last = state.pending == 0
        if last:
            self._finish(state, model_dir)
        return written

    def _open(self, state: _FileState) -> int:
        """A descriptor to write the part with; the first part to start creates the temporary file."""
        try:
            if state.parts == 1:
                return self._create(state)
            with state.lock:
                if not state.created:
                    os.close(self._create(state))
                    state.created = True
            return os.open(state.temp, os.O_WRONLY)
        except OSError as exc:
            raise WriteError.of(f"cannot create a file for {state.file.key!r}", exc) from None

    def _create(self, state: _FileState) -> int:
        """Open the file's temporary file: the one an earlier run left when the journal vouches for
        parts of it, else a new one."""
        state.digest = OrderedDigest(state.temp, state.file.size)
        if state.resumable:
            try:
                fd = os.open(state.temp, os.O_WRONLY)
            except FileNotFoundError:
                pass
            else:
                if os.fstat(fd).st_size == state.file.size:
                    return fd  # the parts the journal records as written are in it
                os.close(fd)
            if self.journal is not None:
                self.journal.reset(state.file.key)  # whatever was recorded is not on disk any more
        try:
            fd = os.open(state.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            os.unlink(state.temp)
            fd = os.open(state.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        if state.records_progress:
            try:
                os.ftruncate(fd, state.file.size)  # a later run reuses it only at its full size
            except OSError:
                os.close(fd)
                raise
        return fd

    def _begin_check(self, state: _FileState) -> bool:
        """Choose the file's check, once per file; True when that completed its digest."""
        if self.begin_check is None:
            return False
        with state.lock:
            if state.check_begun:
                return False
            state.check_begun = True
        check = state.check = self.begin_check(state.file)
        if check.hasher is None:
            return True  # nothing to compute: the digest is done
        assert state.digest is not None
        try:
            return state.digest.start(check.hasher)
        except OSError as exc:
            raise WriteError.of(f"{self.where}: cannot read back {state.file.relative!r}", exc) from None

    def _write_range(self, state: _FileState, fd: int, start: int, end: int) -> tuple[int, bool]:
        """Write the part ``[start, end)``; return the bytes received for it by this run, and whether
        this part completed the file's digest."""
        key = state.file.key
        journal = self.journal if state.records_progress else None
        offset = start
        if state.resumable and self.journal is not None:
            offset = min(max(self.journal.offset(key, start), start), end)
        resumed_at = journaled = offset
        digest = state.digest
        assert digest is not None
        digest_completed = False
        if offset > start:
            digest_completed = digest.written(start, offset)
            if self.progress is not None:
                self.progress.reused("resume", offset - start)  # written by a run that was killed
        checking = self.begin_check is not None and not state.check_begun
        failures = 0
        while offset < end:
            if self._cancel.is_set():
                raise Cancelled()
            self._check_deadline()
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
                    if checking:  # the first bytes: a whole-file response has said what to check by now
                        digest_completed |= self._begin_check(state)
                        checking = False
                    _pwrite_all(fd, chunk, offset)
                    offset += len(chunk)
                    digest_completed |= digest.written(start, offset, chunk)
                    if journal is not None and (offset - journaled >= PROGRESS_LINE_BYTES or offset == end):
                        journal.advance(key, start, offset)
                        journaled = offset
                    if self.progress is not None:
                        self.progress.add(len(chunk))
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
        return end - resumed_at, digest_completed

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DownloadError(
                f"{self.where}: the download passed its deadline",
                hint="raise --model-timeout for very large models or slow links",
            )

    def _finish(self, state: _FileState, model_dir: str) -> None:
        try:
            if state.check is not None and state.check.hasher is not None:
                assert state.digest is not None
                try:
                    state.check.verify(state.digest.digest())
                except IntegrityError:
                    if self.journal is not None:
                        self.journal.reset(state.file.key)
                    _unlink_if_there(state.temp)
                    raise
            os.rename(state.temp, os.path.join(model_dir, state.file.relative))
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


def _unlink_if_there(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _files_in(folder: Path) -> dict[str, int]:
    """The size of every file below ``folder``, by its '/'-separated path: one walk of what is there
    rather than a look-up for every file listed (a new model folder holds none)."""
    found: dict[str, int] = {}
    for root, _folders, names in os.walk(folder):
        below = os.path.relpath(root, folder).replace(os.sep, "/")
        prefix = "" if below == "." else below + "/"
        for name in names:
            try:
                found[prefix + name] = os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return found


def _first_error(futures: list[Future[int]]) -> BaseException:
    errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
    real = [e for e in errors if not isinstance(e, Cancelled)]
    return (real or errors)[0]  # type: ignore[return-value]
