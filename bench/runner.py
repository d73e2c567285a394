"""Running the benchmark's workloads: for each, the free disk checked, its data written, its tools run
round-robin, its data deleted; each tool run measured into a fresh folder and its output checked."""

from __future__ import annotations

import argparse
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import report
from bench.disk import disk_need, shortfall
from bench.measure import Measurement, run_steps
from bench.report import ToolResult
from bench.servers import ServerError, forget_s3_listings
from bench.tools import Context, Tool
from bench.workloads import (GIB, S3_COPY, ZIP_COPY, Generated, Workload, check_output, describe_size, remove_data,
                             write_data)


def say(text: str) -> None:
    print(text, flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.run_counter = 0

    def measure(self, tool: Tool, ctx: Context, model: Generated) -> Measurement:
        """One run into a fresh folder; the output is checked, then removed (outside the timing)."""
        self.run_counter += 1
        run_dir = self.workdir / "runs" / f"{self.run_counter:04d}"
        out = run_dir / "dest"
        scratch = run_dir / "scratch"
        scratch.mkdir(parents=True)
        try:
            steps = tool.steps(ctx, model, out, scratch)
            result = run_steps(steps, scratch / "logs", timeout=self.args.timeout, disk_root=run_dir)
            if result.ok:
                problem = check_output(out, model.files, lease=bool(model.workload.lease_models))
                if problem:
                    result.ok, result.error = False, problem
            return result
        except Exception as exc:  # a harness-side problem for this tool must not stop the benchmark
            return Measurement(False, 0.0, 0, 0, error=f"{type(exc).__name__}: {exc}")
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
            os.sync()  # write-back of this run must not spill into the next one's timing

    def compare(self, tools: list[Tool], results: dict[int, ToolResult], ctx: Context, model: Generated,
                label: str, *, single_run: bool = False) -> None:
        """Round-robin: each repetition runs every tool once, the starting tool rotating.

        ``single_run``: one timed run per tool and no warm-up (a model too large to repeat).
        """
        warmup, runs = (0, 1) if single_run else (self.args.warmup, self.args.runs)
        for index in range(warmup + runs):
            warm = index < warmup
            order = tools[index % len(tools):] + tools[:index % len(tools)]
            for tool in order:
                result = results[id(tool)]
                if result.error is not None:
                    continue  # unavailable, or failed already: no point repeating it
                measured = self.measure(tool, ctx, model)
                (result.warmups if warm else result.runs).append(measured)
                state = f"{measured.seconds:7.3f} s  peak {measured.peak_rss_bytes / report.MIB:6.0f} MiB" \
                    if measured.ok else f"FAILED: {measured.error}"
                say(f"  [{label}] {'warm-up' if warm else f'run {index - warmup + 1}'} "
                    f"{tool.name:<15} {state}")
                if not measured.ok:
                    result.error = measured.error


@dataclass
class WallTime:
    """Where one workload's wall time went: writing its data, and its tools' runs."""
    writing_s: dict[str, float] = field(default_factory=dict)  # copy ("S3 prefix", "zip") -> seconds
    runs_s: dict[str, float] = field(default_factory=dict)  # transport -> seconds of its runs

    def to_json(self) -> dict:
        return {"writing_data_s": {name: round(seconds, 1) for name, seconds in self.writing_s.items()},
                "runs_s": {transport: round(seconds, 1) for transport, seconds in self.runs_s.items()}}


@dataclass
class Outcome:
    """Everything the workloads produced, for the report."""
    models: dict[str, Generated] = field(default_factory=dict)
    tables: dict[tuple[str, str], list[ToolResult]] = field(default_factory=dict)
    memory: dict[str, ToolResult] = field(default_factory=dict)  # C, by transport
    wall: dict[str, WallTime] = field(default_factory=dict)


@dataclass
class Setting:
    """What every workload runs with: the tools, whether each was found, the servers, where data goes."""
    ctx: Context
    tools: list[Tool]
    availability: dict[str, tuple[bool, str]]
    server_errors: dict[str, str]
    bucket_dir: Path
    www: Path


def fresh_results(tools: list[Tool], transport: str, setting: Setting) -> dict[int, ToolResult]:
    results: dict[int, ToolResult] = {}
    for tool in tools:
        ok, text = setting.availability[f"{tool.name} ({tool.transport})"]
        result = ToolResult(tool=tool.name, transport=transport, version=text if ok else "", available=ok,
                            error=None if ok else text)
        if ok and transport in setting.server_errors:
            result.error = setting.server_errors[transport]
        results[id(tool)] = result
    return results


def run_workload(bench: Bench, workload: Workload, setting: Setting, outcome: Outcome) -> None:
    """Write the workload's data, run its tools, delete the data (unless --keep).

    The data of both transports is written at once, except for a workload too large to hold twice
    (``data_per_transport``): its S3 copy is written, measured and deleted before its zip is written.
    Before any data is written the free disk is checked; what does not fit is skipped.
    """
    args = bench.args
    model = outcome.models[workload.key] = Generated.for_workload(workload, setting.www)
    wall = outcome.wall[workload.key] = WallTime()
    tools_by_transport: dict[str, list[Tool]] = {}
    for transport in args.transport_list:
        if workload.lease_models and transport != "s3":
            continue  # a lease is measured over S3 only
        these = [t for t in setting.tools if t.transport == transport and (not workload.memory_only or t.is_fetcher)]
        if these:
            tools_by_transport[transport] = these
    transports = list(tools_by_transport)
    stages = [[t] for t in transports] if workload.data_per_transport else [transports] if transports else []
    for stage in stages:
        results = {t: fresh_results(tools_by_transport[t], t, setting) for t in stage}
        runnable = [t for t in stage if any(r.error is None for r in results[t].values())]
        if runnable:
            problem = prepare_data(bench, model, runnable, tools_by_transport, results, setting, wall)
            if problem is not None:
                for transport in runnable:
                    for result in results[transport].values():
                        if result.error is None:
                            result.error, result.skipped = problem.reason, problem.skipped
        for transport in stage:
            label = f"{workload.key}/{transport}"
            say(f"\n{label}: {workload.title}")
            started = time.monotonic()
            bench.compare(tools_by_transport[transport], results[transport], setting.ctx, model, label,
                          single_run=workload.memory_only or workload.single_run)
            listed = list(results[transport].values())
            if any(result.runs or result.warmups for result in listed):
                wall.runs_s[transport] = time.monotonic() - started
            if workload.memory_only:
                outcome.memory[transport] = listed[0]
            else:
                outcome.tables[(workload.key, transport)] = listed
                say(report.plain_table(listed))
        if not args.keep:
            remove_data(model, setting.bucket_dir)


@dataclass(frozen=True)
class NotPrepared:
    reason: str
    skipped: bool  # True: not enough disk; False: writing the data failed


def prepare_data(bench: Bench, model: Generated, transports: list[str], tools_by_transport: dict[str, list[Tool]],
                 results: dict[str, dict[int, ToolResult]], setting: Setting, wall: WallTime) -> NotPrepared | None:
    """Check the free disk, then write the copies ``transports`` read; None when the tools can run."""
    workload = model.workload
    keeps_archive = "https" in transports and any(
        tool.keeps_archive and results["https"][id(tool)].error is None for tool in tools_by_transport["https"])
    need = disk_need(workload, transports, keeps_archive, int(bench.args.disk_margin * GIB))
    problem = shortfall(bench.workdir, need)
    if problem is not None:
        say(f"\n{workload.key} ({'+'.join(transports)}): {problem}")
        return NotPrepared(problem, skipped=True)
    copies = ([S3_COPY] if "s3" in transports else []) + ([ZIP_COPY] if "https" in transports else [])
    slow = ""
    if workload.total_bytes >= 4 * GIB:
        deflate = " deflated at level 1" if "https" in transports and bench.args.zip_method == "deflate" else ""
        slow = f": {describe_size(workload.total_bytes)} of random data{deflate}, this takes minutes"
    say(f"\n{workload.key} ({workload.title}): writing the {' and the '.join(copies)}, "
        f"{len(workload.files)} files{slow}")
    try:
        written = write_data(model, transports, setting.bucket_dir, bench.args.zip_method)
        if "s3" in transports and setting.ctx.s3 is not None:
            forget_s3_listings(setting.ctx.s3)
        started = time.monotonic()
        os.sync()  # the data's write-back must not land in the first run's time
        written["sync"] = time.monotonic() - started
    except (OSError, ServerError) as exc:
        remove_data(model, setting.bucket_dir)
        return NotPrepared(f"writing the data failed: {exc}", skipped=False)
    for name, seconds in written.items():  # "sync" comes once per stage
        wall.writing_s[name] = wall.writing_s.get(name, 0.0) + seconds
    sizes = {S3_COPY: workload.total_bytes, ZIP_COPY: model.zip_bytes}
    say(f"{workload.key}: wrote " + ", ".join(f"the {name} ({describe_size(sizes[name])}) in {written[name]:.1f} s"
                                             for name in copies) + f"; sync {written['sync']:.1f} s")
    return None
