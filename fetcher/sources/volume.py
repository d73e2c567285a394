"""Volume models: the folder ``<volumes-dir>/<repositoryName>/<path>`` of a mounted claim, linked or copied.

The claim is mounted at the same path in the fetcher and in Triton, so a link made here resolves
there too. Everything the model reaches (the folder and every link inside it) must stay inside the
claim's mount: a link out of it would hand Triton files the volume's owner never published.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar

from fetcher.errors import DownloadError, ModelLayoutError, ResolutionError, TooLargeError
from fetcher.lease.model_spec import ModelSpec
from fetcher.lease.values import LeaseValues, VolumeRepository
from fetcher.logs import get_logger
from fetcher.model_folder import CONFIG_NAME, NOT_A_MODEL, configured_name, is_model_dir
from fetcher.sources.base import FetchedModel, FetchOptions, ModelPlan

MAX_ENTRIES_SHOWN = 10


@dataclass(frozen=True)
class VolumeTarget:
    kind: ClassVar[str] = "volume"
    volume: VolumeRepository
    path: str  # the model folder inside the claim

    @property
    def config(self) -> VolumeRepository:
        return self.volume


def plan(spec: ModelSpec, volume: VolumeRepository, _lease: LeaseValues, options: FetchOptions) -> ModelPlan[VolumeTarget]:
    mount = options.volumes_dir / volume.repository_name
    path = spec.uri.path or ""  # a model:// URI always has one
    if options.volume_mode == "copy":
        how = "copied into the repository"
    else:
        how = "linked into the repository (copied instead when its config.pbtxt names the model differently)"
    return ModelPlan(
        spec=spec,
        target=VolumeTarget(volume=volume, path=path),
        location=str(mount / path),
        secret=None,
        reason=f"volume claim {volume.volume_claim_name!r} mounted at {mount}; {how}",
    )


@dataclass(frozen=True)
class TreeEntry:
    relative: Path
    source: Path  # real path of the file or folder to read
    is_dir: bool
    size: int


@dataclass(frozen=True)
class VolumeModel:
    link_target: Path  # the model folder as seen through the mount, inner links resolved
    real_dir: Path
    entries: tuple[TreeEntry, ...]

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries)


class VolumeSource:
    def __init__(self, options: FetchOptions) -> None:
        self.options = options

    def fetch(self, plan: ModelPlan[VolumeTarget], workdir: Path) -> FetchedModel:
        model = locate_model(self.options.volumes_dir, plan.target.volume, plan.target.path)
        if self.options.volume_mode != "copy":
            config_name = _config_name(model.real_dir)
            if config_name is None or config_name == plan.spec.name:
                return FetchedModel(model_dir=model.link_target, bytes_transferred=0, link=True)
            # A link cannot carry a rewritten config.pbtxt, and Triton refuses the mismatch.
            get_logger().info(
                "model=%s event=copy-instead-of-link reason=config.pbtxt names the model %r",
                plan.spec.name, config_name,
            )
        if model.total_bytes > self.options.max_model_bytes:
            raise TooLargeError(plan.location, self.options.max_model_bytes,
                                size=model.total_bytes)
        target = workdir / "model"
        shutil.rmtree(target, ignore_errors=True)  # a copy a killed run left half done
        progress = self.options.observer.model(plan.spec.name, plan.source)
        progress.expect(model.total_bytes)
        copy_tree(model, target, on_file=progress.add)
        return FetchedModel(model_dir=target, bytes_transferred=model.total_bytes)

    def validators(self, _plan: ModelPlan[VolumeTarget]) -> None:
        """A claim's folder has no validator; the manifest's file sizes catch a changed copy."""
        return None


def _config_name(model_dir: Path) -> str | None:
    config = model_dir / CONFIG_NAME
    if not config.is_file():
        return None
    try:
        return configured_name(config)
    except (UnicodeDecodeError, OSError):
        return None  # the copy path's rewrite reports an unreadable config; a link leaves it to Triton


def locate_model(volumes_dir: Path, volume: VolumeRepository, path: str) -> VolumeModel:
    """The model folder ``path`` inside the volume, checked to stay inside it and to hold a model.

    Its errors do not name the model: whoever reports a model's failure puts its name in front.
    """
    name = volume.repository_name
    mount = volumes_dir / name
    where = f"{path!r} in volume repository {name!r}"
    if not mount.is_dir():
        raise ResolutionError(
            f"volume repository {name!r} (claim {volume.volume_claim_name!r}) is not mounted at {str(mount)!r}",
            hint="mount the claim there, or pass the folder that holds the mounts with --volumes-dir",
        )
    mount_real = Path(os.path.realpath(mount))
    candidate = mount / path
    if not os.path.lexists(candidate):
        parent = candidate.parent
        hint = _listing_hint(parent) if _is_inside(Path(os.path.realpath(parent)), mount_real) else None
        raise ModelLayoutError(f"{where}: no such folder ({str(candidate)!r})", hint=hint)
    real = Path(os.path.realpath(candidate))
    if not _is_inside(real, mount_real):
        raise ResolutionError(f"{where}: the path leads outside the volume (through a symbolic link); refused")
    if not real.exists():
        raise ModelLayoutError(f"{where}: a symbolic link to nothing ({str(candidate)!r})")
    if not real.is_dir():
        raise ModelLayoutError(f"{where}: {str(candidate)!r} is a file, not a model folder")
    if not is_model_dir(real):
        raise ModelLayoutError(
            f"{where}: {str(candidate)!r} holds no Triton model ({NOT_A_MODEL})",
            hint=_listing_hint(real, prefix="it holds"),
        )
    entries = tuple(_scan(real, mount_real, Path(), where, active=(real,)))
    return VolumeModel(link_target=mount / real.relative_to(mount_real), real_dir=real, entries=entries)


def _is_inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _scan(folder: Path, mount_real: Path, relative: Path, where: str, active: tuple[Path, ...]) -> list[TreeEntry]:
    """Every entry below ``folder``, links resolved and checked; ``active`` catches link loops."""
    entries: list[TreeEntry] = []
    try:
        children = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        what = str(relative) if relative.parts else "the model folder"
        raise ModelLayoutError(f"{where}: cannot read {what!r}: {exc.strerror}") from None
    for child in children:
        child_relative = relative / child.name
        source = Path(child.path)
        if child.is_symlink():
            source = Path(os.path.realpath(child.path))
            if not _is_inside(source, mount_real):
                raise ResolutionError(
                    f"{where}: {str(child_relative)!r} is a link that leads outside the volume; refused"
                )
        try:
            mode = os.stat(source).st_mode
        except OSError:
            raise ModelLayoutError(f"{where}: {str(child_relative)!r} is a link to nothing") from None
        if stat.S_ISDIR(mode):
            if source in active:
                raise ModelLayoutError(f"{where}: {str(child_relative)!r} is a link that loops back to its own folder")
            entries.append(TreeEntry(child_relative, source, True, 0))
            entries.extend(_scan(source, mount_real, child_relative, where, active + (source,)))
        elif stat.S_ISREG(mode):
            entries.append(TreeEntry(child_relative, source, False, os.stat(source).st_size))
        else:
            raise ModelLayoutError(f"{where}: {str(child_relative)!r} is not a regular file or folder; refused")
    return entries


def _listing_hint(folder: Path, prefix: str = "the folder above holds") -> str | None:
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError:
        return None
    if not names:
        return f"{prefix} nothing" if folder.is_dir() else None
    shown = ", ".join(names[:MAX_ENTRIES_SHOWN])
    more = f" and {len(names) - MAX_ENTRIES_SHOWN} more" if len(names) > MAX_ENTRIES_SHOWN else ""
    return f"{prefix}: {shown}{more}"


def copy_tree(model: VolumeModel, target: Path, on_file: Callable[[int], None] | None = None) -> None:
    """Copy the scanned tree to ``target`` (new), as plain writable files and folders; ``on_file(size)``
    after each file."""
    try:
        target.mkdir()
        for entry in model.entries:
            destination = target / entry.relative
            if entry.is_dir:
                destination.mkdir()
            else:
                shutil.copyfile(entry.source, destination)
                if on_file is not None:
                    on_file(entry.size)
    except OSError as exc:
        raise DownloadError(f"cannot copy {str(model.real_dir)!r}: {exc.strerror or exc}") from None


Source = VolumeSource
