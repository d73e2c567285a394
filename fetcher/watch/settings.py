"""How the sidecar runs: the settings ``watch`` takes, built by the command line like FetchOptions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fetcher.repository.install import Repository


@dataclass(frozen=True)
class WatchSettings:
    """How the sidecar runs, from the command line (which takes its defaults from here)."""

    values: tuple[Path, ...]
    models: tuple[str, ...]
    repository: Repository
    status_file: Path
    termination_log: Path | None
    concurrency: int  # models fetched at once
    triton_url: str = "http://localhost:8000"
    poll_interval: float = 5.0
    retry_interval: float = 60.0
    triton_connect_timeout: float = 5.0
    triton_timeout: float = 600.0  # one load or unload; also the wait for Triton to be live
    # The header Triton's --http-restricted-api demands on its repository API, and the file of its value.
    triton_auth_header: str = "model-control-key"
    triton_auth_file: Path | None = None
    log_format: str = "text"  # "json": failures are told by the event=failed lines only, stderr stays JSON
