"""The benchmark's models, generated as incompressible data: each as an S3 prefix and as a zip.

Layout of every model (a Triton model directory)::

    <name>/config.pbtxt
    <name>/1/...            the workload's files

The zip holds the model inside one top-level folder ``<name>/`` (the common layout), compressed
with deflate at level 1 by default (``--zip-method stored`` for no compression). The data is random,
so deflate cannot shrink it: zlib then emits stored blocks and inflating them is close to a copy,
as it is for real weights, which deflate shrinks by only a few per cent.

The S3 copy and the zip are written independently (each from its own random stream), so a workload
too large to keep twice can have one written, measured and removed before the other is written.
"""

from __future__ import annotations

import os
import shutil
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
CHUNK = 8 * MIB
BLOCK = 4 * KIB  # the filesystem's allocation unit


@dataclass(frozen=True)
class Workload:
    key: str  # "A" ... "F"
    name: str  # model and prefix name
    title: str
    files: tuple[tuple[str, int], ...]  # (path relative to the model folder, size)
    memory_only: bool = False  # run only the fetcher once, to read its peak RSS
    single_run: bool = False  # too large to repeat: one timed run per tool, no warm-up
    # Too large to hold its S3 copy and its zip at once: each is written just before its transport's runs.
    data_per_transport: bool = False
    lease_models: tuple[str, ...] = ()  # a lease: these models, each a folder of the prefix (S3 only)

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)

    @property
    def allocated_bytes(self) -> int:
        """The model's size on disk: each file in whole 4 KiB blocks, as the peak-disk column counts it."""
        return sum(-(-size // BLOCK) * BLOCK for _, size in self.files)

    @property
    def zip_name(self) -> str:
        return f"{self.name}.zip"

    @property
    def estimated_zip_bytes(self) -> int:
        """At least the size of its zip of random data, on disk: deflate stores incompressible data in
        blocks of at most 64 KiB with 5 bytes of header each (under 0.1 %), plus each member's two headers
        with zip64 extras, and the end records."""
        member_headers = sum(30 + 46 + 2 * len(f"{self.name}/{relative}") + 2 * 32 for relative, _ in self.files)
        size = self.total_bytes + self.total_bytes // 1000 + member_headers + 200
        return -(-size // BLOCK) * BLOCK


def _scaled(size: int, scale: float) -> int:
    return max(1, int(size * scale))


def _count(count: int, scale: float) -> int:
    """File and model counts stay as the issue states them, except in smoke runs (scale < 0.01)."""
    return count if scale >= 0.01 else max(3, int(count * scale * 100))


def _small_file_size(index: int) -> int:
    """Tokenizer- and vocab-like sizes between 200 B and 12 KiB, spread deterministically."""
    return 200 + (index * 7919) % (12 * KIB)


def config_text(name: str) -> str:
    return (f'name: "{name}"\nbackend: "python"\nmax_batch_size: 0\n'
            'input [{ name: "IN" data_type: TYPE_FP32 dims: [ 1 ] }]\n'
            'output [{ name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] }]\n')


def build_workloads(scale: float) -> dict[str, Workload]:
    def model(name: str, files: list[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
        return (("config.pbtxt", len(config_text(name).encode())), *files)

    a = [("1/weights.bin", _scaled(GIB, scale))]
    a += [(f"1/shards/part-{i:03d}.bin", _scaled(64 * KIB, scale)) for i in range(200)]
    b = [(f"1/part-{i:02d}.bin", _scaled(16 * MIB, scale)) for i in range(64)]
    c = [("1/weights.bin", _scaled(2 * GIB, scale))]
    d = [(f"1/vocab/{i // 1000:02d}/{i:05d}.txt", max(1, int(_small_file_size(i) * min(1.0, scale * 20))))
         for i in range(_count(10_000, scale))]
    e = [("1/weights.bin", _scaled(20 * GIB, scale))]
    lease = tuple(f"m{i:02d}" for i in range(_count(50, scale)))
    f = [(f"{name}/{relative}", size) for name in lease
         for relative, size in (("config.pbtxt", len(config_text(name).encode())),
                                ("1/weights.bin", _scaled(16 * MIB, scale)))]
    return {
        "A": Workload("A", "bench_a", "one 1 GiB file + 200 files of 64 KiB", model("bench_a", a)),
        "B": Workload("B", "bench_b", "64 files of 16 MiB", model("bench_b", b)),
        "C": Workload("C", "bench_c", "one 2 GiB file (fetcher memory check)", model("bench_c", c), memory_only=True),
        "D": Workload("D", "bench_d", f"{len(d)} small files (tokenizer and vocab-like)", model("bench_d", d)),
        "E": Workload("E", "bench_e", "one 20 GiB file", model("bench_e", e), single_run=True,
                      data_per_transport=True),
        "F": Workload("F", "bench_f", f"a lease of {len(lease)} models of 16 MiB", tuple(f), lease_models=lease),
    }


def describe_size(size: int) -> str:
    for unit, factor in (("TiB", 1024 * GIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if size >= factor:
            return f"{size / factor:.3g} {unit}"
    return f"{size} B"


@dataclass
class Generated:
    workload: Workload
    s3_prefix: str  # objects live under <bucket>/<s3_prefix>/
    zip_path: Path
    zip_bytes: int = 0  # 0 until the zip is written
    files: dict[str, int] = field(default_factory=dict)

    @classmethod
    def for_workload(cls, workload: Workload, www_dir: Path) -> Generated:
        """Where the workload's data goes; written by write_prefix and write_zip."""
        return cls(workload=workload, s3_prefix=workload.name, zip_path=www_dir / workload.zip_name,
                   files=dict(workload.files))


def write_random_file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        _write_random(out, size)


def _write_random(out: BinaryIO, size: int) -> None:
    left = size
    while left > 0:
        block = os.urandom(min(CHUNK, left))
        out.write(block)
        left -= len(block)


def _config_name(workload: Workload, relative: str) -> str:
    """A lease's models are named by their folder; a single model by the workload."""
    return relative.split("/", 1)[0] if workload.lease_models else workload.name


def write_prefix(workload: Workload, bucket_dir: Path) -> Path:
    """Write the model as files under ``bucket_dir/<name>/`` (the S3 prefix); returns that folder."""
    model_dir = bucket_dir / workload.name
    for relative, size in workload.files:
        target = model_dir / relative
        if relative.endswith("config.pbtxt"):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(config_text(_config_name(workload, relative)))
        else:
            write_random_file(target, size)
    return model_dir


def write_zip(workload: Workload, www_dir: Path, zip_method: str) -> Path:
    """Write ``www_dir/<name>.zip``, the model in one top-level folder; returns its path."""
    www_dir.mkdir(parents=True, exist_ok=True)
    if zip_method == "stored":
        compression, level = zipfile.ZIP_STORED, None
    else:
        compression, level = zipfile.ZIP_DEFLATED, 1
    zip_path = www_dir / workload.zip_name
    with zipfile.ZipFile(zip_path, "w", compression=compression, compresslevel=level, allowZip64=True) as archive:
        for relative, size in workload.files:
            member = f"{workload.name}/{relative}"
            if relative.endswith("config.pbtxt"):
                archive.writestr(member, config_text(_config_name(workload, relative)))
                continue
            # The size is not given to open(), so zip64 is asked for as ZipFile.write() would decide it.
            with archive.open(member, "w", force_zip64=size * 1.05 > zipfile.ZIP64_LIMIT) as out:
                _write_random(out, size)
    return zip_path


S3_COPY = "S3 prefix"
ZIP_COPY = "zip"


def write_data(model: Generated, transports: list[str], bucket_dir: Path, zip_method: str) -> dict[str, float]:
    """Write the copies that ``transports`` read (the S3 prefix for s3, the zip for https), both at once
    when both are wanted (deflate is the slow part); returns the seconds each copy took."""
    jobs: dict[str, tuple[Callable[..., object], tuple]] = {}
    if "s3" in transports:
        jobs[S3_COPY] = (write_prefix, (model.workload, bucket_dir))
    if "https" in transports and not model.workload.lease_models:
        jobs[ZIP_COPY] = (write_zip, (model.workload, model.zip_path.parent, zip_method))
    # In worker processes even for one copy: the harness's own memory stays small, and every tool's
    # ru_maxrss starts from the RSS of the process that forked it.
    with ProcessPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        futures = {name: pool.submit(_timed, function, *arguments) for name, (function, arguments) in jobs.items()}
        seconds = {name: future.result() for name, future in futures.items()}
    if ZIP_COPY in seconds:
        model.zip_bytes = model.zip_path.stat().st_size
    return seconds


def _timed(function: Callable[..., object], *arguments: object) -> float:
    started = time.monotonic()
    function(*arguments)
    return time.monotonic() - started


def remove_data(generated: Generated, bucket_dir: Path) -> None:
    """Delete the workload's S3 copy and zip (whichever exist)."""
    shutil.rmtree(bucket_dir / generated.s3_prefix, ignore_errors=True)
    generated.zip_path.unlink(missing_ok=True)


def check_output(out_dir: Path, expected: dict[str, int], *, lease: bool = False) -> str | None:
    """None when the model's files are all under ``out_dir`` with the right sizes, else what is wrong.

    The model folder is found as the folder holding ``config.pbtxt`` (at most three levels down), so
    every tool's layout (``out/``, ``out/<name>/``, ``out/x/<name>/``) is checked the same way. A
    lease's files are named from ``out_dir`` (``<model>/...``).
    """
    root = out_dir if lease else _find_model_root(out_dir)
    if root is None:
        return "no config.pbtxt in the output"
    missing, wrong = [], []
    for relative, size in expected.items():
        path = root / relative
        try:
            actual = path.stat().st_size
        except OSError:
            missing.append(relative)
            continue
        if not relative.endswith("config.pbtxt") and actual != size:
            wrong.append(f"{relative} ({actual} != {size})")
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} files missing (e.g. {missing[0]})")
        if wrong:
            parts.append(f"{len(wrong)} files of the wrong size (e.g. {wrong[0]})")
        return "incomplete output: " + "; ".join(parts)
    return None


def _find_model_root(out_dir: Path, depth: int = 3) -> Path | None:
    frontier = [out_dir]
    for _ in range(depth + 1):
        for folder in frontier:
            if (folder / "config.pbtxt").is_file():
                return folder
        frontier = [child for folder in frontier if folder.is_dir()
                    for child in sorted(folder.iterdir()) if child.is_dir() and not child.name.startswith(".")]
        if not frontier:
            return None
    return None
