"""Stopping the servers the demo and the tests start."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen, *, grace: float = 20.0) -> None:
    """Ask the process to stop, and kill it if it has not within ``grace`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
