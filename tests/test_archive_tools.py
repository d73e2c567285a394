"""Zips as the tools people use write them install as Info-ZIP ``unzip`` would lay them out.

Real archives of the Linux tools are in tests/fixtures/archives/ (made by make_fixtures.sh there);
the zips of Windows and macOS tools are built byte by byte in tests/support/tool_archives.py. Each
must install TOOL_MODEL byte for byte, or fail with a message naming what is not supported.
"""

from __future__ import annotations

import shutil
import subprocess
import unicodedata
from pathlib import Path

import pytest

from fetcher.archive.layout import find_model_root
from fetcher.archive.zip_stream import extract_zip
from fetcher.errors import ArchiveError
from tests.support import tool_archives
from tests.support.tool_archives import EMPTY_FOLDER, TOOL_MODEL, Entry, build_zip, unicode_path_extra

FIXTURES = Path(__file__).parent / "fixtures" / "archives"
LIMIT = 10 * 1024 * 1024


def install(archive: Path, tmp_path: Path) -> Path:
    target = tmp_path / "out"
    target.mkdir()
    extract_zip(archive, target, max_bytes=LIMIT, workers=2)
    return find_model_root(target, what=f"the zip {archive.name}")


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_tool_model(root: Path, *, names: dict[str, bytes] = TOOL_MODEL) -> None:
    assert files_of(root) == names
    assert (root / EMPTY_FOLDER).is_dir()


def built(tmp_path: Path, data: bytes, name: str = "m.zip") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- Linux tools, real archives -------------------------------------------------------------

@pytest.mark.parametrize("fixture", [
    "infozip.zip",  # Info-ZIP Zip 3.0 (Linux; macOS ships the same zip): UTF-8 names without the UTF-8 flag
    "infozip_inside.zip",  # the same, run inside the model folder: files at the top
    "infozip_stream.zip",  # zip -r - to a pipe: data descriptors
    "infozip_zip64.zip",  # zip -fz: zip64 extra fields
    "infozip_bzip2.zip",  # zip -Z bzip2
])
def test_info_zip_zip_3_0(tmp_path: Path, fixture: str) -> None:
    assert_tool_model(install(FIXTURES / fixture, tmp_path))


def test_bsdtar_on_dot_as_macos_tar_and_windows_tar_exe_write_it(tmp_path: Path) -> None:
    # bsdtar -a -cf m.zip -C tool_model . : "./" for the root, "./1/model.py"..., data descriptors
    assert_tool_model(install(FIXTURES / "bsdtar_dot.zip", tmp_path))


def test_bsdtar_with_a_top_folder(tmp_path: Path) -> None:
    root = install(FIXTURES / "bsdtar.zip", tmp_path)
    assert root.name == "tool_model"
    assert_tool_model(root)


@pytest.mark.parametrize("fixture", ["7zip.zip", "7zip_stored.zip", "7zip_bzip2.zip", "7zip_lzma.zip"])
def test_7zip_26(tmp_path: Path, fixture: str) -> None:
    assert_tool_model(install(FIXTURES / fixture, tmp_path))


@pytest.mark.parametrize(("fixture", "method"), [("7zip_deflate64.zip", "Deflate64 (zip method 9)"),
                                                 ("7zip_ppmd.zip", "PPMd (zip method 98)")])
def test_7zip_methods_python_cannot_read_are_named(tmp_path: Path, fixture: str, method: str) -> None:
    with pytest.raises(ArchiveError) as error:
        install(FIXTURES / fixture, tmp_path)
    assert f"'tool_model/1/model.py' is compressed with {method}" in str(error.value)
    assert "re-create the zip with Deflate" in str(error.value)
    assert list((tmp_path / "out").iterdir()) == []  # refused before anything is written


def test_java_jar_manifest_is_skipped(tmp_path: Path) -> None:
    # jar cf m.zip -C tool_model . : META-INF/MANIFEST.MF first, host MS-DOS, UTF-8 flag, data descriptors
    assert_tool_model(install(FIXTURES / "jar.zip", tmp_path))
    assert not (tmp_path / "out" / "META-INF").exists()


def test_java_jar_without_manifest_with_a_top_folder(tmp_path: Path) -> None:
    assert_tool_model(install(FIXTURES / "jar_no_manifest.zip", tmp_path))


# --- Windows and macOS tools, archives built as they write them ------------------------------

def test_powershell_5_1_compress_archive_backslashes(tmp_path: Path) -> None:
    root = install(built(tmp_path, tool_archives.powershell_5_1_compress_archive()), tmp_path)
    assert root.name == "tool_model"
    assert_tool_model(root)


def test_powershell_7_compress_archive(tmp_path: Path) -> None:
    assert_tool_model(install(built(tmp_path, tool_archives.powershell_7_compress_archive()), tmp_path))


def test_windows_explorer_send_to_compressed_folder_code_page_437(tmp_path: Path) -> None:
    assert_tool_model(install(built(tmp_path, tool_archives.windows_explorer_send_to_compressed_folder()), tmp_path))


