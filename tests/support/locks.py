"""File locks as the cache's pods take them (fcntl.flock), seen from outside."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def is_locked(lock: Path) -> bool:
    """Does some process hold a lock on ``lock``?"""
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
