"""Turning the object keys under a model's S3 prefix into files of a model folder, safely.

Kept apart from the S3 client so it stays pure and cheap to test. Keys are laid out as
``aws s3 cp --recursive`` lays them out on Linux: empty and ``.`` segments vanish (``a//b``,
``./x``), a ``..`` segment climbs one folder, a backslash is an ordinary character, keys ending in
``/`` are folder markers. Only a key that would climb out of the model folder, or that no file
name can hold, is refused; the set of paths must form a plain tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from fetcher.archive.zip_extract import MAX_SEGMENT_BYTES, is_junk
from fetcher.errors import ModelLayoutError
from fetcher.model_folder import NOT_A_MODEL, is_model
from fetcher.sources.parallel_download import RemoteFile

MAX_NAMES_SHOWN = 10


@dataclass(frozen=True)
class ModelObjects:
    files: tuple[RemoteFile, ...]
    folders: tuple[str, ...]  # from folder-marker keys, so empty version folders still exist

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def model_prefix(path: str) -> str:
    """The key prefix of a model folder: the trailing '/' keeps ``my_model2/`` out of ``my_model``."""
    return path.strip("/") + "/"


def select_objects(listing: Iterable[tuple[str, int]], prefix: str, *, where: str) -> ModelObjects:
    """The files and folders of the model from (key, size) pairs listed under ``prefix``."""
    files: list[RemoteFile] = []
    folders: set[str] = set()
    seen: dict[str, str] = {}
    for key, size in listing:
        if not key.startswith(prefix):
            continue  # a server that ignores the prefix must not smuggle other keys in
        rest = key[len(prefix):]
        if not rest or is_junk(rest):
            continue
        relative = "/".join(key_path(rest, key, where))
        if key.endswith("/"):
            if relative:  # a marker of the model folder itself adds nothing
                folders.add(relative)
            continue
        if not relative:
            raise ModelLayoutError(f"{where}: refusing object key {key!r}: it names the model folder itself, not a file")
        if relative in seen:
            raise ModelLayoutError(f"{where}: keys {seen[relative]!r} and {key!r} name the same file {relative!r}")
        seen[relative] = key
        files.append(RemoteFile(key=key, relative=relative, size=int(size)))
    _check_tree(files, where)
    # A folder marker that clashes with a file is dropped, as `aws s3 cp` skips markers altogether.
    kept = {f for f in folders if not any(p in seen for p in _ancestors_and_self(f))}
    return ModelObjects(files=tuple(sorted(files, key=lambda f: f.relative)), folders=tuple(sorted(kept)))


def key_path(rest: str, key: str, where: str) -> tuple[str, ...]:
    """The segments of the path below the model folder that ``rest`` (the key after the prefix) names."""
    if "\x00" in rest:
        raise ModelLayoutError(f"{where}: refusing object key {key!r}: a file name cannot hold a NUL character")
    segments: list[str] = []
    for segment in rest.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not segments:
                raise ModelLayoutError(
                    f"{where}: refusing object key {key!r}: its '..' climbs out of the model folder"
                )
            segments.pop()
            continue
        if len(segment.encode("utf-8", "surrogateescape")) > MAX_SEGMENT_BYTES:
            raise ModelLayoutError(
                f"{where}: refusing object key {key[:80]!r}...: a segment is longer than the {MAX_SEGMENT_BYTES} "
                f"bytes a file name may have"
            )
        segments.append(segment)
    return tuple(segments)


def _ancestors_and_self(relative: str) -> list[str]:
    parts = relative.split("/")
    return ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]


def _check_tree(files: list[RemoteFile], where: str) -> None:
    paths = {f.relative for f in files}
    for f in files:
        parts = f.relative.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in paths:
                raise ModelLayoutError(f"{where}: {parent!r} is both a file and the folder of {f.relative!r}")


def check_is_model(objects: ModelObjects, *, where: str) -> None:
    """Refuse, before downloading anything, a prefix that is not one Triton model folder."""
    files, markers = {f.relative for f in objects.files}, set(objects.folders)
    if is_model(_names_in("", files, set()), _names_in("", files | markers, markers, folders=True)):
        return
    tops = sorted({p.split("/")[0] for p in files | markers})
    inner = [top for top in tops
             if is_model(_names_in(top, files, set()), _names_in(top, files | markers, markers, folders=True))]
    hint = None
    if inner:
        hint = "it holds model folder(s) " + ", ".join(inner[:MAX_NAMES_SHOWN]) + "; name one of them in the uri"
    elif tops:
        hint = "it holds " + ", ".join(tops[:MAX_NAMES_SHOWN])
    raise ModelLayoutError(f"{where} holds no Triton model ({NOT_A_MODEL})", hint=hint)


def _names_in(folder: str, paths: set[str], markers: set[str], *, folders: bool = False) -> set[str]:
    """Names of the files (or, with ``folders``, the folders) directly in ``folder``; "" is the top."""
    prefix = folder + "/" if folder else ""
    names: set[str] = set()
    for path in paths:
        if not path.startswith(prefix) or path == prefix.rstrip("/"):
            continue
        head, below, _ = path[len(prefix):].partition("/")
        if folders and (below or path in markers):
            names.add(head)
        elif not folders and not below:
            names.add(head)
    return names
