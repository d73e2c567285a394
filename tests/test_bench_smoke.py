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
    stdout = done.stdout
    # E is written per transport, just before its runs: its S3 copy, its S3 runs, then its zip.
    assert stdout.index("E (one 20 GiB file): writing the S3 prefix,") < stdout.index("\nE/s3:") \
        < stdout.index("E (one 20 GiB file): writing the zip,") < stdout.index("\nE/https:")
    assert "E (one 20 GiB file): writing the S3 prefix and the zip" not in stdout
    assert set(shapes["E"]["wall_time"]["writing_data_s"]) == {"S3 prefix", "zip", "sync"}
    assert set(shapes["E"]["wall_time"]["runs_s"]) == {"s3", "https"}
    assert "## Where the wall time went" in (results / "latest.md").read_text()
    assert not any((tmp_path / "work").iterdir()), "the harness left its temporary folder behind"


def test_bench_skips_a_workload_the_disk_cannot_hold(tmp_path: Path) -> None:
    """A margin beyond any disk's free space: every workload is skipped, with the figures, before any data
    is written, and the run still ends with its report."""
    pytest.importorskip("trustme")
    results = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scale", "0.0002", "--runs", "1", "--warmup", "0", "--workloads", "C,E",
         "--transports", "s3,https", "--tools", "fetcher", "--startup-runs", "1", "--http-server", "python",
         "--disk-margin", "1000000", "--results-dir", str(results), "--workdir", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "E (s3): skipped: needs " in done.stdout and "E (https): skipped: needs " in done.stdout
    assert "): writing the " not in done.stdout  # no data was written
    document = json.loads((results / "latest.json").read_text())
    for shape in document["workloads"]:
        assert set(shape["results"]) == {"s3", "https"}
        for rows in shape["results"].values():
            (fetcher,) = rows
            assert fetcher["status"] == "skipped" and fetcher["runs"] == []
            assert fetcher["error"].startswith("skipped: needs ") and " available" in fetcher["error"]
    goals = {goal["goal"]: goal for goal in document["goals"]}
    rss = goals["fetcher peak RSS < 150 MiB for the 2 GiB and 20 GiB models"]
    assert rss["status"] == "n/a" and "E/s3: skipped: needs " in rss["detail"]
    disk = goals["peak disk of a zip within 1.05× of the model's size"]
    assert disk["status"] == "n/a" and "E: skipped: needs " in disk["detail"]
    markdown = (results / "latest.md").read_text()
    assert "| fetcher | skipped |" in markdown and "| N/A | E: skipped: needs " in markdown
    assert not any((tmp_path / "work").iterdir()), "the harness left its temporary folder behind"


def test_bench_tools_by_compact_or_printed_name() -> None:
    from bench.tools import tool_keys

    assert tool_keys(["curl+zipfile", "Curl + Unzip", "aws", "aws s3 cp", " s5cmd "]) == (
        {"curl+zipfile", "curl+unzip", "aws", "s5cmd"}, [])
    assert tool_keys(["fetcher", "curl", "zipfile"]) == ({"fetcher"}, ["curl", "zipfile"])


def test_bench_rejects_an_unknown_tool_and_lists_the_names() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--tools", "fetcher,curl", "--scale", "0.0002", "--no-write"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "no tool named 'curl'" in done.stderr
    assert "curl+zipfile (curl + zipfile)" in done.stderr and "aws (aws s3 cp)" in done.stderr
