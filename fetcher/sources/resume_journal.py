"""What a model's resumable work folder holds, kept across restarts of the fetcher.

A killed fetcher leaves its work folder (in the emptyDir) behind; the next run reuses the bytes
in it only when the journal says they are good:

- ``journal.json``: for each remote file, what the source said about it when the download began
  (size, validator: an HTTP ETag or Last-Modified, an S3 ETag; the part size). Written once per
  run, atomically.
- ``journal.log``: progress lines (``[file, part start, offset]``: the bytes ``[part start, offset)``
  are written), which the writer appends every few MiB of a part and at its end, and one line when
  a file is complete and verified. A line is appended only after the bytes it vouches for were
  written, so a kill leaves the log behind the data, never ahead of it (by at most what the writer
  writes between two lines); a torn last line is ignored.

A file whose size, validator or part size differ from the recorded ones loses its progress: its
bytes are fetched again, never mixed with new content. A file without a validator never resumes
across runs (nothing proves the bytes on the server are still the same).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOURNAL_NAME = "journal.json"
LOG_NAME = "journal.log"
COMPLETE = -1  # the "part start" of a log line that marks a whole file complete and verified
RESET = -2  # ... and of one that drops every byte of a file written so far


@dataclass(frozen=True)
class FileRecord:
    """What the source said about one remote file when its download began."""

    size: int
    validator: str | None
    part_size: int

    def as_json(self) -> dict[str, Any]:
        return {"size": self.size, "validator": self.validator, "part_size": self.part_size}


class TransferJournal:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._progress: dict[tuple[str, int], int] = {}
        self._complete: set[str] = set()
        self._log_fd: int | None = None

    # -- a run begins ------------------------------------------------------------------------

    def begin(self, files: dict[str, FileRecord]) -> set[str]:
        """Record the files of this run; return those whose earlier progress is kept."""
        previous = self._read_header()
        kept = {key for key, record in files.items()
                if record.validator is not None and previous.get(key) == record}
        progress, complete = self._read_log(kept)
        with self._lock:
            self._progress, self._complete = progress, complete
            self.folder.mkdir(parents=True, exist_ok=True)
            _write_atomically(self.folder / JOURNAL_NAME,
                              json.dumps({key: record.as_json() for key, record in files.items()}, sort_keys=True))
            # Rewrite the log with only what is kept, so it stays short across many restarts.
            lines = [_log_line(key, start, offset) for (key, start), offset in progress.items()]
            lines += [_log_line(key, COMPLETE, 0) for key in complete]
            _write_atomically(self.folder / LOG_NAME, "".join(lines))
            self._close()
            self._log_fd = os.open(self.folder / LOG_NAME, os.O_WRONLY | os.O_APPEND)
        return kept

    def previous(self) -> dict[str, FileRecord]:
        """What the last run recorded (before ``begin``), to decide how to ask the source."""
        return self._read_header()

    # -- while it runs -----------------------------------------------------------------------

    def offset(self, key: str, part_start: int) -> int:
        """Where the part starting at ``part_start`` resumes (``part_start`` when nothing is kept)."""
        with self._lock:
            return self._progress.get((key, part_start), part_start)

    def is_complete(self, key: str) -> bool:
        with self._lock:
            return key in self._complete

    def advance(self, key: str, part_start: int, offset: int) -> None:
        """The bytes ``[part_start, offset)`` of ``key`` are written (call after the write)."""
        self._append(key, part_start, offset)

    def completed(self, key: str) -> None:
        with self._lock:
            self._complete.add(key)
        self._append(key, COMPLETE, 0)

    def reset(self, key: str) -> None:
        """The bytes of ``key`` are gone or turned out wrong: none of them may be reused."""
        self._append(key, RESET, 0)

    def close(self) -> None:
        with self._lock:
            self._close()

    # -- reading what an earlier run left ------------------------------------------------------

    def _append(self, key: str, part_start: int, offset: int) -> None:
        line = _log_line(key, part_start, offset).encode()
        with self._lock:
            if part_start == RESET:
                self._complete.discard(key)
                self._progress = {k: v for k, v in self._progress.items() if k[0] != key}
            elif part_start != COMPLETE:
                self._progress[(key, part_start)] = offset
            fd = self._log_fd
        # Written outside the lock: an O_APPEND write lands whole, and the lines of one file are
        # ordered by its writer (its parts' lines come before its completion, a reset before both).
        if fd is not None:
            os.write(fd, line)

    def _close(self) -> None:
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None

    def _read_header(self) -> dict[str, FileRecord]:
        try:
            data = json.loads((self.folder / JOURNAL_NAME).read_text(encoding="utf-8"))
            return {str(key): FileRecord(**value) for key, value in data.items()}
        except (OSError, ValueError, TypeError, AttributeError):
            return {}  # missing or unreadable: nothing is reused, which is always safe

    def _read_log(self, kept: set[str]) -> tuple[dict[tuple[str, int], int], set[str]]:
        progress: dict[tuple[str, int], int] = {}
        complete: set[str] = set()
        try:
            text = (self.folder / LOG_NAME).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return progress, complete
        for line in text.splitlines():
            try:
                key, start, offset = json.loads(line)
            except (ValueError, TypeError):
                continue  # a line torn by a kill
            if key not in kept or not isinstance(start, int) or not isinstance(offset, int):
                continue
            if start == RESET:
                complete.discard(key)
                progress = {k: v for k, v in progress.items() if k[0] != key}
            elif start == COMPLETE:
                complete.add(key)
            elif offset > progress.get((key, start), start):
                progress[(key, start)] = offset
        return progress, complete


def _log_line(key: str, part_start: int, offset: int) -> str:
    """``[key, part_start, offset]`` as JSON, a line (json.dumps of the key alone: of the list, 4x the CPU)."""
    return f"[{json.dumps(key)}, {part_start}, {offset}]\n"


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
