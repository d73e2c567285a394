"""Zips unpacked as their bytes arrive, with no copy of the archive on disk.

Two ways in, one way out:

- **ranged** (a server that accepts ranges, or a local file): the central directory is read from
  the archive's tail (zip64 records included) and every entry is checked by ``checked_members``
  before a byte of content is written. Then the members' byte ranges are read in parallel, small
  neighbours grouped into one range, and each member is inflated straight to its place.
- **sequential** (a server that ignores ranges or sends no length, or a sha256 to check over the
  whole body): the body is read once, front to back. Each member is inflated, as its local header
  and data descriptor describe it, into a temporary file named by its position, outside the model
  folder. When the central directory arrives at the end, the same checks run on it, and each
  checked entry is matched to what was written (offset, CRC-32, sizes) and only then renamed to its
  place. Names, links and the layout are judged on the central directory alone, as in the ranged
  way; sizes and compression ratios are also bounded while the data arrives.

Either way a member is whole at its final path or absent (``unpack_member`` writes a temporary
file, checks size and CRC-32, then renames), so progress can be recorded member by member.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import threading
import zipfile
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol

from fetcher.buffers import READ_SIZE
from fetcher.file_digest import file_digest
from fetcher.errors import ArchiveError, DownloadError, MemberIntegrityError, TooLargeError, WriteError
from fetcher.archive.zip_extract import MAX_RATIO, RATIO_CHECK_MIN, checked_members, entry_kind
from fetcher.sources.parallel_download import Cancelled, RetryableTransferError, run_all


class RangeBody(Protocol):
    """The bytes of one range of the archive, as a transport delivers them."""

    def readinto(self, buffer: memoryview) -> int:
        """Bytes read into ``buffer`` (as many as fit, unless the body ends); 0 once it ended. A stream
        that breaks off raises RetryableTransferError."""

    def close(self) -> None: ...


# (start, end) -> the body of the bytes [start, end) of the archive
OpenRange = Callable[[int, int], RangeBody]

TAIL_BYTES = 1024 * 1024  # first read of the tail: the end record, and most central directories whole
MAX_CENTRAL_DIRECTORY = 256 * 1024 * 1024  # about two million entries
INFLATE_STEP = 256 * 1024
# Members' ranges are read into buffers of this size, one per worker, reused from range to range:
# no bytes object per read, so the heap neither grows nor shrinks while a large archive streams
# through, and one pass of Python per megabyte.
CHUNK_SIZE = 1024 * 1024
BREAK_FORGIVEN_AFTER = 8 * 1024 * 1024  # a range's stream that broke off after this many bytes uses up no attempt
RESUME_STORED_MIN = 1024 * 1024  # a stored member this large records where its data starts, to resume
LOCAL_HEADER = struct.Struct(zipfile.structFileHeader)
DESCRIPTOR_SIGNATURE = b"PK\x07\x08"
ZIP64_EXTRA = 0x0001
# Records that may follow the last member: central directory, zip64 end, end, archive extra data, signature.
END_SIGNATURES = (b"PK\x01\x02", b"PK\x06\x06", b"PK\x05\x06", b"PK\x06\x08", b"PK\x05\x05")


class StreamEnded(Exception):
    """The bytes ran out before the reader had what it needed."""

    def __init__(self, position: int) -> None:
        super().__init__(f"the bytes ended at offset {position}")
        self.position = position


@dataclass(frozen=True)
class Unpacked:
    bytes_read: int  # of the archive, as received
    bytes_written: int  # of the model, as unpacked


@dataclass(frozen=True)
class Member:
    """One checked file entry: where its bytes are in the archive and where it goes."""

    info: zipfile.ZipInfo
    destination: Path
    start: int  # offset of its local header
    end: int  # offset of the next record: its local header, data and descriptor lie before it


class ByteStream:
    """Exact reads over an iterator of chunks, counting the position in the archive. The next chunk is
    asked for once the last is used up, and what ``read`` returns is used before the next read: the
    producer of the chunks may then reuse its buffer."""

    def __init__(self, chunks: Iterator[bytes] | Iterator[memoryview], position: int = 0) -> None:
        self._chunks = chunks
        self._buffer = memoryview(b"")
        self.position = position
        self.received = 0

    def read(self, limit: int) -> memoryview:
        """Up to ``limit`` bytes (fewer when a chunk ends), empty at the end of the stream."""
        if not self._buffer:
            for chunk in self._chunks:
                if chunk:
                    self.received += len(chunk)
                    self._buffer = memoryview(chunk)
                    break
            else:
                return memoryview(b"")
        data, self._buffer = self._buffer[:limit], self._buffer[limit:]
        self.position += len(data)
        return data

    def read_exact(self, count: int) -> bytes:
        parts = []
        while count:
            data = self.read(count)
            if not data:
                raise StreamEnded(self.position)
            parts.append(bytes(data))
            count -= len(data)
        return b"".join(parts)

    def skip(self, count: int) -> None:
        while count:
            data = self.read(count)
            if not data:
                raise StreamEnded(self.position)
            count -= len(data)

    def peek(self, count: int) -> bytes:
        data = self.read_exact(count)
        self.push_back(data)
        return data

    def push_back(self, data: bytes) -> None:
        """Make ``data``, just read, the next bytes again."""
        self._buffer = memoryview(bytes(data) + bytes(self._buffer))
        self.position -= len(data)

    def rest(self, limit: int) -> bytes:
        """Everything left, up to ``limit`` bytes (ArchiveError beyond)."""
        parts = []
        total = 0
        while data := self.read(READ_SIZE):
            total += len(data)
            if total > limit:
                raise ArchiveError(f"the archive's central directory is larger than {limit} bytes")
            parts.append(bytes(data))
        return b"".join(parts)


# -- one member ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Expected:
    name: str
    method: int
    compressed: int | None  # None: unknown until the data ends (a data descriptor follows)
    size: int | None  # None: unknown; bounded by ``limit`` instead
    crc: int | None
    limit: int  # the most bytes it may unpack to


def unpack_member(stream: ByteStream, expected: _Expected, temp: Path, final: Path | None) -> tuple[int, int, int]:
    """Inflate one member's data from ``stream`` into ``temp``; return (size, crc, compressed size).

    With ``final``, the temporary file is renamed there once size and CRC-32 agree with ``expected``:
    a member is either whole at its place or absent.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temp, flags, 0o644)
    try:
        size, crc, compressed = _inflate_into(fd, stream, expected)
    finally:
        os.close(fd)
    if expected.size is not None and size != expected.size:
        raise MemberIntegrityError(f"entry {expected.name!r} is truncated: {size} of {expected.size} bytes",
                                   hint="the zip is damaged; nothing was installed")
    if expected.crc is not None and crc != expected.crc:
        raise MemberIntegrityError(f"entry {expected.name!r} does not match the CRC-32 its archive records",
                                   hint="the zip is damaged; nothing was installed")
    if final is not None:
        os.rename(temp, final)
    return size, crc, compressed


