"""Run a tool's command(s) and measure wall time and peak memory.

Wall time: ``time.perf_counter()`` from just before the first process is started until the last one
has been reaped (``os.wait4`` blocks, so the end is exact, not a polling step).

CPU time: user + system seconds of the started processes and their reaped descendants (from the
same ``os.wait4``), with its system part and the minor page faults (``ru_minflt``). It is less disturbed than wall time by other work on the machine.

Peak memory, two numbers, the report uses the larger:
- ``ru_maxrss`` from ``os.wait4`` of each started process: the kernel's own high-water mark of the
  largest single process in that tree (the process, or the largest of its reaped descendants). For a
  single-process tool (the fetcher, s5cmd, curl, unzip, aws) this is its exact peak RSS.
- the sum of RSS over the process tree (the process and all its descendants), sampled every
  ``interval`` seconds with psutil when psutil is installed. This catches tools that run worker
  processes at once (kserve-storage's multiprocessing pool). It over-counts pages that forked
  workers share with their parent, and can miss a peak shorter than the interval.

Peak disk: the blocks allocated under the run's folder (output and scratch: a downloaded archive
counts), summed over its files every ``disk_interval`` seconds and after each step. A peak shorter
than the interval can be missed; a zip kept beside its extracted files is always seen at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

try:  # optional: only the bench extra installs it
    import psutil
except ImportError:  # pragma: no cover - depends on the environment
    psutil = None


@dataclass(frozen=True)
class Step:
    argv: list[str]
    env: dict[str, str] | None = None
    cwd: Path | None = None


@dataclass
class Measurement:
    ok: bool
    seconds: float
    max_rss_bytes: int  # largest single process (kernel ru_maxrss)
    tree_rss_bytes: int  # largest sampled sum over the process tree (0 without psutil)
    error: str | None = None
    step_seconds: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0  # user + system CPU of the tool's processes (ru_utime + ru_stime from wait4)
    system_seconds: float = 0.0  # the system part of it (page faults, copies, syscalls)
    minor_faults: int = 0  # ru_minflt: pages faulted in (a fresh buffer per read shows up here)
    peak_disk_bytes: int = 0  # most bytes allocated under the run's folder (sampled)

    @property
    def peak_rss_bytes(self) -> int:
        return max(self.max_rss_bytes, self.tree_rss_bytes)


class _TreeSampler(threading.Thread):
    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        if psutil is None:
            return
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self.stop.is_set():
            total = 0
            try:
                processes = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            for process in processes:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self.stop.wait(self.interval)


def disk_usage(root: Path) -> int:
    """Bytes allocated to the files under ``root`` (st_blocks, so sparse files count what they hold)."""
    total = 0
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                else:
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                pass
    return total


class _DiskSampler(threading.Thread):
    def __init__(self, root: Path, interval: float) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, disk_usage(self.root))
            self.stop.wait(self.interval)


def _tail(path: Path, limit: int = 400) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    # The last line says why a tool failed (a traceback's exception, the fetcher's per-model line).
    return lines[-1].strip()[:limit]


def _with_usage(measurement: Measurement, usages: list) -> Measurement:
    measurement.system_seconds = sum(u.ru_stime for u in usages)
    measurement.minor_faults = sum(u.ru_minflt for u in usages)
    return measurement


def run_steps(steps: list[Step], log_dir: Path, timeout: float, interval: float = 0.1,
              disk_root: Path | None = None, disk_interval: float = 0.25) -> Measurement:
    """Run the steps one after the other; stop at the first failure; kill a step that overruns."""
    log_dir.mkdir(parents=True, exist_ok=True)
    disk = _DiskSampler(disk_root, disk_interval) if disk_root is not None else None
    if disk is not None:
        disk.start()
    try:
        measurement = _run_steps(steps, log_dir, timeout, interval, disk)
    finally:
        if disk is not None:
            disk.stop.set()
            disk.join(timeout=30)
    if disk is not None:
        measurement.peak_disk_bytes = disk.peak
    return measurement


def _run_steps(steps: list[Step], log_dir: Path, timeout: float, interval: float,
               disk: _DiskSampler | None) -> Measurement:
    max_rss = 0
    tree_rss = 0
    step_seconds: list[float] = []
    cpu = 0.0
    usages: list = []
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    for index, step in enumerate(steps):
        log = log_dir / f"step{index}.log"
        step_started = time.perf_counter()
        with open(log, "wb") as log_file:
            try:
                process = subprocess.Popen(step.argv, env=step.env, cwd=step.cwd, stdin=subprocess.DEVNULL,
                                           stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as exc:
                return Measurement(False, time.perf_counter() - started, max_rss, tree_rss,
                                   error=f"cannot start {step.argv[0]}: {exc}", step_seconds=step_seconds)
        sampler = _TreeSampler(process.pid, interval)
        sampler.start()
        timed_out = threading.Event()

        def kill(pid: int = process.pid) -> None:
            timed_out.set()
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            watchdog.cancel()
            sampler.stop.set()
        ended = time.perf_counter()
        process.returncode = os.waitstatus_to_exitcode(status)
        sampler.join(timeout=5)
        # Descendants left behind (none expected) are killed so nothing outlives the run.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        step_seconds.append(ended - step_started)
        if disk is not None:
            disk.peak = max(disk.peak, disk_usage(disk.root))
        max_rss = max(max_rss, usage.ru_maxrss * 1024)  # Linux reports KiB
        cpu += usage.ru_utime + usage.ru_stime
        usages.append(usage)
        tree_rss = max(tree_rss, sampler.peak)
        if timed_out.is_set():
            return _with_usage(Measurement(False, ended - started, max_rss, tree_rss,
                               error=f"timed out after {timeout:.0f} s", step_seconds=step_seconds, cpu_seconds=cpu), usages)
        if process.returncode != 0:
            name = Path(step.argv[0]).name
            return _with_usage(Measurement(False, ended - started, max_rss, tree_rss,
                               error=f"{name} exited {process.returncode}: {_tail(log) or '(no output)'}",
                               step_seconds=step_seconds, cpu_seconds=cpu), usages)
    return _with_usage(Measurement(True, time.perf_counter() - started, max_rss, tree_rss, step_seconds=step_seconds,
                                   cpu_seconds=cpu), usages)
