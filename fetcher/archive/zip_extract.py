"""Safe zip extraction: nothing is written outside the target folder, and sizes are bounded.

Refused: absolute names, '..' segments, backslashes, NUL, links and other special files,
duplicate names, and archives whose uncompressed size (declared or actual) passes the limit.
Archive junk (``__MACOSX/``, ``.DS_Store``, AppleDouble ``._*`` files) is skipped.
"""

from __future__ import annotations

import stat
import zipfile

from fetcher.errors import ArchiveError, TooLargeError

RATIO_CHECK_MIN = 1024 * 1024  # smaller members cannot make a bomb worth refusing
SUPPORTED_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
MAX_NAME_BYTES = 4096
MAX_SEGMENT_BYTES = 255
# Deflate cannot pass about 1032:1; members near that are zero-filled bombs, not models.
MAX_RATIO = 1000  # uncompressed / compressed, for members larger than 1 MiB


def is_junk(name: str) -> bool:
    parts = name.rstrip("/").split("/")
    return parts[0] == "__MACOSX" or parts[-1] == ".DS_Store" or parts[-1].startswith("._")


def safe_member_path(name: str) -> tuple[str, ...]:
    """The member's path segments, or ArchiveError when the name could escape or is not plain."""
    if "\x00" in name or "\\" in name:
        raise ArchiveError(f"entry {name!r} has a backslash or NUL in its name")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise ArchiveError(f"entry name of {len(name)} characters is too long")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"entry {name!r} has an absolute path")
    segments = tuple(s for s in name.split("/") if s not in ("", "."))
    if any(s == ".." for s in segments):
        raise ArchiveError(f"entry {name!r} points outside the archive ('..')")
    if any(len(s.encode("utf-8", "surrogateescape")) > MAX_SEGMENT_BYTES for s in segments):
        raise ArchiveError(f"entry {name[:80]!r}... has a path segment longer than {MAX_SEGMENT_BYTES} bytes")
    if not segments:
        raise ArchiveError(f"entry {name!r} has an empty name")
    return segments


def entry_kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    # Unix attributes tell the file type only when a tool wrote one; many write permissions alone.
    if info.create_system == 3 and stat.S_IFMT(mode):
        if stat.S_ISLNK(mode):
            return "link"
        if stat.S_ISDIR(mode):
            return "dir"
        if not stat.S_ISREG(mode):
            return "special"
    return "dir" if info.is_dir() else "file"


def checked_members(zf: zipfile.ZipFile, max_bytes: int) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    members: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    seen: dict[tuple[str, ...], bool] = {}
    declared = 0
    for info in zf.infolist():
        if is_junk(info.filename):
            continue
        segments = safe_member_path(info.filename)
        kind = entry_kind(info)
        if kind == "link":
            raise ArchiveError(f"entry {info.filename!r} is a symbolic link; links are refused")
        if kind == "special":
            raise ArchiveError(f"entry {info.filename!r} is a special file; only files and folders are allowed")
        is_dir = kind == "dir"
        if segments in seen:
            if is_dir and seen[segments]:
                continue
            raise ArchiveError(f"entry {info.filename!r} appears more than once")
        seen[segments] = is_dir
        if info.flag_bits & 0x1:
            raise ArchiveError(f"entry {info.filename!r} is encrypted")
        if info.compress_type not in SUPPORTED_COMPRESSION:
            raise ArchiveError(f"entry {info.filename!r} uses an unsupported compression method ({info.compress_type})")
        declared += info.file_size
        if declared > max_bytes:
            raise TooLargeError("the archive's content", max_bytes)
        if info.file_size > RATIO_CHECK_MIN and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise ArchiveError(
                f"entry {info.filename!r} has a compression ratio over {MAX_RATIO}:1 (a zip bomb?)"
            )
        members.append((info, segments))
    _check_no_overlap(zf)
    # A file and a folder may not share a path ("a" as a file and "a/b").
    files = {s for s, d in seen.items() if not d}
    for segments in seen:
        for depth in range(1, len(segments)):
            if segments[:depth] in files:
                raise ArchiveError(f"entry {'/'.join(segments)!r} lies below a file of the same name")
    return members


def _check_no_overlap(zf: zipfile.ZipFile) -> None:
    """Members whose data overlap are the trick of non-recursive zip bombs; real archives never do it."""
    spans = sorted((info.header_offset, info.compress_size, info.filename) for info in zf.infolist())
    for (offset, size, name), (next_offset, _, next_name) in zip(spans, spans[1:]):
        if next_offset < offset + 30 + size:  # 30: the fixed part of a local file header
            raise ArchiveError(f"entries {name!r} and {next_name!r} overlap (a zip bomb?)")
