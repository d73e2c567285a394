"""Zip normalisation and hostile archives: nothing is ever written outside the model's folder."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from devkit.models import model_files, zip_model
from fetcher.archive.layout import find_model_root
from fetcher.archive.zip_stream import extract_zip
from fetcher.errors import ArchiveError, ModelLayoutError, TooLargeError

LIMIT = 50 * 1024 * 1024


def unpack(archive: Path, tmp_path: Path, *, max_bytes: int = LIMIT) -> Path:
    target = tmp_path / "out"
    target.mkdir(exist_ok=True)
    extract_zip(archive, target, max_bytes=max_bytes)
    return find_model_root(target, what="the zip")


def raw_zip(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return path


def unix_entry(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


def test_files_at_the_top(tmp_path: Path) -> None:
    root = unpack(zip_model(tmp_path / "m.zip", model_files("my_model")), tmp_path)
    assert (root / "config.pbtxt").is_file() and (root / "1" / "model.py").is_file()


def test_files_in_one_top_folder(tmp_path: Path) -> None:
    root = unpack(zip_model(tmp_path / "m.zip", model_files("my_model"), top_folder="my_model"), tmp_path)
    assert root.name == "my_model"
    assert sorted(p.name for p in root.iterdir()) == ["1", "config.pbtxt"]


def test_version_folder_alone_is_a_model(tmp_path: Path) -> None:
    archive = raw_zip(tmp_path / "m.zip", [("1/model.onnx", b"onnx")])
    assert (unpack(archive, tmp_path) / "1" / "model.onnx").read_bytes() == b"onnx"


def test_archive_junk_is_ignored(tmp_path: Path) -> None:
    archive = zip_model(tmp_path / "m.zip", model_files("my_model"), top_folder="my_model", extra={
        "__MACOSX/my_model/._config.pbtxt": b"junk",
        "my_model/.DS_Store": b"junk",
        ".DS_Store": b"junk",
        "my_model/1/._model.py": b"junk",
    })
    root = unpack(archive, tmp_path)
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == ["1", "1/model.py", "config.pbtxt"]
    assert not (tmp_path / "out" / "__MACOSX").exists()


def test_no_model_is_an_error(tmp_path: Path) -> None:
    archive = raw_zip(tmp_path / "m.zip", [("README.txt", b"hi"), ("docs/a.txt", b"x")])
    with pytest.raises(ModelLayoutError, match="holds no Triton model"):
        unpack(archive, tmp_path)


def test_several_models_are_an_error(tmp_path: Path) -> None:
    entries = [(f"{m}/{k}", v) for m in ("a", "b") for k, v in model_files(m).items()]
    with pytest.raises(ModelLayoutError, match=r"several models \(a, b\)"):
        unpack(raw_zip(tmp_path / "m.zip", entries), tmp_path)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("/etc/cron.d/evil", "absolute path"),
        ("../evil.txt", "points outside"),
        ("model/../../evil.txt", "points outside"),
        ("model\\..\\evil.txt", "backslash"),
        ("C:/evil.txt", "absolute path"),
        ("a/" + "x" * 300, "longer than 255"),
    ],
)
def test_escaping_names_are_refused(tmp_path: Path, entry: str, expected: str) -> None:
    archive = raw_zip(tmp_path / "m.zip", [("config.pbtxt", b'name: "m"'), (entry, b"evil")])
    with pytest.raises(ArchiveError, match=expected):
        unpack(archive, tmp_path)
    assert not (tmp_path / "evil.txt").exists()
    assert list((tmp_path / "out").iterdir()) == []  # checked before anything is written


def test_symbolic_links_are_refused(tmp_path: Path) -> None:
    archive = raw_zip(tmp_path / "m.zip", [
        ("config.pbtxt", b'name: "m"'),
        (unix_entry("1/model.py", stat.S_IFLNK | 0o777), b"/etc/passwd"),
    ])
    with pytest.raises(ArchiveError, match="symbolic link"):
        unpack(archive, tmp_path)


def test_special_files_are_refused(tmp_path: Path) -> None:
    archive = raw_zip(tmp_path / "m.zip", [("config.pbtxt", b"x"), (unix_entry("1/fifo", stat.S_IFIFO | 0o644), b"")])
    with pytest.raises(ArchiveError, match="special file"):
        unpack(archive, tmp_path)


def test_duplicate_entries_are_refused(tmp_path: Path) -> None:
    with pytest.warns(UserWarning):  # zipfile itself warns about the duplicate
        archive = raw_zip(tmp_path / "m.zip", [("config.pbtxt", b"a"), ("config.pbtxt", b"b")])
    with pytest.raises(ArchiveError, match="more than once"):
        unpack(archive, tmp_path)


def test_declared_size_over_the_limit_is_refused(tmp_path: Path) -> None:
    archive = raw_zip(tmp_path / "m.zip", [("config.pbtxt", b"x"), ("1/weights.bin", b"\0" * 2_000_000)])
    with pytest.raises(TooLargeError, match="content: more than the limit of 1000000 bytes"):
        unpack(archive, tmp_path, max_bytes=1_000_000)


def test_zip_bomb_ratio_is_refused(tmp_path: Path) -> None:
    archive = raw_zip(tmp_path / "m.zip", [("config.pbtxt", b"x"), ("1/weights.bin", b"\0" * 40_000_000)])
    with pytest.raises(ArchiveError, match="compression ratio"):
        unpack(archive, tmp_path)


def test_a_member_that_lies_about_its_size_is_stopped(tmp_path: Path) -> None:
    archive = raw_zip(tmp_path / "m.zip", [("config.pbtxt", b"x"), ("1/w.bin", b"A" * 100_000)])
    # Shrink the declared size in both headers: extraction must stop at the declared size.
    data = bytearray(archive.read_bytes())
    size = (100_000).to_bytes(4, "little")
    assert data.count(size) == 2
    data = data.replace(size, (1000).to_bytes(4, "little"))
    archive.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="1/w.bin"):
        unpack(archive, tmp_path)


def test_truncated_and_corrupt_zips_are_refused(tmp_path: Path) -> None:
    good = zip_model(tmp_path / "m.zip", model_files("m")).read_bytes()
    truncated = tmp_path / "t.zip"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(ArchiveError, match="not a valid zip"):
        unpack(truncated, tmp_path)
    garbage = tmp_path / "g.zip"
    garbage.write_bytes(b"<html>login page</html>")
    with pytest.raises(ArchiveError, match="not a valid zip"):
        unpack(garbage, tmp_path)


def test_overlapping_members_are_refused(tmp_path: Path) -> None:
    archive = raw_zip(tmp_path / "m.zip", [("config.pbtxt", b"x" * 1000), ("1/a.bin", b"y" * 1000)])
    with zipfile.ZipFile(archive) as zf:
        first, second = zf.infolist()
    data = bytearray(archive.read_bytes())
    # Point the second central-directory entry's local header offset into the first member's data.
    central = data.rindex(b"PK\x01\x02")
    offset_field = central + 42
    assert int.from_bytes(data[offset_field:offset_field + 4], "little") == second.header_offset
    data[offset_field:offset_field + 4] = (first.header_offset + 40).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="overlap"):
        unpack(archive, tmp_path)


def test_corrupt_member_data_is_refused(tmp_path: Path) -> None:
    archive = raw_zip(tmp_path / "m.zip", [("config.pbtxt", b"x"), ("1/w.bin", bytes(range(256)) * 400)])
    data = bytearray(archive.read_bytes())
    start = data.index(b"1/w.bin") + len("1/w.bin") + 10
    data[start:start + 50] = b"\xff" * 50
    archive.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="corrupt"):
        unpack(archive, tmp_path)


def test_a_file_and_a_folder_of_the_same_name_are_refused(tmp_path: Path) -> None:
    archive = raw_zip(tmp_path / "m.zip", [("1", b"file"), ("1/model.py", b"x")])
    with pytest.raises(ArchiveError, match="below a file"):
        unpack(archive, tmp_path)


def test_non_utf8_names_extract_under_their_decoded_name(tmp_path: Path) -> None:
    archive = raw_zip(tmp_path / "m.zip", [("config.pbtxt", b"x"), ("1/caf\u00e9.bin", b"w")])
    root = unpack(archive, tmp_path)
    assert (root / "1" / "caf\u00e9.bin").read_bytes() == b"w"
