"""``model-fetcher watch`` (the sidecar) and ``model-fetcher status`` (its startup probe).

watch: the initial sync (every model installed; Triton is loaded from it when it is already up),
then "ready" in the status file, then a loop of ``sync_once``: poll the values files, and on a
change (or when a failed sync is due for a retry, or when the change check finds a model's content
changed at its source) sync again against the running Triton. SIGTERM or
SIGINT stops it between two syncs.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from fetcher.errors import FetcherError
from fetcher.exit_codes import ExitCode
from fetcher.lease.values import load_lease
from fetcher.logs import get_logger
from fetcher.plan import plan_lease
from fetcher.sources.base import FetchOptions, ModelPlan
from fetcher.termination import write_termination_message
from fetcher.watch.reconcile import Reconciler, SyncResult
from fetcher.watch.status import WatchStatus, now_text, read_status, write_status
from fetcher.watch.settings import WatchSettings
from fetcher.watch.triton_client import TritonAuth, TritonClient
from fetcher.watch.values_watcher import ValuesWatcher

# Consecutive failed syncs are retried after retry_interval, then twice as long each time, up to this.
MAX_RETRY_SECONDS = 900.0


class _Stop:
    """Set by SIGTERM/SIGINT; waits that end early when it is set."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: self._on_signal(signum))

    def _on_signal(self, signum: int) -> None:
        get_logger().info("event=stopping signal=%s", signal.Signals(signum).name)
        self.event.set()


@dataclass
class _Backoff:
    """When a failed sync is tried again: after ``first`` seconds, doubling while it keeps failing."""

    first: float
    failed_syncs: int = 0
    due_at: float | None = None

    def failed(self) -> float:
        self.failed_syncs += 1
        delay = min(self.first * 2 ** (self.failed_syncs - 1), max(self.first, MAX_RETRY_SECONDS))
        self.due_at = time.monotonic() + delay
        return delay

    def succeeded(self) -> None:
        self.failed_syncs, self.due_at = 0, None

    def is_due(self) -> bool:
        return self.due_at is not None and time.monotonic() >= self.due_at


class _Sidecar:
    def __init__(self, settings: WatchSettings, options: FetchOptions, stop: threading.Event) -> None:
        self.settings = settings
        self.options = options
        self.stop = stop
        self.log = get_logger()
        self.status = WatchStatus(phase="initial-sync")
        self.watcher = ValuesWatcher(settings.values)  # hashed before reading: a change during the sync is seen after it
        self.status.values_digest = self.watcher.digest
        self.triton = TritonClient(settings.triton_url, connect_timeout=settings.triton_connect_timeout,
                                   load_timeout=settings.triton_timeout)
        self.backoff = _Backoff(settings.retry_interval)
        self.reconciler: Reconciler | None = None

    def plans(self) -> list[ModelPlan]:
        return plan_lease(load_lease(self.settings.values, self.settings.models), self.options)

    def write(self) -> None:
        write_status(self.settings.status_file, self.status)

    def initial_sync(self) -> ExitCode | None:
        """Install the lease; an exit code when the sidecar must stop, None once it is ready."""
        self.write()  # a restarted sidecar must not look ready before its own sync
        try:
            if self.settings.triton_auth_file is not None:
                self.triton.auth = TritonAuth.read(self.settings.triton_auth_header, self.settings.triton_auth_file)
            initial = self.plans()
            self.reconciler = Reconciler(self.settings.repository, self.options, self.triton,
                                         concurrency=self.settings.concurrency,
                                         unload_timeout=self.settings.triton_timeout)
        except FetcherError as exc:
            self.log.error("error=%s", exc)
            return self._failed({"values": str(exc)}, [str(exc)], ExitCode.BAD_INPUT)
        # Normally Triton starts after this sidecar is ready and loads the repository itself
        # (--load-model=*). Already up means this sidecar restarted beside it: apply through Triton.
        triton_up = self.triton.live()
        result = self.reconciler.sync(initial, load=triton_up)
        _report(result)
        for name in result.unchanged:  # installed before this sidecar (re)started, and kept
            self.options.observer.kept(name, self.reconciler.installed_bytes(name))
        self._measure(result)
        if result.failures and not triton_up:
            lines = [f"model {name!r}: {why}" for name, why in sorted(result.failures.items())]
            if self.settings.log_format == "text":  # in JSON, the event=failed lines say it
                for line in lines:
                    print(line, file=sys.stderr)
            return self._failed(result.failures, lines, ExitCode.MODELS_FAILED)
        self.status.ready, self.status.phase = True, "watching"
        self._record(result)
        self.log.info("event=ready models=%d status_file=%s", len(self.status.models), self.settings.status_file)
        return None

    def _failed(self, failures: dict[str, str], lines: list[str], code: ExitCode) -> ExitCode:
        write_termination_message(self.settings.termination_log, lines)
        self.status.phase, self.status.failures = "failed", failures
        self.write()
        return code

    def sync_once(self) -> bool:
        """One poll: sync again if the values changed or a retry is due; False when stopped meanwhile."""
        changed = self.watcher.changed()
        if not changed and not self.backoff.is_due():
            # A failed sync waits for its retry: a changed model Triton refused is not fetched at every poll.
            if not self.options.change_check or self.backoff.due_at is not None or not self._source_changed():
                if not self.status.failures and self.options.observer.metrics is not None:
                    self.options.observer.metrics.in_sync()  # the repository still holds the whole lease
                return True
            event = "source-changed"
        else:
            event = "values-changed" if changed else "retry"
        self.log.info("event=%s", event)
        self.status.values_digest = self.watcher.digest
        try:
            wanted = self.plans()
        except FetcherError as exc:
            # Broken values: keep serving what is there and wait for the next change.
            self.log.error("event=values-refused error=%s", exc)
            self.status.failures, self.status.last_sync, self.backoff.due_at = {"values": str(exc)}, now_text(), None
            self._measure(SyncResult(failures={"values": str(exc)}))
            self.write()
            return True
        assert self.reconciler is not None  # initial_sync made it
        if self._wait_for_triton():
            result = self.reconciler.sync(wanted, load=True)
            _report(result)
        elif self.stop.is_set():
            return False
        else:
            result = SyncResult(failures={"triton": f"Triton at {self.triton.url} is not live; nothing was changed"})
            self.log.error("event=sync-postponed error=%s", result.failures["triton"])
        self._measure(result)
        self._record(result)
        if result.failures:
            delay = self.backoff.failed()
            self.log.warning("event=retry-scheduled seconds=%.0f failed=%s", delay, ",".join(sorted(result.failures)))
        else:
            self.backoff.succeeded()
        return True

    def _source_changed(self) -> bool:
        """The change check of one poll: has an installed model's content changed at its source?"""
        assert self.reconciler is not None
        try:
            return bool(self.reconciler.changed_at_source(self.plans()))
        except FetcherError:
            return False  # broken values are reported when the values change

    def _wait_for_triton(self) -> bool:
        deadline = time.monotonic() + self.settings.triton_timeout
        while not self.triton.live():
            if time.monotonic() >= deadline or self.stop.wait(1.0):
                return False
        return True

    def _measure(self, result: SyncResult) -> None:
        metrics = self.options.observer.metrics
        if metrics is None or self.reconciler is None:
            return
        reason = None
        if result.failures:
            reason = next((key for key in ("values", "triton") if key in result.failures), "models")
        metrics.synced(len(self.reconciler.installed()), reason)

    def _record(self, result: SyncResult) -> None:
        assert self.reconciler is not None
        self.status.models = self.reconciler.installed()
        self.status.failures = dict(sorted(result.failures.items()))
        self.status.last_sync = now_text()
        self.write()


