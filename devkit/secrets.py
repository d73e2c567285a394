"""Secrets laid out as Kubernetes mounts them: ``<secrets_dir>/<name>/<key>``."""

from __future__ import annotations

from pathlib import Path


def write_secret(secrets_dir: Path, name: str, value: str, *, key: str | None = None) -> Path:
    """Like ``kubectl create secret generic NAME --from-file NAME`` mounted under ``secrets_dir``."""
    folder = secrets_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (key or name)
    path.write_text(value + "\n")
    return path
