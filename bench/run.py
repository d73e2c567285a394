"""The benchmark: the fetcher side by side with s5cmd, aws s3 cp, kserve-storage, curl + unzip and
curl + zipfile, on loopback against real servers (`rclone serve s3`, nginx over HTTPS).

    python -m bench [--scale 0.05] [--runs 3] [--workloads A,B,C] [--transports s3,https]

See bench/README.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench import report
from bench.disk import DEFAULT_MARGIN_GIB
from bench.measure import Step, run_steps
from bench.runner import Bench, Outcome, Setting, run_workload, say
from bench.servers import ServerError, https_server, make_certificates, rclone_s3
from bench.tools import (TOOLS, Context, Tool, base_environments, fetcher_binary, fetcher_fetch_options,
                         tool_keys, tool_names_help, write_fetcher_s3_values)
from bench.workloads import build_workloads, describe_size

BUCKET = "bench"
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every file size by this (e.g. 0.05 for a smoke run; default 1: full size)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each tool per workload (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up rounds first (default 1)")
    parser.add_argument("--workloads", default="A,B,C,D,E,F",
                        help="A: 1 GiB + 200 x 64 KiB; B: 64 x 16 MiB; C: one 2 GiB file, fetcher memory only; "
                             "D: 10,000 small files; E: one 20 GiB file (one run per tool, its S3 copy and zip written one "
                             "after the other); F: a lease of 50 models "
                             "of 16 MiB, S3 only (default all)")
    parser.add_argument("--transports", default="s3,https", help="s3, https or both (default both)")
    parser.add_argument("--tools", default="",
                        help=f"only these tools, comma-separated (e.g. 'fetcher,s5cmd,curl+zipfile'): "
                             f"{tool_names_help()}")
    parser.add_argument("--http-server", choices=["auto", "nginx", "python"], default="auto",
                        help="auto: nginx when installed, else the slower Python server (flagged in the output)")
    parser.add_argument("--zip-method", choices=["deflate", "stored"], default="deflate",
                        help="zip compression of the HTTPS workloads (default deflate, level 1)")
    parser.add_argument("--startup-runs", type=int, default=10, help="runs of each start-up measurement (default 10)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one tool run may take (default 900)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where data and outputs go (a temporary folder inside it; default: the system's temp)")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS,
                        help=f"where latest.md and latest.json are written (default {DEFAULT_RESULTS})")
    parser.add_argument("--disk-margin", type=float, default=DEFAULT_MARGIN_GIB, metavar="GIB",
                        help="free disk to leave beyond a workload's estimated need; a workload that does not fit "
                             f"is skipped, with the figures (default {DEFAULT_MARGIN_GIB:g})")
    parser.add_argument("--no-write", action="store_true", help="print only; write no result files")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (data, logs)")
    args = parser.parse_args(argv)
    if args.scale <= 0 or args.runs < 1 or args.warmup < 0 or args.startup_runs < 1:
        parser.error("--scale must be > 0, --runs and --startup-runs >= 1, --warmup >= 0")
    args.workload_keys = [k.strip().upper() for k in args.workloads.split(",") if k.strip()]
    args.transport_list = [t.strip().lower() for t in args.transports.split(",") if t.strip()]
    unknown = set(args.workload_keys) - set("ABCDEF")
    if unknown or set(args.transport_list) - {"s3", "https"}:
        parser.error("workloads are A to F; transports are s3, https")
    args.tool_filter, unknown_tools = tool_keys([t for t in args.tools.split(",") if t.strip()])
    if unknown_tools:
        parser.error(f"no tool named {', '.join(repr(t) for t in unknown_tools)}; tools are {tool_names_help()}")
    if not selected_tools(args):
        parser.error(f"none of the tools {args.tools!r} runs over {', '.join(args.transport_list)}")
    if args.disk_margin < 0:
        parser.error("--disk-margin must be >= 0")
    return args


def selected_tools(args: argparse.Namespace) -> list[Tool]:
    return [tool for tool in TOOLS if tool.transport in args.transport_list
            and (not args.tool_filter or tool.key in args.tool_filter)]


def discover(tools: list[Tool], ctx: Context) -> dict[str, tuple[bool, str]]:
    found: dict[str, tuple[bool, str]] = {}
    for tool in tools:
        key = f"{tool.name} ({tool.transport})"
        found[key] = tool.find(ctx)
    return found


def measure_startup(ctx: Context, runs: int, workdir: Path) -> dict[str, dict]:
    binary = fetcher_binary()
    if binary is None:
        return {"error": "model-fetcher not installed"}
    secrets = workdir / "no-secrets"
    secrets.mkdir(exist_ok=True)
    lease = ["--model", "name=startup,uri=https://models.example.com/repository/startup.zip", "--secrets-dir",
             str(secrets)]
    commands = {
        "python_floor": [ctx.python, "-c", "pass"],
        "version": [binary, "--version"],
        "explain_https": [binary, "explain", *lease],
    }
    out: dict[str, dict] = {}
    for name, argv in commands.items():
        times, error, peak = [], None, 0
        for _ in range(runs):
            measured = run_steps([Step(argv, env=ctx.clean_env)], workdir / "startup-logs", timeout=60)
            if not measured.ok:
                error = measured.error
                break
            times.append(measured.seconds)
            peak = max(peak, measured.peak_rss_bytes)
        shown = [Path(argv[0]).name, *("DIR" if a == str(secrets) else a for a in argv[1:])]
        out[name] = {"command": " ".join(shown),
                     "runs": len(times), "median_s": round(statistics.median(times), 4) if times else None,
                     "min_s": round(min(times), 4) if times else None, "max_s": round(max(times), 4) if times else None,
                     "peak_rss_mib": round(peak / report.MIB, 1), "error": error}
    out["imports"] = import_profile(ctx, binary, lease)
    return out


def import_profile(ctx: Context, binary: str, lease: list[str]) -> list[dict]:
    """The heaviest top-level imports of an https-only explain (python -X importtime), for whoever optimises."""
    try:
        done = subprocess.run([ctx.python, "-X", "importtime", binary, "explain", *lease], capture_output=True,
                              text=True, timeout=60, env=ctx.clean_env)
    except (OSError, subprocess.TimeoutExpired):
        return []
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.removeprefix("import time:").split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        name = parts[2]
        depth = (len(name) - len(name.lstrip(" "))) // 2
        if depth <= 1:  # direct imports of the script, and their direct imports
            rows.append({"module": name.strip(), "depth": depth, "cumulative_ms": int(parts[1]) / 1000})
    rows.sort(key=lambda r: r["cumulative_ms"], reverse=True)
    return rows[:10]


# ------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    base = args.workdir
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="model-fetcher-bench-", dir=base))
    try:
        return _run(args, workdir, started)
    finally:
        if args.keep:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(args: argparse.Namespace, workdir: Path, started: float) -> int:
    machine = report.machine_info()
    load_at_start = report.load_average()
    date = report.now_utc()
    say(f"model-fetcher benchmark, {date}\nmachine: {report.describe_machine(machine)}")
    workloads = build_workloads(args.scale)
    chosen = [workloads[key] for key in args.workload_keys]
    tools = selected_tools(args)
    clean_env, _ = base_environments(workdir, None)
    ctx = Context(workdir=workdir, python=sys.executable, clean_env=clean_env, fetcher_extra=fetcher_fetch_options())
    availability = discover(tools, ctx)
    for key, (ok, text) in availability.items():
        say(f"  {'found  ' if ok else 'MISSING'} {key}: {text}")

    bucket_dir = workdir / "s3root" / BUCKET
    www = workdir / "www"
    bucket_dir.mkdir(parents=True)
    www.mkdir()
    bench = Bench(args, workdir)
    outcome = Outcome()
    servers: dict[str, dict] = {}
    with ExitStack() as stack:
        server_errors: dict[str, str] = {}
        if "s3" in args.transport_list:
            try:
                ctx.s3 = stack.enter_context(rclone_s3(bucket_dir.parent, BUCKET, workdir))
                servers["s3"] = {"kind": ctx.s3.kind, "version": ctx.s3.version, "endpoint": ctx.s3.endpoint}
                ctx.values_file, ctx.secrets_dir = write_fetcher_s3_values(workdir, ctx.s3)
            except ServerError as exc:
                server_errors["s3"] = f"S3 server: {exc}"
        if "https" in args.transport_list:
            try:
                certs = make_certificates(workdir)
                ctx.https = stack.enter_context(https_server(args.http_server, www, certs, workdir))
                servers["https"] = {"kind": ctx.https.kind, "version": ctx.https.version, "note": ctx.https.note}
                if ctx.https.note:
                    say(f"NOTE: {ctx.https.note}")
            except (ServerError, ImportError) as exc:
                server_errors["https"] = f"HTTPS server: {exc}"
        ctx.clean_env, ctx.aws_env = base_environments(workdir, ctx.s3)
        (workdir / "no-secrets").mkdir(exist_ok=True)
        for key, server in servers.items():
            say(f"server {key}: {server['kind']} ({server['version']})")
        setting = Setting(ctx=ctx, tools=tools, availability=availability, server_errors=server_errors,
                          bucket_dir=bucket_dir, www=www)
        for workload in chosen:
            run_workload(bench, workload, setting, outcome)

    load_at_end = report.load_average()
    say("\nfetcher start-up")
    startup = measure_startup(ctx, args.startup_runs, workdir)
    goals = report.evaluate_goals(outcome.tables, outcome.memory, startup, args.scale,
                                  {workload.key: workload.allocated_bytes for workload in chosen})
    machine["load_average_1_5_15"] = {"at_start": load_at_start, "after_runs": load_at_end}
    document = build_document(args, date, machine, availability, servers, outcome, startup, goals,
                              time.monotonic() - started)
    markdown = build_markdown(document, outcome.tables, outcome.memory)
    say("\n" + markdown)
    if not args.no_write:
        md_path, json_path = report.write_results(args.results_dir, document, markdown)
        say(f"wrote {md_path} and {json_path}")
    return 0


def build_document(args, date, machine, availability, servers, outcome: Outcome, startup, goals, elapsed) -> dict:
    workloads = []
    for key, model in outcome.models.items():
        entry = {"key": key, "title": model.workload.title, "files": len(model.workload.files),
                 "bytes": model.workload.total_bytes, "zip_bytes": model.zip_bytes,
                 "wall_time": outcome.wall[key].to_json(), "results": {}}
        for (table_key, transport), results in outcome.tables.items():
            if table_key == key:
                fastest = report.fastest_of(results)
                entry["results"][transport] = [r.to_json(fastest) for r in results]
        if model.workload.memory_only:
            entry["results"] = {transport: [r.to_json(None)] for transport, r in outcome.memory.items()}
        workloads.append(entry)
    return {
        "date": date,
        "machine": machine,
        "settings": {"scale": args.scale, "runs": args.runs, "warmup": args.warmup, "zip_method": args.zip_method,
                     "zip_compresslevel": 1 if args.zip_method == "deflate" else None,
                     "page_cache": "warm (data just written, plus untimed warm-up rounds)",
                     "order": "round-robin per repetition, starting tool rotating"},
        "servers": servers,
        "tools": {key: {"available": ok, ("version" if ok else "reason"): text}
                  for key, (ok, text) in availability.items()},
        "workloads": workloads,
        "startup": startup,
        "goals": [goal.to_json() for goal in goals],
        "elapsed_s": round(elapsed, 1),
    }


def wall_time_lines(document: dict) -> list[str]:
    """Where the wall time went: writing each workload's data (the 20 GiB zip takes minutes) and its runs."""
    lines = ["## Where the wall time went", "",
             f"{document['elapsed_s']:.0f} s in all. Seconds spent writing each workload's data just before its "
             f"runs (random data; `sync` is the write-back waited for before the first run), and its tools' runs; "
             f"the rest is finding the tools, the servers and the start-up measurements.", "",
             "| workload | writing the data s | tool runs s |", "| --- | --- | --- |"]
    for workload in document["workloads"]:
        wall = workload["wall_time"]
        writing = ", ".join(f"{name} {seconds:.1f}" for name, seconds in wall["writing_data_s"].items()) or "—"
        runs = ", ".join(f"{transport} {seconds:.1f}" for transport, seconds in wall["runs_s"].items()) or "—"
        lines.append(f"| {workload['key']} | {writing} | {runs} |")
    lines.append("")
    return lines


