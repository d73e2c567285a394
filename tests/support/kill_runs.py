"""Running ``model-fetcher fetch`` as a process and killing it with SIGKILL at random moments."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from devkit.https_server import ByteCounter

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class KillReport:
    kills: list[str] = field(default_factory=list)  # what each killed run was killed at
    finished_early: int = 0  # runs that ended by themselves before their kill
    final_status: int | None = None
    final_output: str = ""


def start_fetch(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "fetcher", *args], stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=REPO_ROOT)


def wait_for_bytes(counter: ByteCounter, mark: int, process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Until the server has sent ``mark`` bytes (True), the run ended, or ``timeout`` passed (False)."""
    for _ in range(int(timeout / 0.2) + 1):
        if counter.wait_for(mark, timeout=0.2):
            return True
        if process.poll() is not None:
            return False
    return False


def fetch_with_kills(args: list[str], counter: ByteCounter, *, size: int, kills: int, seed: int, log: Path,
                     run_timeout: float) -> KillReport:
    """Start the fetch ``kills`` times and SIGKILL each run at a random moment, then let one run finish.

    Most runs are killed once the server has sent a random number of further bytes (on average
    80 % of ``size`` spread over the runs, so every run makes progress whatever the machine's
    speed); every fourth is killed a random fraction of a second after it starts (during start-up,
    the listing or the first requests); the last killed run is killed right after the server sent
    as many bytes as the model has (while the zip is unpacked or the objects are checked, if the
    run has got that far).
    """
    rng = random.Random(seed)
    step = 0.8 * size / kills
    report = KillReport()
    for index in range(kills):
        process = start_fetch(args, log)
        try:
            if index == kills - 1:
                mark = max(size, counter.total + 1)
                wait_for_bytes(counter, mark, process, run_timeout)
                moment = "after the model's size was sent"
            elif index % 4 == 3:
                delay = rng.uniform(0.0, 1.0)
                try:
                    process.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    pass
                moment = f"{delay:.2f}s after start"
            else:
                mark = counter.total + int(rng.uniform(0.3, 1.7) * step)
                assert wait_for_bytes(counter, mark, process, run_timeout) or process.poll() is not None, \
                    f"run {index} made no progress within {run_timeout}s"
                moment = f"{mark} bytes sent in all"
            if process.poll() is not None:
                report.finished_early += 1
            report.kills.append(moment)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
    final = start_fetch(args, log)
    try:
        report.final_status = final.wait(timeout=run_timeout)
    finally:
        if final.poll() is None:
            final.send_signal(signal.SIGKILL)
            final.wait(timeout=30)
    report.final_output = log.read_text(errors="replace")[-4000:]
    return report
