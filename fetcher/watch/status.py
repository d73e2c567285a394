"""The sidecar's status file: what ``model-fetcher status`` (the chart's startup probe) reads.

It is replaced atomically on every change, so a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATUS_NAME = "status.json"


@dataclass
class WatchStatus:
    phase: str = "starting"  # starting -> initial-sync -> watching (or failed, stopped)
    ready: bool = False  # the initial sync installed every model: Triton may start
    models: list[str] = field(default_factory=list)  # installed and, once Triton runs, loaded
    failures: dict[str, str] = field(default_factory=dict)  # model (or "values") -> why, from the last sync
    values_digest: str = ""
    last_sync: str = ""
    pid: int = field(default_factory=os.getpid)

    @property
    def healthy(self) -> bool:
        return self.ready and not self.failures

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "healthy": self.healthy}


def write_status(path: Path, status: WatchStatus) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(status.to_json(), indent=1, sort_keys=True), encoding="utf-8")
    os.replace(temporary, path)


def read_status(path: Path) -> dict[str, Any]:
    """The status as written; raises OSError or ValueError when missing or unreadable."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a status object")
    return data


def now_text() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
