"""Clients the models of one run share, made once each: an S3 client with its connection pools
costs tens of milliseconds of CPU to make, which a lease of many models would pay per model."""

from __future__ import annotations

import threading
from typing import Any, Callable, Hashable


class SharedClients:
    """One client per key (a source's connection settings), made on first use; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[Hashable, Any] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._clients)

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._clients:
                self._clients[key] = make()
            return self._clients[key]