def _inflate_into(fd: int, stream: ByteStream, expected: _Expected) -> tuple[int, int, int]:
    try:
        decompressor = zipfile._get_decompressor(expected.method)  # the decoders zipfile itself uses
    except (NotImplementedError, RuntimeError) as exc:
        raise ArchiveError(f"entry {expected.name!r} cannot be unpacked: {reason(exc)}") from None
    if decompressor is None and expected.compressed is None:
        raise ArchiveError(f"entry {expected.name!r} is stored with a data descriptor, which only the central "
                           "directory can size", hint="serve the zip from a server that accepts Range requests")
    remaining = expected.compressed
    size = crc = consumed = 0
    while remaining is None or remaining > 0:
        data = stream.read(READ_SIZE if remaining is None else min(READ_SIZE, remaining))
        if not data:
            raise StreamEnded(stream.position)
        consumed += len(data)
        if remaining is not None:
            remaining -= len(data)
        for piece in _decoded(decompressor, data, expected.name):
            size += len(piece)
            if size > expected.limit:
                raise ArchiveError(f"entry {expected.name!r} unpacks to more than it declares")
            if size > RATIO_CHECK_MIN and size > MAX_RATIO * consumed:
                raise ArchiveError(f"entry {expected.name!r} has a compression ratio over {MAX_RATIO}:1 (a zip bomb?)")
            crc = zlib.crc32(piece, crc)
            _write_all(fd, piece)
        if decompressor is not None and getattr(decompressor, "eof", False):
            unused = getattr(decompressor, "unused_data", b"")
            if remaining is None:
                stream.push_back(unused)
                consumed -= len(unused)
                return size, crc, consumed
            if remaining or unused:
                raise ArchiveError(f"entry {expected.name!r} is corrupt: its data ends before its declared size")
    if decompressor is not None and not getattr(decompressor, "eof", True):
        raise ArchiveError(f"entry {expected.name!r} is corrupt or truncated: its compressed data ends early")
    return size, crc, consumed


