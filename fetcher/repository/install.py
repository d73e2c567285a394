"""Atomic installs into the repository root, and every other move of a folder in it (removal, restore).

A model is assembled in a staging folder outside the repository root (Triton takes every folder
in the root, hidden ones too, for a model) but on the same filesystem, then moved in with one
rename, so Triton never sees half a model and the root holds only model directories. A model
the lease no longer names leaves the same way: one rename out of the root, then deletion.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fetcher.errors import InstallError
from fetcher.model_folder import is_model_dir, make_name_agree
from fetcher.sources.base import FetchedModel


# Where ``install`` moves the model it replaces, inside the work folder (discarded with it, or put back by ``restore``).
_REPLACED_NAME = "replaced"
RESUME_PREFIX = "resume-"


def resume_name(model_name: str, fingerprint: str) -> str:
    """The name of a model's resumable work folder for the plan of that fingerprint."""
    return f"{RESUME_PREFIX}{model_name}-{fingerprint[:16]}"


def default_staging_dir(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.staging"


@dataclass(frozen=True)
class Repository:
    root: Path
    staging: Path

    def prepare(self) -> None:
        for folder in (self.root, self.staging):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InstallError(f"cannot create {str(folder)!r}: {exc.strerror}") from None
        root_real, staging_real = self.root.resolve(), self.staging.resolve()
        if staging_real == root_real or staging_real.is_relative_to(root_real):
            raise InstallError(
                f"staging folder {str(self.staging)!r} is inside the repository root {str(self.root)!r}",
                hint="Triton would take it for a model: choose a --staging-dir outside the root, on the same volume",
            )
        if self.root.stat().st_dev != self.staging.stat().st_dev:
            raise InstallError(
                f"staging folder {str(self.staging)!r} is not on the same filesystem as {str(self.root)!r}",
                hint="choose a --staging-dir on the repository's volume, outside the repository root",
            )
        self._remove_leftovers()

    def _remove_leftovers(self) -> None:
        """Work folders of an earlier, interrupted run are never models: remove them. Resumable
        work folders stay until ``clear_stale_resumes`` knows which plans still want them."""
        for entry in self.staging.iterdir():
            if entry.name.startswith("work-"):
                shutil.rmtree(entry, ignore_errors=True)

    def resume_dir(self, model_name: str, fingerprint: str) -> Path:
        """The model's resumable work folder: the same name for the same plan, so a restarted
        fetcher finds what a killed one fetched (the journal in it says what may be reused)."""
        folder = self.staging / resume_name(model_name, fingerprint)
        try:
            folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise InstallError(f"cannot create a work folder in {str(self.staging)!r}: {exc.strerror}") from None
        return folder

    def clear_stale_resumes(self, wanted: set[str]) -> list[str]:
        """Remove the resumable work folders whose name is not in ``wanted`` (a model that left the
        lease, a plan that changed); return the names removed."""
        removed = []
        for entry in sorted(self.staging.iterdir()):
            if entry.name.startswith(RESUME_PREFIX) and entry.name not in wanted:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
        return removed

    def workdir(self, model_name: str) -> Path:
        try:
            return Path(tempfile.mkdtemp(prefix=f"work-{model_name}-", dir=self.staging))
        except OSError as exc:
            raise InstallError(f"cannot create a work folder in {str(self.staging)!r}: {exc.strerror}") from None

    def install(self, name: str, fetched: FetchedModel, workdir: Path) -> str | None:
        """Move (or link) the fetched model in as ``<root>/<name>``; return the config name it replaced, if any."""
        final = self.root / name
        if fetched.link:
            staged = workdir / "link"
            os.symlink(fetched.model_dir, staged, target_is_directory=True)
            renamed = None
        else:
            staged = fetched.model_dir
            renamed = make_name_agree(staged, name)
        self._swap_in(staged, final, workdir)
        return renamed

    def _swap_in(self, staged: Path, final: Path, workdir: Path) -> None:
        old = workdir / _REPLACED_NAME
        try:
            if _present(final):
                os.rename(final, old)
            os.rename(staged, final)
        except OSError as exc:
            raise InstallError(f"cannot move the model into {str(final)!r}: {exc.strerror}") from None

    def restore(self, name: str, workdir: Path) -> bool:
        """Undo ``install(name, ..., workdir)``: the new model leaves the root and the folder it replaced
        comes back (True then); with none to bring back the model is simply gone (False)."""
        final = self.root / name
        replaced = workdir / _REPLACED_NAME
        try:
            os.rename(final, workdir / "refused")
            if not _present(replaced):
                return False
            os.rename(replaced, final)
        except OSError as exc:
            raise InstallError(f"model {name!r}: cannot put back the previous {str(final)!r}: {exc.strerror}") from None
        return True

    def stale(self, wanted: set[str], recorded: set[str]) -> tuple[list[str], list[str]]:
        """Entries of the root that the lease does not name: (models to remove, other entries to leave).

        A model is an entry the manifest records, a symbolic link (how volume models are installed;
        removing it never touches its target) or a folder shaped like a Triton model. Anything else
        was not put there by the fetcher and is left alone, reported by name.
        """
        models: list[str] = []
        others: list[str] = []
        for entry in sorted(self.root.iterdir()):
            if entry.name in wanted:
                continue
            if entry.name in recorded or entry.is_symlink() or (entry.is_dir() and _is_model_folder(entry)):
                models.append(entry.name)
            else:
                others.append(entry.name)
        # Recorded but gone from the root: still to be forgotten (and unloaded, in sidecar mode).
        models += sorted(name for name in recorded - wanted if not _present(self.root / name))
        return models, others

    def remove(self, name: str) -> None:
        """Take ``<root>/<name>`` out of the root with one rename, then delete it; nothing there is no error."""
        final = self.root / name
        if not _present(final):
            return
        trash = self.workdir(name)
        try:
            os.rename(final, trash / "removed")
        except OSError as exc:
            raise InstallError(f"model {name!r}: cannot remove {str(final)!r}: {exc.strerror}") from None
        finally:
            self.discard(trash)

    def discard(self, workdir: Path) -> None:
        shutil.rmtree(workdir, ignore_errors=True)


def _present(path: Path) -> bool:
    return path.is_symlink() or path.exists()  # a link to a vanished volume folder is still there


def _is_model_folder(folder: Path) -> bool:
    try:
        return is_model_dir(folder)
    except OSError:
        return False  # unreadable: not known to be a model, so left alone
