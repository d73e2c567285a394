"""Hostile and broken input: fuzzed archives, a full disk, and secrets that never leak."""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from devkit.models import model_files, zip_model
from devkit.secrets import write_secret
from fetcher.archive.layout import find_model_root
from fetcher.archive.zip_stream import extract_zip, unpack_sequential
from fetcher.errors import ArchiveError, ModelLayoutError

TOKEN = "Bearer never-print-me-0451"


def base_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in model_files("m").items():
            zf.writestr("m/" + name, content)
    return buffer.getvalue()


BASE = base_zip()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, len(BASE) - 1), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.integers(0, len(BASE)))
def test_property_mangled_zips_fail_only_with_our_errors(tmp_path_factory, flips, cut) -> None:
    data = bytearray(BASE)
    for position, value in flips:
        data[position] = value
    root = tmp_path_factory.mktemp("fuzz")
    archive = root / "m.zip"
    archive.write_bytes(bytes(data[:cut] if cut > 20 else data))
    target = root / "out"
    target.mkdir()
    try:
        extract_zip(archive, target, max_bytes=10_000_000)
        find_model_root(target, what="zip")
    except (ArchiveError, ModelLayoutError):
        pass
    # Whatever happened, nothing was written outside the target.
    assert sorted(p.name for p in root.iterdir()) == ["m.zip", "out"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, len(BASE) - 1), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.integers(0, len(BASE)), chunk=st.integers(1, 300))
def test_property_mangled_zips_read_in_sequence_fail_only_with_our_errors(tmp_path_factory, flips, cut,
                                                                          chunk) -> None:
    """The sequential reader (a server without ranges), fed in chunks of any size."""
    data = bytearray(BASE)
    for position, value in flips:
        data[position] = value
    body = bytes(data[:cut] if cut > 20 else data)
    root = tmp_path_factory.mktemp("fuzz-stream")
    target = root / "out"
    target.mkdir()
    try:
        unpack_sequential(iter([body[i:i + chunk] for i in range(0, len(body), chunk)]), target, root / "members",
                          max_bytes=10_000_000)
        find_model_root(target, what="zip")
    except (ArchiveError, ModelLayoutError):
        pass
    assert sorted(p.name for p in root.iterdir()) == ["out"]  # the temporary members are gone too


@pytest.mark.filterwarnings("ignore:Duplicate name")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=5))
def test_property_any_member_names_stay_inside(tmp_path_factory, names) -> None:
    root = tmp_path_factory.mktemp("names")
    archive = root / "m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for index, name in enumerate(names):
            try:
                zf.writestr(name, f"{index}")
            except (ValueError, UnicodeEncodeError, IndexError):  # names zipfile itself cannot write
                return
    target = root / "a" / "b" / "out"
    target.mkdir(parents=True)
    try:
        extract_zip(archive, target, max_bytes=10_000_000)
    except ArchiveError:
        pass
    outside = [p for p in root.rglob("*") if p.is_file() and target not in p.parents and p != archive]
    assert outside == []


@pytest.fixture()
def small_filesystem(tmp_path: Path):
    """A 2 MiB tmpfs: needs root and mount, as in CI; skipped where mounting is not allowed."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_fails_cleanly(tmp_path: Path, small_filesystem: Path, http_server, cli) -> None:
    import os

    big = http_server.state.root / "big.zip"
    zip_model(big, {**model_files("big"), "1/weights.bin": os.urandom(3 * 1024 * 1024)})
    repository = small_filesystem / "repository"
    result = cli("fetch", "--dest", repository, "--termination-log", tmp_path / "t",
                 "--model", f"name=small,uri={http_server.url('my_model.zip')}",
                 "--model", f"name=big,uri={http_server.url('big.zip')}", "--concurrency", "1")
    assert result.status == 1
    assert "model 'big'" in result.stderr and "No space left on device" in result.stderr
    assert sorted(p.name for p in repository.iterdir()) == ["small"]  # the root holds whole models only
    staging = small_filesystem / ".repository.staging"
    assert sorted(p.name for p in staging.iterdir()) == ["manifest.json", "metrics.prom"]  # the partial work is gone


def test_secret_values_never_appear_in_any_output(tmp_path: Path, https_server, ca_file: Path, cli) -> None:
    write_secret(tmp_path / "secrets", "pull", TOKEN)
    https_server.state.required_auth["/"] = "Bearer something-else"
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "server": {"modelRepositories": {"https": [{"secretName": "pull", "targetUri": "127.0.0.1"}]}},
        "lease": {"models": [f"name=denied,uri={https_server.url('my_model.zip')}",
                             f"name=missing,uri={https_server.url('nope.zip')}"]},
    }))
    args = ["--values", values, "--secrets-dir", tmp_path / "secrets", "--log-level", "DEBUG"]
    outputs = [cli("explain", *args), cli("explain", *args, "--json"),
               cli("fetch", *args, "--dest", tmp_path / "repo", "--ca-bundle", ca_file,
                   "--termination-log", tmp_path / "termination")]
    assert outputs[2].status == 1
    everything = "".join(o.stdout + o.stderr for o in outputs) + (tmp_path / "termination").read_text()
    assert "HTTP 401" in everything and "pull" in everything
    assert "never-print-me" not in everything
    assert [r.headers.get("Authorization") for r in https_server.state.requests if r.path == "/my_model.zip"] == [TOKEN]


@settings(max_examples=300, deadline=None)
@given(segments=st.lists(st.sampled_from(["", ".", "..", "a", "b..c", "d\\e", " f", "\u00e9"]), min_size=1, max_size=8))
def test_property_s3_keys_stay_inside_or_are_refused(segments: list[str]) -> None:
    from fetcher.sources.s3_keys import key_path

    rest = "/".join(segments)
    depth, escapes = 0, False
    for segment in segments:
        if segment == "..":
            escapes = escapes or depth == 0
            depth = max(depth - 1, 0)
        elif segment not in ("", "."):
            depth += 1
    try:
        path = key_path(rest, "m/" + rest, "s3://b/m/")
    except ModelLayoutError as exc:
        assert escapes and "climbs out of the model folder" in str(exc)
        return
    assert not escapes
    assert all(part not in ("", ".", "..") for part in path) and len(path) == depth
