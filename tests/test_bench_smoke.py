"""The benchmark harness still runs: a tiny HTTPS-only run of the fetcher (not a performance check)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("server", ["auto", "python"])
def test_bench_smoke_run_prints_a_fetcher_time(tmp_path: Path, server: str) -> None:
    pytest.importorskip("trustme")
    results = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scale", "0.0005", "--runs", "1", "--warmup", "0", "--workloads", "A",
         "--transports", "https", "--tools", "fetcher", "--startup-runs", "1", "--http-server", server,
         "--results-dir", str(results), "--workdir", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    markdown = (results / "latest.md").read_text()
    row = next(line for line in markdown.splitlines() if line.startswith("| fetcher |"))
    assert row in done.stdout  # the table is printed as well as written
    median = float(row.split("|")[2])
    assert 0 < median < 60

    document = json.loads((results / "latest.json").read_text())
    (fetcher,) = document["workloads"][0]["results"]["https"]
    assert fetcher["status"] == "ok" and fetcher["median_s"] > 0
    assert fetcher["peak_rss_mib"] > 0
    assert fetcher["peak_disk_mib"] > 0 and "peak disk MiB" in markdown
    if server == "python":
        assert document["servers"]["https"]["kind"] == "python-fallback"
        assert "python-fallback" in markdown
    assert not any((tmp_path / "work").iterdir()), "the harness left its temporary folder behind"


def test_bench_smoke_run_of_the_scale_shapes(tmp_path: Path) -> None:
    """Many small files, the 20 GiB file and a lease of models, shrunk by --scale to a few seconds."""
    pytest.importorskip("trustme")
    results = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scale", "0.0002", "--runs", "1", "--warmup", "0", "--workloads", "D,E,F",
         "--transports", "s3,https", "--tools", "fetcher", "--startup-runs", "1", "--http-server", "python",
         "--results-dir", str(results), "--workdir", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    document = json.loads((results / "latest.json").read_text())
    shapes = {w["key"]: w for w in document["workloads"]}
    assert set(shapes) == {"D", "E", "F"}
    assert shapes["D"]["files"] >= 3 and set(shapes["D"]["results"]) == {"s3", "https"}
    assert set(shapes["F"]["results"]) == {"s3"}  # a lease is measured over S3
    for shape in shapes.values():
        for rows in shape["results"].values():
            (fetcher,) = rows
            assert fetcher["status"] == "ok", fetcher["error"]
            assert fetcher["median_s"] > 0 and fetcher["cpu_median_s"] > 0
            assert fetcher["peak_rss_mib"] > 0 and fetcher["peak_disk_mib"] > 0, (shape["key"], fetcher)
            assert len(fetcher["runs"]) == 1