def run_watch(settings: WatchSettings, options: FetchOptions) -> int:
    stop = _Stop()
    stop.install()
    sidecar = _Sidecar(settings, options, stop.event)
    code = sidecar.initial_sync()
    if code is not None:
        return code
    if sidecar.status.failures:
        sidecar.backoff.failed()
    while not stop.event.wait(settings.poll_interval):
        if not sidecar.sync_once():
            break
    sidecar.status.phase = "stopped"
    sidecar.write()
    get_logger().info("event=stopped")
    return ExitCode.SUCCESS


def _report(result: SyncResult) -> None:
    get_logger().info("event=synced applied=%s removed=%s unchanged=%d failed=%s",
                      ",".join(result.applied) or "-", ",".join(result.removed) or "-", len(result.unchanged),
                      ",".join(sorted(result.failures)) or "-")


def run_status(status_file: Path, stdout: TextIO, *, as_json: bool, require_healthy: bool) -> int:
    """Exit 0 when the sidecar finished its initial sync (and, with require_healthy, its last sync failed nothing)."""
    try:
        data = read_status(status_file)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        problem = f"no readable status at {str(status_file)!r} ({reason})"
        if as_json:
            print(json.dumps({"ready": False, "healthy": False, "error": problem}, indent=1, sort_keys=True), file=stdout)
        else:
            print(f"not ready: {problem}", file=stdout)
        return ExitCode.MODELS_FAILED
    if as_json:
        print(json.dumps(data, indent=1, sort_keys=True), file=stdout)
    else:
        models = data.get("models") or []
        state = "ready" if data.get("ready") else "not ready"
        print(f"{state}: phase={data.get('phase')} models={len(models)} ({', '.join(models) or 'none'}) "
              f"last_sync={data.get('last_sync') or '-'}", file=stdout)
        for name, why in sorted((data.get("failures") or {}).items()):
            print(f"failed {name}: {why}", file=stdout)
    ready = bool(data.get("ready"))
    if require_healthy:
        ready = ready and not data.get("failures")
    return ExitCode.SUCCESS if ready else ExitCode.MODELS_FAILED
