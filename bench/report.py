"""Summaries, the side-by-side tables, the issue's goals, the machine's description, and the result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from bench.measure import Measurement

MIB = 1024 * 1024

# The goals the benchmark reports against.
GOAL_S3_VS_S5CMD = 1.0
GOAL_SMALL_FILES_VS_S5CMD = 1.2  # workload D
GOAL_HTTPS_VS_FLOOR = 0.8
GOAL_DISK_VS_MODEL = 1.05  # the fetcher's peak disk for a zip, over the model's size
GOAL_RSS_MIB = 150.0
GOAL_STARTUP_S = 0.3


@dataclass
class ToolResult:
    tool: str
    transport: str
    version: str = ""
    available: bool = True
    runs: list[Measurement] = field(default_factory=list)  # timed runs only
    warmups: list[Measurement] = field(default_factory=list)
    error: str | None = None  # why the tool has no time (unavailable, failed, skipped)
    skipped: bool = False  # not run: the workload did not fit on the disk (error says what it needed)

    @property
    def ok_runs(self) -> list[Measurement]:
        return [run for run in self.runs if run.ok]

    @property
    def has_time(self) -> bool:
        return self.error is None and bool(self.ok_runs)

    @property
    def median(self) -> float | None:
        return statistics.median(r.seconds for r in self.ok_runs) if self.has_time else None

    @property
    def spread(self) -> tuple[float, float] | None:
        if not self.has_time:
            return None
        times = [r.seconds for r in self.ok_runs]
        return min(times), max(times)

    @property
    def cpu_median(self) -> float | None:
        return statistics.median(r.cpu_seconds for r in self.ok_runs) if self.has_time else None

    @property
    def peak_rss_mib(self) -> float | None:
        measured = [r for r in self.ok_runs + [w for w in self.warmups if w.ok]]
        if not measured:
            return None
        return max(r.peak_rss_bytes for r in measured) / MIB

    @property
    def peak_disk_mib(self) -> float | None:
        measured = [r for r in self.ok_runs + [w for w in self.warmups if w.ok]]
        return max(r.peak_disk_bytes for r in measured) / MIB if measured else None

    @property
    def status(self) -> str:
        if self.has_time:
            return "ok"
        if self.skipped:
            return "skipped"
        return "unavailable" if not self.available else "failed"

    def to_json(self, fastest: float | None) -> dict:
        median = self.median
        spread = self.spread
        return {
            "tool": self.tool,
            "transport": self.transport,
            "version": self.version,
            "available": self.available,
            "status": self.status,
            "error": self.error,
            "median_s": _round(median),
            "min_s": _round(spread[0]) if spread else None,
            "max_s": _round(spread[1]) if spread else None,
            "ratio_to_fastest": _round(median / fastest) if median and fastest else None,
            "peak_rss_mib": _round(self.peak_rss_mib, 1),
            "peak_disk_mib": _round(self.peak_disk_mib, 3),
            "cpu_median_s": _round(self.cpu_median),
            "runs": [_run_json(r) for r in self.runs],
            "warmups": [_run_json(r) for r in self.warmups],
        }


def _run_json(run: Measurement) -> dict:
    return {"ok": run.ok, "seconds": _round(run.seconds), "cpu_seconds": _round(run.cpu_seconds),
            "system_seconds": _round(run.system_seconds), "minor_faults": run.minor_faults,
            "step_seconds": [_round(s) for s in run.step_seconds],
            "max_rss_mib": _round(run.max_rss_bytes / MIB, 1), "tree_rss_mib": _round(run.tree_rss_bytes / MIB, 1),
            "peak_disk_mib": _round(run.peak_disk_bytes / MIB, 3),
            "error": run.error}


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def fastest_of(results: list[ToolResult]) -> float | None:
    medians = [r.median for r in results if r.median is not None]
    return min(medians) if medians else None


def result_of(results: list[ToolResult], tool: str) -> ToolResult | None:
    return next((r for r in results if r.tool == tool), None)


# ------------------------------------------------------------------------------------- tables

def table_lines(results: list[ToolResult]) -> list[str]:
    fastest = fastest_of(results)
    lines = ["| tool | median s | spread s (min–max) | × fastest | peak RSS MiB | peak disk MiB | CPU s | runs |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    ordered = sorted(results, key=lambda r: (r.median is None, r.median or 0.0))
    for result in ordered:
        if result.has_time:
            low, high = result.spread  # type: ignore[misc]
            lines.append(f"| {result.tool} | {result.median:.3f} | {low:.3f}–{high:.3f} | "
                         f"{result.median / fastest:.2f} | {result.peak_rss_mib:.0f} | {result.peak_disk_mib:.0f} | "
                         f"{result.cpu_median:.2f} | "
                         f"{len(result.ok_runs)} |")
        else:
            reason = (result.error or "no successful run").replace("|", "/")
            lines.append(f"| {result.tool} | {result.status} | — | — | — | — | — | {len(result.ok_runs)} |")
            lines.append(f"|   ↳ {reason[:300]} | | | | | | | |")
    return lines


def diagnostics_line(results: list[ToolResult]) -> str:
    """System CPU seconds and minor page faults per tool (medians): where the CPU time went."""
    parts = []
    for result in results:
        if result.has_time:
            system = statistics.median(r.system_seconds for r in result.ok_runs)
            faults = statistics.median(r.minor_faults for r in result.ok_runs)
            parts.append(f"{result.tool} {system:.2f} s / {faults / 1000:.0f} k")
    return "System CPU / minor page faults (medians): " + "; ".join(parts) + "." if parts else ""


def plain_table(results: list[ToolResult]) -> str:
    """The same table for a terminal, fixed-width."""
    fastest = fastest_of(results)
    header = (f"  {'tool':<16} {'median s':>9} {'spread s (min-max)':>19} {'x fastest':>10} {'peak RSS MiB':>13}"
              f" {'peak disk MiB':>14} {'CPU s':>7}")
    rows = [header]
    for result in sorted(results, key=lambda r: (r.median is None, r.median or 0.0)):
        if result.has_time:
            low, high = result.spread  # type: ignore[misc]
            rows.append(f"  {result.tool:<16} {result.median:>9.3f} {f'{low:.3f}-{high:.3f}':>19} "
                        f"{result.median / fastest:>10.2f} {result.peak_rss_mib:>13.0f} {result.peak_disk_mib:>14.0f} "
                        f"{result.cpu_median:>7.2f}")
        else:
            if result.skipped:  # the reason starts with "skipped: "
                rows.append(f"  {result.tool:<16} {result.error}")
            else:
                status = "unavailable" if not result.available else "FAILED"
                rows.append(f"  {result.tool:<16} {status}: {(result.error or 'no successful run')[:200]}")
    return "\n".join(rows)


# -------------------------------------------------------------------------------------- goals

@dataclass
class Goal:
    text: str
    status: str  # "pass", "fail", "n/a"
    detail: str

    def to_json(self) -> dict:
        return {"goal": self.text, "status": self.status, "detail": self.detail}


def _combine(checks: list[tuple[bool | None, str]]) -> tuple[str, str]:
    if not checks:
        return "n/a", "not measured in this run"
    known = [ok for ok, _ in checks if ok is not None]
    detail = "; ".join(text for _, text in checks)
    if len(known) < len(checks):
        return ("fail" if known and not all(known) else "n/a"), detail
    return ("pass" if all(known) else "fail"), detail


def _no_time(key: str, name: str, result: ToolResult | None) -> str:
    if result is not None and result.skipped:
        return f"{key}: {result.error}"
    return f"{key}: no time for {name}"


def _ratio_check(results: list[ToolResult], key: str, peer: str, limit: float) -> tuple[bool | None, str]:
    fetcher, other = result_of(results, "fetcher"), result_of(results, peer)
    f_median = fetcher.median if fetcher else None
    o_median = other.median if other else None
    if f_median is None:
        return None, _no_time(key, "fetcher", fetcher)
    if o_median is None:
        return None, _no_time(key, peer, other)
    ratio = f_median / o_median
    return ratio <= limit, f"{key}: fetcher {f_median:.2f} s / {peer} {o_median:.2f} s = {ratio:.2f}× (goal ≤ {limit:.2f}×)"


def evaluate_goals(tables: dict[tuple[str, str], list[ToolResult]], memory: dict[str, ToolResult],
                   startup: dict[str, dict], scale: float, model_bytes: dict[str, int] | None = None) -> list[Goal]:
    goals: list[Goal] = []
    s5, small, floor, kserve, disk = [], [], [], [], []
    for (key, transport), results in sorted(tables.items()):
        if transport == "s3":
            if key == "D":
                small.append(_ratio_check(results, key, "s5cmd", GOAL_SMALL_FILES_VS_S5CMD))
            else:
                s5.append(_ratio_check(results, key, "s5cmd", GOAL_S3_VS_S5CMD))
            continue
        floor.append(_ratio_check(results, key, "curl + zipfile", GOAL_HTTPS_VS_FLOOR))
        kserve.append(_ratio_check(results, key, "kserve-storage", 1.0))
        fetcher = result_of(results, "fetcher")
        size = (model_bytes or {}).get(key)
        if fetcher and fetcher.peak_disk_mib is not None and size:
            ratio = fetcher.peak_disk_mib * MIB / size
            disk.append((ratio <= GOAL_DISK_VS_MODEL, f"{key}: {fetcher.peak_disk_mib:.0f} MiB for a model of "
                                                      f"{size / MIB:.0f} MiB on disk = {ratio:.2f}×"))
        elif fetcher and fetcher.skipped:
            disk.append((None, _no_time(key, "fetcher", fetcher)))
    goals.append(Goal(f"S3 within {GOAL_S3_VS_S5CMD}× of s5cmd", *_combine(s5)))
    goals.append(Goal(f"10,000 small files over S3 within {GOAL_SMALL_FILES_VS_S5CMD}× of s5cmd", *_combine(small)))
    goals.append(Goal(f"HTTPS zip within {GOAL_HTTPS_VS_FLOOR}× of curl + zipfile", *_combine(floor)))
    goals.append(Goal("HTTPS zip faster than kserve-storage", *_combine(kserve)))
    goals.append(Goal(f"peak disk of a zip within {GOAL_DISK_VS_MODEL}× of the model's size", *_combine(disk)))

    rss: list[tuple[bool | None, str]] = []
    for transport, result in sorted(memory.items()):
        peak = result.peak_rss_mib
        if peak is None:
            rss.append((None, f"{transport}: {result.error or 'no successful run'}"))
        else:
            rss.append((peak < GOAL_RSS_MIB, f"{transport}: {peak:.0f} MiB (goal < {GOAL_RSS_MIB:.0f})"))
    if not memory:  # fall back on the 1 GiB workloads, and say so
        for (key, transport), results in sorted(tables.items()):
            fetcher = result_of(results, "fetcher")
            if fetcher and fetcher.peak_rss_mib is not None:
                rss.append((None, f"{key}/{transport} (not 2 GiB): {fetcher.peak_rss_mib:.0f} MiB"))
    for (key, transport), results in sorted(tables.items()):
        fetcher = result_of(results, "fetcher")
        if key == "E" and fetcher and fetcher.peak_rss_mib is not None:
            rss.append((fetcher.peak_rss_mib < GOAL_RSS_MIB,
                        f"E/{transport} (20 GiB): {fetcher.peak_rss_mib:.0f} MiB (goal < {GOAL_RSS_MIB:.0f})"))
        elif key == "E" and fetcher and fetcher.skipped:
            rss.append((None, _no_time(f"E/{transport}", "fetcher", fetcher)))
    goals.append(Goal(f"fetcher peak RSS < {GOAL_RSS_MIB:.0f} MiB for the 2 GiB and 20 GiB models", *_combine(rss)))

    explain = startup.get("explain_https")
    if explain and explain.get("median_s") is not None:
        median = explain["median_s"]
        goals.append(Goal(f"start-up < {GOAL_STARTUP_S} s for an HTTPS-only lease",
                          "pass" if median < GOAL_STARTUP_S else "fail",
                          f"explain of an https-only lease: median {median:.3f} s over {explain['runs']} runs"))
    else:
        goals.append(Goal(f"start-up < {GOAL_STARTUP_S} s for an HTTPS-only lease", "n/a",
                          (explain or {}).get("error", "not measured")))
    if scale != 1.0:
        for goal in goals[:-1]:
            goal.detail += f" [scaled run, --scale {scale}: sizes are not the issue's]"
    return goals


# ------------------------------------------------------------------------------------ machine

def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
                break
    except (OSError, ValueError):
        pass
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        nproc = str(len(os.sched_getaffinity(0)))
    return {
        "cpu_model": cpu,
        "nproc": int(nproc) if nproc.isdigit() else nproc,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def load_average() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return []


def describe_machine(machine: dict) -> str:
    return (f"{machine['cpu_model']}, nproc {machine['nproc']}, {machine['memory_gib']} GiB memory, "
            f"{machine['os']}, kernel {machine['kernel']}, Python {machine['python']}")


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# -------------------------------------------------------------------------------------- files

def write_results(directory: Path, document: dict, markdown: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "latest.json"
    md_path = directory / "latest.md"
    json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(markdown)
    return md_path, json_path
