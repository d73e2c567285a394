"""Safe zips: the checks every entry passes on the central directory before anything is written
(zip_stream.py unpacks the members), so nothing lands outside the target folder and sizes are bounded.

Names are read as Info-ZIP ``unzip`` reads them on Linux, so the zips of common tools install as
they would there: the UTF-8 flag, else the Info-ZIP Unicode Path extra field (0x7075), else the
raw bytes of a Unix-made entry when they are UTF-8 (Info-ZIP zip, macOS), else code page 437 (the
OEM code page of Windows tools); backslashes are separators in the names of a Windows-made entry
that has no ``/`` (PowerShell 5.1's Compress-Archive writes them); a ``./`` entry for the
archive's own root (bsdtar) is skipped.

Refused: absolute names, '..' segments, other backslashes, NUL, links and other special files,
duplicate names, compression methods Python's zipfile cannot read, and archives whose
uncompressed size (declared or actual) passes the limit. Archive junk (``__MACOSX/``,
``.DS_Store``, AppleDouble ``._*`` files, the ``META-INF/MANIFEST.MF`` that ``jar`` adds) is skipped.
"""

from __future__ import annotations

import stat
import zipfile
import zlib

from fetcher.errors import ArchiveError, TooLargeError

RATIO_CHECK_MIN = 1024 * 1024  # smaller members cannot make a bomb worth refusing
SUPPORTED_COMPRESSION = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "Deflate", zipfile.ZIP_BZIP2: "BZIP2",
                         zipfile.ZIP_LZMA: "LZMA"}
if hasattr(zipfile, "ZIP_ZSTANDARD"):  # Python 3.14
    SUPPORTED_COMPRESSION[zipfile.ZIP_ZSTANDARD] = "Zstandard"
# Method numbers of the zip specification (APPNOTE 4.4.5), to name what cannot be read.
COMPRESSION_NAMES = {1: "Shrink", 2: "Reduce", 3: "Reduce", 4: "Reduce", 5: "Reduce", 6: "Implode",
                     9: "Deflate64", 10: "PKWARE DCL Implode", 18: "IBM TERSE", 19: "IBM LZ77 z",
                     93: "Zstandard", 94: "MP3", 95: "XZ", 96: "JPEG", 97: "WavPack", 98: "PPMd",
                     99: "AES encryption"}
# Hosts of the "version made by" field whose tools write names in an OEM code page and may use
# backslashes: MS-DOS/FAT, OS/2 HPFS, Windows NTFS, VFAT.
WINDOWS_HOSTS = (0, 6, 11, 14)
UNICODE_PATH_EXTRA = 0x7075
MAX_NAME_BYTES = 4096
MAX_SEGMENT_BYTES = 255
# Deflate cannot pass about 1032:1; members near that are zero-filled bombs, not models.
MAX_RATIO = 1000  # uncompressed / compressed, for members larger than 1 MiB


def is_junk(name: str) -> bool:
    parts = name.rstrip("/").split("/")
    return parts[0] == "__MACOSX" or parts[-1] == ".DS_Store" or parts[-1].startswith("._")


def _is_jar_manifest(name: str) -> bool:
    """``META-INF/`` and ``META-INF/MANIFEST.MF`` at the top: what ``jar`` adds to every archive."""
    return name in ("META-INF/", "META-INF/MANIFEST.MF")


def member_name(info: zipfile.ZipInfo) -> str:
    """The entry's name as Info-ZIP ``unzip`` reads it on Linux (see the module's opening)."""
    name = info.filename
    if not info.flag_bits & 0x800:
        raw = info.orig_filename.encode("cp437")  # zipfile decoded the raw bytes as code page 437
        unicode_path = _unicode_path(info.extra, raw)
        if unicode_path is not None:
            name = unicode_path
        elif info.create_system not in WINDOWS_HOSTS:
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                pass
    if info.create_system in WINDOWS_HOSTS and "\\" in name and "/" not in name:
        name = name.replace("\\", "/")
    return name


def _unicode_path(extra: bytes, raw_name: bytes) -> str | None:
    """The UTF-8 name of an Info-ZIP Unicode Path extra field that still matches ``raw_name``."""
    position = 0
    while position + 4 <= len(extra):
        kind = int.from_bytes(extra[position:position + 2], "little")
        size = int.from_bytes(extra[position + 2:position + 4], "little")
        body = extra[position + 4:position + 4 + size]
        position += 4 + size
        # version 1, then the CRC-32 of the header's name: a stale field (the name was changed) is ignored
        if kind == UNICODE_PATH_EXTRA and len(body) >= 5 and body[0] == 1:
            if int.from_bytes(body[1:5], "little") != zlib.crc32(raw_name):
                return None
            try:
                return body[5:].decode("utf-8")
            except UnicodeDecodeError:
                return None
    return None


def _names_the_root(name: str) -> bool:
    """``./`` (bsdtar's first entry when run on ``.``): the archive's own root, nothing to make."""
    return not name.startswith("/") and all(part in ("", ".") for part in name.split("/"))


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
        info.filename = member_name(info)  # what the checks and the messages below see
        if is_junk(info.filename) or _is_jar_manifest(info.filename):
            continue
        kind = entry_kind(info)
        if kind == "dir" and _names_the_root(info.filename):
            continue
        segments = safe_member_path(info.filename)
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
            method = COMPRESSION_NAMES.get(info.compress_type, "unknown")
            raise ArchiveError(
                f"entry {info.filename!r} is compressed with {method} (zip method {info.compress_type}), "
                "which cannot be unpacked here",
                hint="re-create the zip with Deflate, the default of zip, 7-Zip, PowerShell and Explorer "
                     f"(supported: {', '.join(SUPPORTED_COMPRESSION.values())})",
            )
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
