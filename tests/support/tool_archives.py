"""The zips that desktop tools write, for tools that cannot run here (Windows, macOS).

``tests/fixtures/archives/`` holds zips made by the real Linux tools (see make_fixtures.sh there).
The tools of Windows and macOS cannot run on these machines, so their zips are built here byte by
byte, with the traits each tool is documented to write: the "version made by" host, the name's
bytes and separators, the UTF-8 flag, directory entries, attributes, extra fields and data
descriptors. Every archive holds TOOL_MODEL.
"""

from __future__ import annotations

import struct
import unicodedata
import zlib
from dataclasses import dataclass

TOOL_MODEL: dict[str, bytes] = {
    "config.pbtxt": b'name: "tool_model"\nbackend: "python"\n',
    "1/model.py": b"".join(b"# line %d: the model computes OUTPUT0 = INPUT0 * 2\n" % i for i in range(60)),
    "1/vocabul\u00e1rio.txt": b"".join("ol\u00e1 {}\n".format(i).encode() for i in range(200)),
}
EMPTY_FOLDER = "2"  # every tool here records the empty version folder 2/
DOS_TIME = (10 << 11) | (0 << 5) | 0  # 10:00:00
DOS_DATE = ((2026 - 1980) << 9) | (11 << 5) | 20  # 2026-11-20

# "version made by": host << 8 | version of the zip specification (20 = 2.0)
MSDOS, UNIX, NTFS = 0, 3, 11
UTF8_FLAG, DATA_DESCRIPTOR_FLAG = 0x800, 0x8
DOS_DIRECTORY, DOS_ARCHIVE = 0x10, 0x20


@dataclass(frozen=True)
class Entry:
    name: bytes
    data: bytes = b""
    deflate: bool = True
    flags: int = 0
    made_by: int = MSDOS << 8 | 20
    external_attr: int = 0
    extra: bytes = b""  # written in the local header and the central directory
    data_descriptor: bool = False


def build_zip(entries: list[Entry]) -> bytes:
    """A zip of ``entries`` written as the specification (APPNOTE 6.3) lays one out."""
    body = bytearray()
    central = bytearray()
    for entry in entries:
        crc = zlib.crc32(entry.data)
        packed = entry.data
        if entry.deflate and entry.data:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            packed = compressor.compress(entry.data) + compressor.flush()
        method = 8 if entry.deflate and entry.data else 0
        flags = entry.flags | (DATA_DESCRIPTOR_FLAG if entry.data_descriptor else 0)
        offset = len(body)
        sizes = (0, 0, 0) if entry.data_descriptor else (crc, len(packed), len(entry.data))
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, DOS_TIME, DOS_DATE, *sizes,
                            len(entry.name), len(entry.extra)) + entry.name + entry.extra + packed
        if entry.data_descriptor:
            body += struct.pack("<IIII", 0x08074B50, crc, len(packed), len(entry.data))
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, entry.made_by, 20, flags, method, DOS_TIME,
                               DOS_DATE, crc, len(packed), len(entry.data), len(entry.name), len(entry.extra), 0,
                               0, 0, entry.external_attr, offset) + entry.name + entry.extra
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), len(body), 0)
    return bytes(body + central + end)


def _folders() -> list[str]:
    """The directory entries of the top folder: itself, then each folder of the model."""
    inner = sorted({name.rsplit("/", 1)[0] for name in TOOL_MODEL if "/" in name} | {EMPTY_FOLDER})
    return ["tool_model/"] + [f"tool_model/{folder}/" for folder in inner]


def powershell_5_1_compress_archive() -> bytes:
    """``Compress-Archive -Path .\\tool_model -DestinationPath m.zip`` in Windows PowerShell 5.1.

    Microsoft.PowerShell.Archive 1.0.1.0 on .NET Framework 4.8's ZipArchive: entry names joined
    with backslashes, host MS-DOS, Deflate, no directory entry but for an empty folder, no extra
    field, UTF-8 (with the flag) only for names that are not ASCII, no data descriptor.
    """
    entries = []
    for name, data in TOOL_MODEL.items():
        encoded = ("tool_model\\" + name.replace("/", "\\")).encode("utf-8")
        entries.append(Entry(encoded, data, flags=0 if encoded.isascii() else UTF8_FLAG))
    entries.append(Entry(f"tool_model\\{EMPTY_FOLDER}\\".encode(), deflate=False))
    return build_zip(entries)


