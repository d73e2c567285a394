"""The benchmark's models, generated as incompressible data: each as an S3 prefix and as a zip.

Layout of every model (a Triton model directory)::

    <name>/config.pbtxt
    <name>/1/...            the workload's files

The zip holds the model inside one top-level folder ``<name>/`` (the common layout), compressed
with deflate at level 1 by default (``--zip-method stored`` for no compression). The data is random,
so deflate cannot shrink it: zlib then emits stored blocks and inflating them is close to a copy,
as it is for real weights, which deflate shrinks by only a few per cent.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

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
        "E": Workload("E", "bench_e", "one 20 GiB file", model("bench_e", e), single_run=True),
        "F": Workload("F", "bench_f", f"a lease of {len(lease)} models of 16 MiB", tuple(f), lease_models=lease),
    }


def describe_size(size: int) -> str:
    for unit, factor in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if size >= factor:
            return f"{size / factor:.3g} {unit}"
    return f"{size} B"


@dataclass
class Generated:
    workload: Workload
    s3_prefix: str  # objects live under <bucket>/<s3_prefix>/
    zip_path: Path
    zip_bytes: int
    files: dict[str, int] = field(default_factory=dict)


def _write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        left = size
        while left > 0:
            block = os.urandom(min(CHUNK, left))
            out.write(block)
            left -= len(block)


def generate(workload: Workload, bucket_dir: Path, www_dir: Path, zip_method: str) -> Generated:
    """Write the model under ``bucket_dir/<name>/`` (the S3 prefix) and ``www_dir/<name>.zip``."""
    model_dir = bucket_dir / workload.name
    for relative, size in workload.files:
        target = model_dir / relative
        if relative.endswith("config.pbtxt"):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(config_text(target.parent.name if workload.lease_models else workload.name))
        else:
            _write_random(target, size)
    www_dir.mkdir(parents=True, exist_ok=True)
    zip_path = www_dir / workload.zip_name
    if workload.lease_models:  # S3 only: no zip
        return Generated(workload=workload, s3_prefix=workload.name, zip_path=zip_path, zip_bytes=0,
                         files=dict(workload.files))
    if zip_method == "stored":
        compression, level = zipfile.ZIP_STORED, None
    else:
        compression, level = zipfile.ZIP_DEFLATED, 1
    with zipfile.ZipFile(zip_path, "w", compression=compression, compresslevel=level, allowZip64=True) as archive:
        for relative, _ in workload.files:
            archive.write(model_dir / relative, f"{workload.name}/{relative}")
    return Generated(workload=workload, s3_prefix=workload.name, zip_path=zip_path,
                     zip_bytes=zip_path.stat().st_size, files=dict(workload.files))


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