def build_markdown(document: dict, tables: dict, memory: dict) -> str:
    settings = document["settings"]
    lines = [f"# model-fetcher benchmark — {document['date']}", "",
             f"Machine: {report.describe_machine(document['machine'])}.", "",
             f"Loopback, warm page cache, {settings['runs']} timed runs per tool after {settings['warmup']} "
             f"untimed warm-up round(s), tools alternating round-robin; each run into a fresh folder on the same "
             f"filesystem. Time: wall clock from start to exit. Peak RSS: the larger of the kernel's ru_maxrss "
             f"(largest single process) and the sampled sum over the tool's process tree. "
             f"Zips: {settings['zip_method']}{' level 1' if settings['zip_method'] == 'deflate' else ''} "
             f"of incompressible data. Scale {settings['scale']}. CPU s: user + system CPU seconds of the tool's "
             f"processes (median), less disturbed than wall time by other work on the machine.", ""]
    load = document["machine"].get("load_average_1_5_15", {})
    if load:
        lines += [f"Load average (1, 5, 15 min) at the start {load.get('at_start')}, after the timed runs "
                  f"{load.get('after_runs')}: on {document['machine']['nproc']} CPUs, anything above the "
                  f"benchmark's own load means other work competed for the CPUs.", ""]
    for key, server in document["servers"].items():
        lines.append(f"- {key} server: {server['kind']} ({server['version']}){' — ' + server['note'] if server.get('note') else ''}")
    lines.append("")
    titles = {w["key"]: w for w in document["workloads"]}
    for (key, transport), results in sorted(tables.items(), key=lambda item: (item[0][0], item[0][1] != "s3")):
        workload = titles[key]
        what = "S3 prefix" if transport == "s3" else "zip over HTTPS"
        lines.append(f"## {key} — {workload['title']}, {what} ({describe_size(workload['bytes'])}, "
                     f"{workload['files']} files)")
        lines.append("")
        lines.extend(report.table_lines(results))
        lines.append("")
        diagnostics = report.diagnostics_line(results)
        if diagnostics:
            lines += [diagnostics, ""]
    if memory:
        lines.append("## C — fetcher memory with a 2 GiB model (one run)")
        lines.append("")
        lines.append("| transport | seconds | peak RSS MiB |")
        lines.append("| --- | ---: | ---: |")
        for transport, result in sorted(memory.items()):
            if result.has_time:
                lines.append(f"| {transport} | {result.median:.3f} | {result.peak_rss_mib:.0f} |")
            else:
                reason = (result.error or "")[:200].replace("|", "/")
                lines.append(f"| {transport} | {reason if result.skipped else 'failed: ' + reason} | — |")
        lines.append("")
    lines += wall_time_lines(document)
    startup = document["startup"]
    if "error" in startup:
        lines += ["## Fetcher start-up", "", f"not measured: {startup['error']}", ""]
    else:
        lines += ["## Fetcher start-up", "", "| command | median s | min–max s | peak RSS MiB |",
                  "| --- | ---: | ---: | ---: |"]
        for name in ("python_floor", "version", "explain_https"):
            row = startup[name]
            if row["median_s"] is None:
                lines.append(f"| `{row['command']}` | failed: {row['error']} | | |")
            else:
                lines.append(f"| `{row['command']}` | {row['median_s']:.3f} | {row['min_s']:.3f}–{row['max_s']:.3f} "
                             f"| {row['peak_rss_mib']:.0f} |")
        if startup.get("imports"):
            heaviest = ", ".join(f"{r['module']} {r['cumulative_ms']:.0f} ms" for r in startup["imports"][:6])
            lines += ["", f"Heaviest imports of the explain (python -X importtime, cumulative): {heaviest}."]
        lines.append("")
    lines += ["## Goals", "", "| goal | status | measurement |", "| --- | --- | --- |"]
    for goal in document["goals"]:
        lines.append(f"| {goal['goal']} | {goal['status'].upper()} | {goal['detail'].replace('|', '/')} |")
    lines.append("")
    lines += ["## Tools", ""]
    for key, info in document["tools"].items():
        lines.append(f"- {key}: {info.get('version') or 'unavailable — ' + info.get('reason', '')}")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
