"""The fetcher's Prometheus metrics, in a registry of their own (one per run, passed in, never global).

Served at ``/metrics`` by ``watch --metrics-port``; written by ``fetch`` as a text file in the
node exporter's textfile format, whose totals also end the last log line. Names follow
Prometheus' conventions: a ``model_fetcher_`` prefix, base units (bytes, seconds), ``_total``
for counters.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, write_to_textfile
from prometheus_client.exposition import start_http_server

from fetcher.errors import FetcherError

PREFIX = "model_fetcher"
TEXTFILE_NAME = "metrics.prom"
# Seconds: from a small model on a fast link to a large model on a slow one.
DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, float("inf"))


class FetchMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.downloaded_bytes = Counter(f"{PREFIX}_downloaded_bytes", "Bytes downloaded (or copied from a volume), "
                                        "by source and model", ["source", "model"], registry=r)
        self.reused_bytes = Counter(f"{PREFIX}_reused_bytes", "Bytes not downloaded again: resume (a broken "
                                    "transfer continued), restart (a model installed by an earlier run, kept), "
                                    "cache", ["kind"], registry=r)
        self.fetch_duration = Histogram(f"{PREFIX}_fetch_duration_seconds", "Time to fetch and install one model, "
                                        "by source and outcome", ["source", "outcome"], buckets=DURATION_BUCKETS,
                                        registry=r)
        self.failures = Counter(f"{PREFIX}_failures", "Models that failed to install, by source and reason",
                                ["source", "reason"], registry=r)
        self.installed = Counter(f"{PREFIX}_models_installed", "Models fetched and installed, by source",
                                 ["source"], registry=r)
        self.removed = Counter(f"{PREFIX}_models_removed", "Models removed because the lease no longer names "
                               "them", registry=r)
        self.cache_events = Counter(f"{PREFIX}_cache_events", "Events of the node's model cache: hit, miss, wait, "
                                    "stored, evict, corrupt, full, bypass, skip", ["event"], registry=r)
        self.cache_evicted_bytes = Counter(f"{PREFIX}_cache_evicted_bytes", "Bytes of cache entries evicted to "
                                           "stay under the cache's size limit", registry=r)
        self.models = Gauge(f"{PREFIX}_models", "Models in the repository root", registry=r)
        self.last_success = Gauge(f"{PREFIX}_last_successful_sync_timestamp_seconds", "When the repository was "
                                  "last seen holding the whole lease: a sync that applied everything, or a poll "
                                  "of the sidecar with nothing failing (Unix time)", registry=r)
        self.syncs = Counter(f"{PREFIX}_syncs", "Syncs of the lease (the fetch, or each of the sidecar's)",
                             registry=r)
        self.reconcile_failures = Counter(f"{PREFIX}_reconcile_failures", "Syncs (the fetch, or each of the "
                                          "sidecar's) that left a change unapplied, by reason (models, values, "
                                          "triton)", ["reason"], registry=r)

    # -- what the observer, the runner and the sidecar report ----------------------------------

    def downloaded_counter(self, source: str, model: str) -> Callable[[int], None]:
        """What counts a model's downloaded bytes: called with each chunk's size."""
        return self.downloaded_bytes.labels(source, model).inc

    def reused(self, kind: str, count: int) -> None:
        self.reused_bytes.labels(kind).inc(count)

    def cache_event(self, event: str, evicted_bytes: int = 0) -> None:
        self.cache_events.labels(event).inc()
        if evicted_bytes:
            self.cache_evicted_bytes.inc(evicted_bytes)

    def fetched(self, source: str, seconds: float, reason: str | None) -> None:
        self.fetch_duration.labels(source, "failed" if reason else "installed").observe(seconds)
        if reason:
            self.failures.labels(source, reason).inc()
        else:
            self.installed.labels(source).inc()

    def model_removed(self) -> None:
        self.removed.inc()

    def synced(self, models: int, failure_reason: str | None = None) -> None:
        """A sync ended with ``models`` in the root; one that left something unapplied names why."""
        self.syncs.inc()
        self.models.set(models)
        if failure_reason is None:
            self.in_sync()
        else:
            self.reconcile_failures.labels(failure_reason).inc()

    def in_sync(self) -> None:
        self.last_success.set_to_current_time()

    # -- reading them out -----------------------------------------------------------------------

    def totals(self) -> dict[str, int]:
        """The run's figures for the last log line (beside its counts of models installed and failed)."""
        return {
            "downloaded_bytes": int(_total(self.downloaded_bytes)),
            "reused_bytes": int(_total(self.reused_bytes)),
        }

    def write_textfile(self, path: Path) -> None:
        """Write the metrics for the node exporter's textfile collector (atomically: temp file, rename)."""
        write_to_textfile(str(path), self.registry)

    def serve(self, address: str, port: int) -> "MetricsServer":
        try:
            server, thread = start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            raise FetcherError(f"cannot serve metrics on {address}:{port}: {exc.strerror or exc}",
                               hint="choose another --metrics-port, or 0 for none") from None
        return MetricsServer(server, thread)


@dataclass
class MetricsServer:
    server: object
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])  # type: ignore[attr-defined]

    def close(self) -> None:
        self.server.shutdown()  # type: ignore[attr-defined]
        self.server.server_close()  # type: ignore[attr-defined]
        self.thread.join(timeout=5.0)


def _total(metric: Counter) -> float:
    return sum(sample.value for family in metric.collect() for sample in family.samples
               if sample.name.endswith("_total"))
