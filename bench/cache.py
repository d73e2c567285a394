"""The node's model cache: a hit against a download from the local S3 server, and copy against link.

    python -m bench.cache                    # a 1 GiB model, 3 runs of each shape
    python -m bench.cache --size 64Mi --runs 1

Shapes, each a fresh `model-fetcher fetch` process with the fetcher's S3 secrets:
- download: no cache, the model from `rclone serve s3` on loopback;
- miss: an empty cache, so the model is downloaded, sealed (read-only, sha256 per file) and linked;
- hit: a second pod on the same cache: the source is asked for its validators, the entry is
  checked and linked, nothing is downloaded.
Each row gives the fetch phase (the fetcher's own `seconds=` for the model), the process's wall
time (Python and boto3 start-up included) and the peak disk of the cache and the pod's repository.
A last table times the two ways a repository could take an entry: a copy and a symbolic link.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.servers import rclone_s3
from bench.tools import base_environments, write_fetcher_s3_values
from bench.workloads import GIB, MIB, config_text, describe_size, write_random_file

MODEL = "bench_cache"
BUCKET = "bench"


@dataclass(frozen=True)
class Sample:
    shape: str
    fetch_seconds: float
    wall_seconds: float
    peak_disk: int


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: say a byte count or a number with Ki, Mi or Gi")
    return int(match.group(1)) * {None: 1, "Ki": 1024, "Mi": MIB, "Gi": GIB}[match.group(2)]


def disk_bytes(*folders: Path) -> int:
    """Bytes of the regular files below the folders (links count nothing)."""
    total = 0
    for folder in folders:
        for base, _dirs, files in os.walk(folder):
            for name in files:
                path = Path(base) / name
                if not path.is_symlink():
                    total += path.stat().st_size
    return total


def run_fetch(work: Path, values: Path, secrets: Path, env: dict[str, str], pod: str, cache: Path | None) -> tuple[float, float, Path]:
    dest = work / pod / "repository"
    command = [sys.executable, "-m", "fetcher", "fetch", "--values", str(values), "--dest", str(dest),
               "--secrets-dir", str(secrets), "--termination-log", str(work / pod / "termination-log"),
               "--model", f"name={MODEL},uri=model://bench-s3/{MODEL}"]
    if cache is not None:
        command += ["--cache-dir", str(cache), "--cache-max-size", "100Gi"]
    (work / pod).mkdir(parents=True)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**env, "POD_UID": pod}, timeout=1800)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the fetcher failed ({pod}):\n{done.stderr[-3000:]}")
    found = re.search(rf"model={MODEL} event=installed .*? seconds=([0-9.]+)", done.stderr)
    if found is None:
        raise SystemExit(f"no installed line in the fetcher's log ({pod}):\n{done.stderr[-3000:]}")
    return float(found.group(1)), wall, dest


def copy_and_link(model: Path, scratch: Path, runs: int) -> tuple[list[float], list[float]]:
    copies, links = [], []
    for run in range(runs):
        target = scratch / f"copy-{run}"
        started = time.perf_counter()
        shutil.copytree(model, target)
        copies.append(time.perf_counter() - started)
        shutil.rmtree(target)
        link = scratch / f"link-{run}"
        started = time.perf_counter()
        os.symlink(model, link, target_is_directory=True)
        links.append(time.perf_counter() - started)
        link.unlink()
    return copies, links


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cache", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=GIB, help="the model's weights file (default: 1Gi)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each shape (default: 3)")
    parser.add_argument("--workdir", type=Path, help="where the temporary folder is made (default: the system's)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-cache-", dir=args.workdir) as temporary:
        work = Path(temporary)
        model = work / "bucket" / BUCKET / MODEL
        (model / "1").mkdir(parents=True)
        (model / "config.pbtxt").write_text(config_text(MODEL))
        write_random_file(model / "1" / "weights.bin", args.size)
        with rclone_s3(work / "bucket", BUCKET, work) as s3:
            _clean, aws = base_environments(work, s3)
            values, secrets = write_fetcher_s3_values(work, s3)
            samples: list[Sample] = []
            for run in range(args.runs):
                runs = work / f"run-{run}"
                seconds, wall, dest = run_fetch(runs, values, secrets, aws, "download", None)
                samples.append(Sample("download", seconds, wall, disk_bytes(dest)))
                cache = runs / "cache"
                seconds, wall, first = run_fetch(runs, values, secrets, aws, "miss", cache)
                samples.append(Sample("miss", seconds, wall, disk_bytes(cache, first)))
                seconds, wall, second = run_fetch(runs, values, secrets, aws, "hit", cache)
                samples.append(Sample("hit", seconds, wall, disk_bytes(cache, first, second)))
                shutil.rmtree(runs)
        copies, links = copy_and_link(model, work, args.runs)
    print(report(samples, copies, links, args.size, args.runs))
    return 0


def report(samples: list[Sample], copies: list[float], links: list[float], size: int, runs: int) -> str:
    def median(shape: str, field: str) -> float:
        return statistics.median(getattr(s, field) for s in samples if s.shape == shape)

    download = median("download", "fetch_seconds")
    lines = [f"Model: {describe_size(size)} weights + config.pbtxt, S3 (rclone serve s3 on loopback), "
             f"{runs} run(s), medians; {os.cpu_count()} CPUs.", "",
             "| shape | fetch phase (s) | speed-up | process wall (s) | peak disk |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for shape in ("download", "miss", "hit"):
        fetch = median(shape, "fetch_seconds")
        speedup = f"{download / fetch:.1f}x" if fetch > 0 else "-"
        peak = max(s.peak_disk for s in samples if s.shape == shape)
        lines.append(f"| {shape} | {fetch:.3f} | {speedup} | {median(shape, 'wall_seconds'):.2f} | {describe_size(peak)} |")
    lines += ["", "| an entry into a repository | median (s) |", "| --- | ---: |",
              f"| copy (shutil.copytree) | {statistics.median(copies):.3f} |",
              f"| symbolic link | {statistics.median(links):.6f} |"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
