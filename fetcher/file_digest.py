"""Hashing a file from disk in bounded reads: the one helper behind every digest the fetcher checks."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

READ_BYTES = 1024 * 1024


def file_digest(path: Path, hasher: Any) -> bytes:
    """Feed the file to ``hasher`` (anything with update/digest) and return its digest."""
    with open(path, "rb") as source:
        while chunk := source.read(READ_BYTES):
            hasher.update(chunk)
    return hasher.digest()


def sha256_hex(path: Path) -> str:
    return file_digest(path, hashlib.sha256()).hex()