def _decoded(decompressor: object, data: memoryview, name: str) -> Iterator[bytes | memoryview]:
    if decompressor is None:
        yield data  # stored: no copy
        return
    try:
        if isinstance(decompressor, _ZLIB_TYPE):
            piece = decompressor.decompress(data, INFLATE_STEP)
            yield piece
            while decompressor.unconsumed_tail:
                yield decompressor.decompress(decompressor.unconsumed_tail, INFLATE_STEP)
        elif hasattr(decompressor, "needs_input"):  # bz2, lzma: bounded output per call
            yield decompressor.decompress(data, INFLATE_STEP)
            while not decompressor.needs_input and not decompressor.eof:
                yield decompressor.decompress(b"", INFLATE_STEP)
        else:
            for start in range(0, len(data), 4096):  # small inputs bound the output
                yield decompressor.decompress(data[start:start + 4096])  # type: ignore[attr-defined]
    except (zlib.error, OSError, EOFError, ValueError, RuntimeError) as exc:
        raise ArchiveError(f"entry {name!r} is corrupt or truncated: {reason(exc)}") from None


_ZLIB_TYPE = type(zlib.decompressobj())


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _local_header(stream: ByteStream, where: str, end: int | None = None) -> tuple[tuple, bytes, bytes]:
    """The fixed fields, name and extra field of the local header at the stream's position."""
    header = stream.read_exact(LOCAL_HEADER.size)
    fields = LOCAL_HEADER.unpack(header)
    if fields[0] != zipfile.stringFileHeader:
        raise ArchiveError(f"not a valid zip archive: no local header at offset {stream.position - len(header)} "
                           f"({where})")
    if end is not None and stream.position + fields[10] + fields[11] > end:
        raise ArchiveError(f"not a valid zip archive: the local header of {where} runs into the next entry")
    name = stream.read_exact(fields[10])
    extra = stream.read_exact(fields[11])
    return fields, name, extra


# -- ranged: the central directory first ------------------------------------------------------


class _Missing(Exception):
    def __init__(self, start: int) -> None:
        super().__init__(start)
        self.start = start


