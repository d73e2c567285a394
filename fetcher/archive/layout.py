"""Where the model is in a fetched tree: at the top (``1/``, ``config.pbtxt``) or in one top folder."""

from __future__ import annotations

from pathlib import Path

from fetcher.archive.zip_extract import is_junk
from fetcher.errors import ModelLayoutError
from fetcher.model_folder import NOT_A_MODEL, is_model_dir


def _entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not is_junk(p.name + ("/" if p.is_dir() else "")))


def find_model_root(tree: Path, *, what: str) -> Path:
    """The folder that holds the one model in ``tree``; ``what`` names the tree in errors."""
    if is_model_dir(tree):
        return tree
    entries = _entries(tree)
    folders = [p for p in entries if p.is_dir()]
    models = [p for p in folders if is_model_dir(p)]
    if len(models) == 1 and len(entries) == 1:
        return models[0]
    if len(models) > 1:
        names = ", ".join(p.name for p in models[:5])
        raise ModelLayoutError(
            f"{what} holds several models ({names}); it must hold exactly one",
            hint="put each model in its own zip or folder",
        )
    if len(models) == 1:
        stray = ", ".join(p.name for p in entries if p != models[0])
        raise ModelLayoutError(f"{what} holds a model folder {models[0].name!r} and other entries beside it ({stray})")
    raise ModelLayoutError(
        f"{what} holds no Triton model ({NOT_A_MODEL})",
        hint="expected config.pbtxt and 1/... at the top, or inside one top-level folder",
    )
