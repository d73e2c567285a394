"""Noticing that values files changed.

A ConfigMap mounted as a volume is updated by the kubelet in place: it writes the new files into a
fresh hidden folder and swaps the ``..data`` symbolic link, so ``values.yaml`` (itself a link
through ``..data``) changes all at once. Modification times and inotify events on the visible
path are unreliable across that swap, so the files are read through their links and compared by
the hash of their contents, at a bounded polling interval.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence


def values_digest(paths: Sequence[Path]) -> str:
    """A hash of every file's content, in order; a file that cannot be read counts as its error."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path).encode() + b"\0")
        try:
            digest.update(b"content\0" + Path(path).read_bytes())
        except OSError as exc:
            digest.update(b"error\0" + str(exc.errno).encode())
        digest.update(b"\0")
    return digest.hexdigest()


class ValuesWatcher:
    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self.digest = values_digest(self.paths)

    def changed(self) -> bool:
        """True once for each change of the files' contents since the last call."""
        current = values_digest(self.paths)
        if current == self.digest:
            return False
        self.digest = current
        return True
