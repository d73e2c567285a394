"""What is installed, recorded beside the repository root, so a restarted fetcher skips finished models.

An init container that restarts keeps its emptyDir. Each installed model is recorded with a
fingerprint of how it was fetched, the size of every file and the validators the source gave for
its content (an HTTP ETag or Last-Modified, the S3 ETags and sizes); a model whose fingerprint
still matches and whose files are all there, with the recorded sizes, is not fetched again unless
the source's validators changed (the change check).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from fetcher.sources.base import ModelPlan

MANIFEST_NAME = "manifest.json"


def plan_fingerprint(plan: ModelPlan[Any], volume_mode: str) -> str:
    described: dict[str, Any] = {
        "uri": plan.spec.uri.text,
        "sha256": plan.spec.sha256,
        "files": plan.spec.files,
        "source": plan.source,
        "location": plan.location,
        "secret": plan.secret,
        "repository": dataclasses.asdict(plan.target.config) if plan.target.config else None,
        "volume_mode": volume_mode if plan.source == "volume" else None,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def tree_sizes(folder: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for base, dirs, files in os.walk(folder):
        # Triton's Python backend compiles model.py into __pycache__ beside it: not a change of the model.
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            path = Path(base) / name
            sizes[str(path.relative_to(folder))] = path.lstat().st_size
    return sizes


class Manifest:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # missing or unreadable: everything is fetched again, which is always safe
        return data if isinstance(data, dict) else {}

    def is_current(self, name: str, fingerprint: str, installed: Path) -> bool:
        with self._lock:
            entry = self._entries.get(name)
        if not entry or entry.get("fingerprint") != fingerprint:
            return False
        if entry.get("link") is not None:
            return installed.is_symlink() and os.readlink(installed) == entry["link"] and installed.is_dir()
        if installed.is_symlink() or not installed.is_dir():
            return False
        return tree_sizes(installed) == entry.get("files")

    def record(self, name: str, fingerprint: str, installed: Path, validators: dict[str, Any] | None = None) -> None:
        """``validators``: what the source said about the content (ETags, sizes), for change checks."""
        entry: dict[str, Any] = {"fingerprint": fingerprint, "link": None, "files": None, "validators": validators}
        if installed.is_symlink():
            entry["link"] = os.readlink(installed)
        else:
            entry["files"] = tree_sizes(installed)
        with self._lock:
            self._entries[name] = entry
            self._save()

    def forget(self, name: str) -> None:
        with self._lock:
            if self._entries.pop(name, None) is not None:
                self._save()

    def fingerprint(self, name: str) -> str | None:
        with self._lock:
            entry = self._entries.get(name)
        return entry.get("fingerprint") if entry else None

    def validators(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(name)
        return entry.get("validators") if entry else None
    def installed_bytes(self, name: str) -> int:
        """The recorded size of an installed model's files (0 for a link or an unknown model)."""
        with self._lock:
            entry = self._entries.get(name) or {}
        files = entry.get("files") or {}
        return sum(size for size in files.values() if isinstance(size, int))

    def names(self) -> set[str]:
        with self._lock:
            return set(self._entries)

    def _save(self) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(self._entries, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temporary, self.path)