class _SparseArchive(io.RawIOBase):
    """An archive of ``size`` bytes of which only the tail from ``start`` is known: enough for zipfile
    to read the central directory; a read before ``start`` raises _Missing."""

    def __init__(self, size: int, start: int, tail: bytes, *, zeros_before: bool = False) -> None:
        self.size = size
        self.start = start
        self.tail = tail
        self.offset = 0
        self.zeros_before = zeros_before  # read unknown bytes as zeros (zipfile's search for a comment)

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.offset

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.offset, 2: self.size}[whence]
        if base + offset < 0:
            raise OSError(22, "seek before the start")
        self.offset = base + offset
        return self.offset

    def read(self, count: int = -1) -> bytes:
        end = self.size if count is None or count < 0 else min(self.size, self.offset + count)
        if self.offset < self.start and end > self.offset:
            if not self.zeros_before:
                raise _Missing(self.offset)
            known = self.tail[:max(0, end - self.start)]
            data = bytes(min(end, self.start) - self.offset) + known
            self.offset = end
            return data
        data = self.tail[self.offset - self.start:end - self.start]
        self.offset += len(data)
        return data


def read_central_directory(size: int, read_range: Callable[[int, int], bytes] | None, *,
                           tail: bytes = b"") -> zipfile.ZipFile:
    """The archive's central directory, parsed by zipfile from ``tail``, the archive's last bytes, and
    from ranged reads of more when it needs them (without ``read_range``: all it has is ``tail``)."""
    start = size - len(tail)
    if not tail and read_range is not None:
        start = max(0, size - TAIL_BYTES)
        tail = read_range(start, size)
    for _ in range(3):
        try:
            return zipfile.ZipFile(_SparseArchive(size, start, tail, zeros_before=read_range is None))
        except _Missing as missing:
            if size - missing.start > MAX_CENTRAL_DIRECTORY:
                raise ArchiveError(f"the archive's central directory is larger than {MAX_CENTRAL_DIRECTORY} bytes") from None
            tail = read_range(missing.start, start) + tail
            start = missing.start
        except zipfile.BadZipFile as exc:
            raise ArchiveError(f"not a valid zip archive: {exc}") from None
        except (NotImplementedError, UnicodeDecodeError, ValueError, EOFError, OSError, struct.error) as exc:
            raise ArchiveError(f"not a readable zip archive: {reason(exc)}") from None
    raise ArchiveError("not a readable zip archive: its central directory cannot be located")


def plan_members(zf: zipfile.ZipFile, size: int, target: Path, max_bytes: int) -> list[Member]:
    """Check every entry (nothing written if one fails), make the folders, and list the files."""
    checked = checked_members(zf, max_bytes)
    # Every record's offset, so each member's span ends where the next record starts.
    offsets = sorted({info.header_offset for info in zf.infolist()} | {zf.start_dir, size})
    following = {offset: offsets[i + 1] for i, offset in enumerate(offsets[:-1])}
    members = []
    folders: set[Path] = set()  # made already
    for info, segments in checked:
        destination = target.joinpath(*segments)
        if entry_kind(info) == "dir":
            destination.mkdir(parents=True, exist_ok=True)
            continue
        if not 0 <= info.header_offset < zf.start_dir:
            raise ArchiveError(f"entry {info.filename!r} points outside the archive's data (offset {info.header_offset})")
        if destination.parent not in folders:
            destination.parent.mkdir(parents=True, exist_ok=True)
            folders.add(destination.parent)
        members.append(Member(info, destination, info.header_offset, following[info.header_offset]))
    members.sort(key=lambda member: member.start)
    return members


def group_members(members: list[Member], group_bytes: int) -> list[list[Member]]:
    """Adjacent members read with one request while the range stays under ``group_bytes``."""
    groups: list[list[Member]] = []
    for member in members:
        last = groups[-1] if groups else None
        if (last is not None and last[-1].end == member.start
                and member.end - last[0].start <= group_bytes):
            last.append(member)
        else:
            groups.append([member])
    return groups


