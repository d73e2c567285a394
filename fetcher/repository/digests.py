"""The per-file digests a lease may pin a model to (``files: {path: sha256}``), checked before install.

Every file of the fetched model folder must be listed with its sha256, and every listed file must
be there: a file added beside the model (a Python backend's ``model.py``, say) is as much a change
as a file altered. The check reads the model folder before ``config.pbtxt``'s name is made to agree
with the lease's (the digest is of the file as published).
"""

from __future__ import annotations

import os
from pathlib import Path

from fetcher.errors import IntegrityError
from fetcher.file_digest import sha256_hex as sha256_of


def model_files(folder: Path) -> list[str]:
    """The '/'-separated paths of every file below ``folder`` (links followed, as Triton does)."""
    found: list[str] = []
    for base, _dirs, files in os.walk(folder, followlinks=True):
        for name in files:
            found.append((Path(base) / name).relative_to(folder).as_posix())
    return sorted(found)


def check_file_digests(model_dir: Path, files: tuple[tuple[str, str], ...], *, where: str) -> None:
    """IntegrityError naming the first file that is missing, unlisted or has another sha256."""
    expected = dict(files)
    present = model_files(model_dir)
    for path in present:
        if path not in expected:
            raise IntegrityError(f"{where}: file {path!r} is not in the model's files digests",
                                 hint="list every file of the model with its sha256, or remove files from the lease "
                                      "spec; nothing was installed")
    missing = sorted(set(expected) - set(present))
    if missing:
        raise IntegrityError(f"{where}: file {missing[0]!r} of the model's files digests is missing",
                             hint="nothing was installed")
    for path in present:
        actual = sha256_of(model_dir / path)
        if actual != expected[path]:
            raise IntegrityError(f"{where}: file {path!r} has sha256 {actual}, the lease says {expected[path]}",
                                 hint="the model at the source is not the one the lease pins; nothing was installed")
