"""A ConfigMap volume as the kubelet lays it out and updates it, on a local folder.

The kubelet's atomic writer puts the files in a timestamped hidden folder, points ``..data`` at
it, and makes each visible file a link through ``..data``. An update writes a new folder and
swaps ``..data`` with one rename, so readers see the old files or the new ones, never a mix.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path


class ConfigMapDir:
    def __init__(self, root: Path, files: dict[str, str]) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._serial = 0
        self.update(files)
        for name in files:
            os.symlink(f"..data/{name}", self.root / name)

    def path(self, name: str) -> Path:
        return self.root / name

    def update(self, files: dict[str, str]) -> None:
        self._serial += 1
        folder = self.root / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{self._serial:04d}"
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
        data = self.root / "..data"
        previous = os.readlink(data) if data.is_symlink() else None
        temporary = self.root / "..data_tmp"
        os.symlink(folder.name, temporary)
        os.replace(temporary, data)
        if previous:
            shutil.rmtree(self.root / previous)