def powershell_7_compress_archive() -> bytes:
    """``Compress-Archive -Path tool_model\\* -DestinationPath m.zip`` in PowerShell 7.4.

    Microsoft.PowerShell.Archive 1.2.5 on .NET 8's ZipArchive: forward slashes, host MS-DOS, the
    files at the top, a directory entry for the empty folder, UTF-8 flag for non-ASCII names.
    """
    entries = [Entry(name.encode(), data, flags=0 if name.isascii() else UTF8_FLAG)
               for name, data in TOOL_MODEL.items()]
    entries.append(Entry(f"{EMPTY_FOLDER}/".encode(), deflate=False))
    return build_zip(entries)


def windows_explorer_send_to_compressed_folder() -> bytes:
    """Explorer's "Send to > Compressed (zipped) folder" (zipfldr.dll, Windows 10 22H2, en-US).

    The selected folder at the top, a directory entry per folder (attribute 0x10, files 0x20),
    host MS-DOS, names in the OEM code page (437 on en-US) without the UTF-8 flag, Deflate with
    data descriptors.
    """
    entries = [Entry(folder.encode("cp437"), deflate=False, external_attr=DOS_DIRECTORY) for folder in _folders()]
    entries += [Entry(f"tool_model/{name}".encode("cp437"), data, external_attr=DOS_ARCHIVE, data_descriptor=True)
                for name, data in TOOL_MODEL.items()]
    return build_zip(entries)


def unicode_path_extra(raw_name: bytes, name: str) -> bytes:
    """Info-ZIP's Unicode Path extra field (0x7075): version 1, CRC-32 of the header's name, UTF-8 name."""
    body = b"\x01" + struct.pack("<I", zlib.crc32(raw_name)) + name.encode("utf-8")
    return struct.pack("<HH", 0x7075, len(body)) + body


def info_zip_3_0_on_windows(*, stale_unicode_path: bool = False) -> bytes:
    """``zip -r m.zip tool_model`` with Info-ZIP Zip 3.0's Windows build (zip.exe of GnuWin32 and others).

    Host NTFS, names in the OEM code page 437 without the UTF-8 flag, each with a Unicode Path
    extra field holding the UTF-8 name; directory entries. ``stale_unicode_path``: the field's CRC
    no longer matches the name (a tool renamed the entry), so readers must ignore it.
    """
    entries = []
    for folder in _folders():
        entries.append(Entry(folder.encode("cp437"), deflate=False, made_by=NTFS << 8 | 30,
                             external_attr=DOS_DIRECTORY))
    for name, data in TOOL_MODEL.items():
        raw = f"tool_model/{name}".encode("cp437")
        label = f"tool_model/{name}" if not stale_unicode_path else f"tool_model/renamed-{name}"
        extra = unicode_path_extra(raw + (b"x" if stale_unicode_path else b""), label)
        entries.append(Entry(raw, data, made_by=NTFS << 8 | 30, external_attr=DOS_ARCHIVE, extra=extra))
    return build_zip(entries)


def macos_finder_compress() -> bytes:
    """Finder's "Compress" (Archive Utility, macOS 14), the same as ``ditto -c -k --sequesterRsrc --keepParent``.

    Host Unix with the file modes, names as the file system gives them (decomposed UTF-8, NFD)
    without the UTF-8 flag, directory entries, Deflate with data descriptors, the extended
    attributes of each file as an AppleDouble ``._`` file under ``__MACOSX/``, and ``.DS_Store``.
    """
    unix = UNIX << 8 | 21
    apple_double = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(64)
    entries = [Entry(folder.encode(), deflate=False, made_by=unix, external_attr=0o40755 << 16)
               for folder in _folders()]
    for name, data in TOOL_MODEL.items():
        decomposed = unicodedata.normalize("NFD", f"tool_model/{name}").encode("utf-8")
        entries.append(Entry(decomposed, data, made_by=unix, external_attr=0o100644 << 16, data_descriptor=True))
    entries.append(Entry(b"tool_model/.DS_Store", b"\x00\x00\x00\x01Bud1" + bytes(32), made_by=unix,
                         external_attr=0o100644 << 16, data_descriptor=True))
    for folder in ("__MACOSX/", "__MACOSX/tool_model/"):
        entries.append(Entry(folder.encode(), deflate=False, made_by=unix, external_attr=0o40755 << 16))
    entries.append(Entry(b"__MACOSX/tool_model/._config.pbtxt", apple_double, made_by=unix,
                         external_attr=0o100644 << 16, data_descriptor=True))
    return build_zip(entries)