def test_info_zip_on_windows_unicode_path_extra_field(tmp_path: Path) -> None:
    assert_tool_model(install(built(tmp_path, tool_archives.info_zip_3_0_on_windows()), tmp_path))


def test_a_stale_unicode_path_field_is_ignored(tmp_path: Path) -> None:
    archive = built(tmp_path, tool_archives.info_zip_3_0_on_windows(stale_unicode_path=True))
    assert_tool_model(install(archive, tmp_path))  # the header's name (code page 437), not "renamed-..."


def test_macos_finder_compress_and_ditto(tmp_path: Path) -> None:
    root = install(built(tmp_path, tool_archives.macos_finder_compress()), tmp_path)
    # The names stay as macOS wrote them (decomposed), as unzip writes them; the junk is skipped.
    assert_tool_model(root, names={unicodedata.normalize("NFD", k): v for k, v in TOOL_MODEL.items()})
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["tool_model"]


# --- what stays refused ---------------------------------------------------------------------

@pytest.mark.parametrize(("name", "expected"), [
    (b"tool_model\\..\\..\\evil.txt", "points outside"),  # backslashes of a Windows tool are separators...
    (b"..\\evil.txt", "points outside"),
    (b"C:\\evil.txt", "absolute path"),
    (b"\\evil.txt", "absolute path"),
    (b"tool_model/a\\..\\..\\evil.txt", "backslash"),  # ...but not in a name that also has '/'
])
def test_windows_names_that_would_escape_stay_refused(tmp_path: Path, name: bytes, expected: str) -> None:
    archive = built(tmp_path, build_zip([Entry(b"tool_model\\config.pbtxt", b'name: "m"'), Entry(name, b"evil")]))
    with pytest.raises(ArchiveError, match=expected):
        install(archive, tmp_path)
    assert not list(tmp_path.rglob("evil.txt"))


def test_backslashes_of_a_unix_made_entry_are_refused_as_before(tmp_path: Path) -> None:
    unix = tool_archives.UNIX << 8 | 30
    archive = built(tmp_path, build_zip([Entry(b"config.pbtxt", b"x", made_by=unix),
                                         Entry(b"1\\model.py", b"y", made_by=unix)]))
    with pytest.raises(ArchiveError, match="backslash"):
        install(archive, tmp_path)


def test_a_unicode_path_field_that_would_escape_is_refused(tmp_path: Path) -> None:
    raw = b"tool_model/1/harmless.txt"
    archive = built(tmp_path, build_zip([
        Entry(b"tool_model/config.pbtxt", b'name: "m"'),
        Entry(raw, b"evil", extra=unicode_path_extra(raw, "../../evil.txt")),
    ]))
    with pytest.raises(ArchiveError, match="points outside"):
        install(archive, tmp_path)


# --- the same layout as the real unzip -------------------------------------------------------

AGREES_WITH_UNZIP = ["infozip.zip", "infozip_inside.zip", "infozip_stream.zip", "infozip_zip64.zip",
                     "infozip_bzip2.zip", "bsdtar_dot.zip", "bsdtar.zip", "7zip.zip", "7zip_stored.zip",
                     "7zip_bzip2.zip", "info_zip_3_0_on_windows"]


@pytest.mark.skipif(shutil.which("unzip") is None, reason="Info-ZIP unzip is not installed")
@pytest.mark.parametrize("archive", AGREES_WITH_UNZIP)
def test_the_layout_is_the_one_info_zip_unzip_makes(tmp_path: Path, archive: str) -> None:
    path = FIXTURES / archive if archive.endswith(".zip") else built(tmp_path, getattr(tool_archives, archive)())
    unzipped = tmp_path / "unzip"
    result = subprocess.run(["unzip", "-q", str(path), "-d", str(unzipped)], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    theirs = find_model_root(unzipped, what="unzip's output")
    ours = install(path, tmp_path)
    assert files_of(ours) == files_of(theirs)
    assert sorted(p.relative_to(ours) for p in ours.rglob("*")) == sorted(p.relative_to(theirs) for p in theirs.rglob("*"))


def test_an_unsupported_method_fails_naming_the_model_and_the_method(tmp_path: Path, http_server, cli) -> None:
    shutil.copy(FIXTURES / "7zip_deflate64.zip", http_server.state.root / "deflate64.zip")
    shutil.copy(FIXTURES / "bsdtar_dot.zip", http_server.state.root / "bsdtar.zip")
    termination = tmp_path / "termination"
    result = cli("fetch", "--dest", tmp_path / "repository", "--termination-log", termination,
                 "--model", f"name=wide,uri={http_server.url('deflate64.zip')}",
                 "--model", f"name=tool_model,uri={http_server.url('bsdtar.zip')}")
    assert result.status == 1
    assert "model 'wide':" in termination.read_text() and "Deflate64 (zip method 9)" in termination.read_text()
    assert sorted(p.name for p in (tmp_path / "repository").iterdir()) == ["tool_model"]