class RangedUnpack:
    """Unpack the checked members of an archive by ranged reads, in parallel."""

    def __init__(self, open_range: OpenRange, *, where: str, concurrency: int, attempts: int,
                 check: Callable[[], None] | None = None) -> None:
        self.open_range = open_range
        self.where = where
        self.concurrency = concurrency
        self.attempts = attempts
        self.check = check or (lambda: None)  # raises when the download must stop (deadline)
        self.cancel = threading.Event()
        self.received = 0  # bytes of the archive read
        self._lock = threading.Lock()
        self._buffers: deque[bytearray] = deque()  # chunk buffers no range holds now

    def run(self, members: list[Member], temp_dir: Path) -> int:
        """Unpack ``members`` (temporary files in ``temp_dir``); return the bytes written."""
        temp_dir.mkdir(parents=True, exist_ok=True)
        # A stored member a killed run cut short goes on from its last byte written; others start over.
        # Only the members with leftovers (files named by their offset) are looked at.
        left = {name.partition(".")[0] for name in os.listdir(temp_dir)}
        resumed = {member.start: offset for member in members
                   if str(member.start) in left and (offset := _resumable(member, temp_dir)) is not None}
        rest = [member for member in members if member.start not in resumed]
        total = sum(member.end - member.start for member in rest)
        # Enough groups to keep every worker busy, none so large that one request holds the rest.
        group_bytes = min(16 * 1024**2, max(1024**2, total // max(1, self.concurrency * 4)))
        groups = group_members(rest, group_bytes)
        groups.sort(key=lambda group: -(group[-1].end - group[0].start))  # large first
        tasks = [lambda group=group: self._group(group, temp_dir) for group in groups]
        tasks += [lambda member=member: self._resume_stored(member, temp_dir, resumed[member.start])
                  for member in members if member.start in resumed]
        return run_all(tasks, self.concurrency, self.cancel)

    def read_all(self, start: int, end: int) -> bytes:
        """The bytes [start, end) of the archive in memory (the central directory)."""
        buffer = bytearray(end - start)
        reader = _RangeReader(self, start, end)
        try:
            count = reader.fill(memoryview(buffer))
        finally:
            reader.close()
        self._count(count)
        return bytes(buffer)

    def _resume_stored(self, member: Member, temp_dir: Path, data_start: int) -> int:
        """Append the rest of a stored member to what a killed run wrote of it, then check it whole."""
        info = member.info
        temp = _temp(temp_dir, member)
        chunks = self._chunks(data_start + temp.stat().st_size, data_start + info.compress_size)
        try:
            with open(temp, "ab") as out:
                for chunk in chunks:
                    if out.tell() + len(chunk) > info.file_size:
                        raise ArchiveError(f"entry {info.filename!r} unpacks to more than it declares")
                    out.write(chunk)
        except OSError as exc:
            raise _write_error(info.filename, exc) from None
        finally:
            chunks.close()
        if file_digest(temp, _Crc32()) != info.CRC.to_bytes(4, "big") or temp.stat().st_size != info.file_size:
            raise MemberIntegrityError(f"entry {info.filename!r} does not match the CRC-32 its archive records",
                                       hint="the zip is damaged; nothing was installed")
        os.rename(temp, member.destination)
        _data_start_file(temp_dir, member).unlink(missing_ok=True)
        return info.file_size

    def _group(self, group: list[Member], temp_dir: Path) -> int:
        """Unpack adjacent members from one range."""
        start = group[0].start
        chunks = self._chunks(start, group[-1].end)
        try:
            stream = ByteStream(chunks, start)
            return sum(self._member(stream, member, _temp(temp_dir, member)) for member in group)
        except StreamEnded as ended:  # the range is read whole: its records claim more than it holds
            raise ArchiveError(f"not a valid zip archive: the records from offset {start} run past offset "
                               f"{ended.position}") from None
        finally:
            chunks.close()  # now, not when the traceback goes: the connection and the buffer are freed

    def _chunks(self, start: int, end: int) -> Iterator[memoryview]:
        """The bytes [start, end) in chunks, each valid until the next is asked for (one buffer)."""
        reader = _RangeReader(self, start, end)
        buffer = self._buffer()
        view = memoryview(buffer)
        try:
            while count := reader.fill(view):
                self.check()
                yield view[:count]
        finally:
            self._count(reader.received)
            reader.close()
            self._buffers.append(buffer)

    def _buffer(self) -> bytearray:
        try:
            return self._buffers.pop()
        except IndexError:
            return bytearray(CHUNK_SIZE)

    def _count(self, count: int) -> None:
        with self._lock:
            self.received += count

    def _member(self, stream: ByteStream, member: Member, temp: Path) -> int:
        info = member.info
        _local_header(stream, f"entry {info.filename!r}", member.end)
        if stream.position + info.compress_size > member.end:
            raise ArchiveError(f"entry {info.filename!r}'s data runs into the next entry (a zip bomb?)")
        expected = _Expected(name=info.filename, method=info.compress_type, compressed=info.compress_size,
                             size=info.file_size, crc=info.CRC, limit=info.file_size)
        try:
            if info.compress_type == zipfile.ZIP_STORED and info.file_size >= RESUME_STORED_MIN:
                # Where its bytes start, so a later run can go on from where a kill stopped this one.
                _data_start_file(temp.parent, member).write_text(str(stream.position))
            size, _, _ = unpack_member(stream, expected, temp, member.destination)
        except OSError as exc:
            raise _write_error(info.filename, exc) from None
        stream.skip(member.end - stream.position)  # a data descriptor, up to the next member's header
        return size


class _RangeReader:
    """The bytes [start, end) of the archive, read into buffers. A stream that breaks off is opened
    again at the byte where it stopped, until the unpack's attempts are spent (a long range may
    break off now and then: a stream that delivered BREAK_FORGIVEN_AFTER bytes costs no attempt)."""

    def __init__(self, unpack: RangedUnpack, start: int, end: int) -> None:
        self.unpack = unpack
        self.position = start
        self.end = end
        self.failures = 0
        self.received = 0  # bytes that came over the network (not from the tail already in memory)
        self._opened_at = start  # where the current stream started
        self._body: RangeBody | None = None

    def fill(self, buffer: memoryview) -> int:
        """Fill ``buffer`` with the next bytes (fewer only at the end of the range); 0 at its end."""
        unpack = self.unpack
        wanted = min(len(buffer), self.end - self.position)
        count = 0
        while count < wanted:
            if unpack.cancel.is_set():
                raise Cancelled()
            if self._body is None:
                self._opened_at = self.position + count
                self._body = unpack.open_range(self._opened_at, self.end)
            try:
                read = self._body.readinto(buffer[count:wanted])
                if not read:
                    raise RetryableTransferError(f"the body ended at byte {self.position + count}, "
                                                 f"before byte {self.end}")
            except RetryableTransferError as exc:
                self.close()
                if self.position + count - self._opened_at >= BREAK_FORGIVEN_AFTER:
                    self.failures = 0
                self.failures += 1
                if self.failures >= unpack.attempts:
                    raise DownloadError(f"{unpack.where}: the transfer of the archive kept breaking off "
                                        f"({exc})") from None
                continue
            count += read
            if not isinstance(self._body, _BytesBody):
                self.received += read
        self.position += count
        return count

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None


def _temp(temp_dir: Path, member: Member) -> Path:
    """A member's temporary file, named by its offset: the same name in every run."""
    return temp_dir / f"{member.start}.partial"


def _data_start_file(temp_dir: Path, member: Member) -> Path:
    return temp_dir / f"{member.start}.data-start"


def _resumable(member: Member, temp_dir: Path) -> int | None:
    """Where the data of a stored member that a killed run cut short starts in the archive, when its
    temporary file can be continued; otherwise its leftovers are removed (it starts over) and None."""
    temp, marker = _temp(temp_dir, member), _data_start_file(temp_dir, member)
    try:
        have = temp.stat().st_size if temp.exists() else 0
        if member.info.compress_type == zipfile.ZIP_STORED and 0 < have <= member.info.file_size and marker.exists():
            start = int(marker.read_text())
            if member.start < start <= member.end - member.info.compress_size:
                return start
        temp.unlink(missing_ok=True)
        marker.unlink(missing_ok=True)
    except (OSError, ValueError):
        temp.unlink(missing_ok=True)
    return None


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


def _write_error(name: str, exc: OSError) -> DownloadError:
    return WriteError.of(f"cannot write entry {name!r}", exc)


def unpack_ranged(size: int, open_range: OpenRange, target: Path, temp_dir: Path, *, max_bytes: int,
                  where: str, concurrency: int = 4, attempts: int = 4, tail: bytes = b"",
                  check: Callable[[], None] | None = None, keep: bool = False) -> Unpacked:
    """Unpack the archive of ``size`` bytes that ``open_range`` reads into the empty folder ``target``.

    ``keep``: ``target`` and ``temp_dir`` hold what a killed run unpacked of this same archive (the
    caller checked its validator): the members at their place (checked before they got there) are
    kept, and a stored member cut short goes on from its last byte written."""
    tail_start = size - len(tail)

    def open_member(start: int, end: int) -> RangeBody:
        if start >= tail_start:  # already here: a small archive is all tail
            return _BytesBody(memoryview(tail)[start - tail_start:end - tail_start])
        return open_range(start, end)

    unpack = RangedUnpack(open_member, where=where, concurrency=concurrency, attempts=attempts, check=check)
    zf = read_central_directory(size, unpack.read_all, tail=tail)
    members = plan_members(zf, size, target, max_bytes)
    if keep:
        members = [member for member in members if not _in_place(member)]
    try:
        written = unpack.run(members, temp_dir)
    finally:
        # Members cut short; the finished ones are in place. (A kill leaves them for the next run.)
        shutil.rmtree(temp_dir, ignore_errors=True)
    return Unpacked(bytes_read=len(tail) + unpack.received, bytes_written=written)


class _BytesBody:
    """A range already in memory."""

    def __init__(self, data: memoryview) -> None:
        self._data = data

    def readinto(self, buffer: memoryview) -> int:
        count = min(len(buffer), len(self._data))
        buffer[:count] = self._data[:count]
        self._data = self._data[count:]
        return count

    def close(self) -> None:
        pass


class _FileBody:
    """A range of a local file."""

    def __init__(self, fd: int, start: int, end: int) -> None:
        self._fd = fd
        self._position = start
        self._end = end

    def readinto(self, buffer: memoryview) -> int:
        count = os.preadv(self._fd, [buffer[:max(0, self._end - self._position)]], self._position)
        self._position += count
        return count

    def close(self) -> None:
        pass


def _in_place(member: Member) -> bool:
    """A member an earlier run of the same archive unpacked: it reached its place only once checked."""
    try:
        return member.destination.is_file() and member.destination.stat().st_size == member.info.file_size
    except OSError:
        return False


def extract_zip(archive: Path, target: Path, *, max_bytes: int, workers: int = 1) -> int:
    """Extract the local zip ``archive`` into the empty folder ``target``; return the bytes written."""
    try:
        size = archive.stat().st_size
        fd = os.open(archive, os.O_RDONLY)
    except OSError as exc:
        raise ArchiveError(f"cannot open the archive: {exc.strerror}") from None

    try:
        return unpack_ranged(size, lambda start, end: _FileBody(fd, start, end), target,
                             target.parent / f".{target.name}.members", max_bytes=max_bytes, where=archive.name,
                             concurrency=workers).bytes_written
    finally:
        os.close(fd)


# -- sequential: the body front to back -------------------------------------------------------


@dataclass(frozen=True)
class _Written:
    temp: Path
    size: int
    crc: int
    compressed: int


def unpack_sequential(chunks: Iterator[bytes], target: Path, temp_dir: Path, *, max_bytes: int) -> Unpacked:
    """Unpack an archive read once from the start (``chunks``) into the empty folder ``target``."""
    temp_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _unpack_sequential(ByteStream(chunks), target, temp_dir, max_bytes)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def _unpack_sequential(stream: ByteStream, target: Path, temp_dir: Path, max_bytes: int) -> Unpacked:
    written: dict[int, _Written] = {}
    total = 0
    try:
        while stream.peek(4) not in END_SIGNATURES:
            offset = stream.position
            entry = _sequential_member(stream, temp_dir / f"{len(written)}.member", max_bytes - total)
            written[offset] = entry
            total += entry.size
        start = stream.position
        tail = stream.rest(MAX_CENTRAL_DIRECTORY)
    except StreamEnded as ended:
        raise ArchiveError(f"the archive is truncated: it ends at byte {ended.position}, before its central "
                           "directory") from None
    zf = read_central_directory(start + len(tail), None, tail=tail)
    members = plan_members(zf, start + len(tail), target, max_bytes)
    for member in members:
        info = member.info
        entry = written.pop(member.start, None)
        if entry is None:
            raise ArchiveError(f"entry {info.filename!r} of the central directory has no local header at "
                               f"offset {member.start}")
        if (entry.size, entry.crc, entry.compressed) != (info.file_size, info.CRC, info.compress_size):
            raise ArchiveError(f"entry {info.filename!r} differs between its local header and the central "
                               "directory (size or CRC-32)")
        os.rename(entry.temp, member.destination)
    for entry in written.values():  # skipped entries (junk, folders)
        entry.temp.unlink()
    return Unpacked(bytes_read=stream.received, bytes_written=sum(m.info.file_size for m in members))


def _sequential_member(stream: ByteStream, temp: Path, budget: int) -> _Written:
    offset = stream.position
    fields, raw_name, extra = _local_header(stream, "a member read in sequence")
    flags, method, crc, compressed, size = fields[3], fields[4], fields[7], fields[8], fields[9]
    name = f"at offset {offset}"  # its name is judged on the central directory, not here
    if flags & 0x1:
        raise ArchiveError(f"entry {name} is encrypted")
    zip64 = _zip64_sizes(extra, size, compressed)
    if zip64 is not None:
        size, compressed = zip64
    descriptor = bool(flags & 0x8)
    if descriptor:
        expected = _Expected(name=name, method=method, compressed=None, size=None, crc=None, limit=budget)
    else:
        if size > budget:
            raise TooLargeError("the archive's content", budget)
        expected = _Expected(name=name, method=method, compressed=compressed, size=size, crc=crc, limit=size)
    try:
        got_size, got_crc, got_compressed = unpack_member(stream, expected, temp, None)
    except OSError as exc:
        raise _write_error(name, exc) from None
    if descriptor:
        if stream.peek(4) == DESCRIPTOR_SIGNATURE:
            stream.skip(4)
        wide = zip64 is not None
        crc, compressed, size = struct.unpack("<LQQ" if wide else "<LLL", stream.read_exact(20 if wide else 12))
        if (got_crc, got_compressed, got_size) != (crc, compressed, size):
            raise ArchiveError(f"entry {name} is corrupt: its data descriptor does not match its data")
    return _Written(temp=temp, size=got_size, crc=got_crc, compressed=got_compressed)


def _zip64_sizes(extra: bytes, size: int, compressed: int) -> tuple[int, int] | None:
    """The sizes of a local header's zip64 extra field, or None when it has none."""
    position = 0
    while position + 4 <= len(extra):
        kind, length = struct.unpack("<HH", extra[position:position + 4])
        body = extra[position + 4:position + 4 + length]
        position += 4 + length
        if kind == ZIP64_EXTRA:
            values = [v for (v,) in struct.iter_unpack("<Q", body[:len(body) // 8 * 8])]
            if size == 0xFFFFFFFF and values:
                size = values.pop(0)
            if compressed == 0xFFFFFFFF and values:
                compressed = values.pop(0)
            return size, compressed
    return None


def reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
