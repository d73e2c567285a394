"""``model-fetcher watch`` and ``model-fetcher status``.

watch: the initial sync (every model installed; Triton is loaded from it when it is already up),
then "ready" in the status file, then a loop: poll the values files, and on a change (or when a
failed sync is due for a retry) sync again against the running Triton. SIGTERM or SIGINT stops it
between two syncs.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from fetcher.cli.status import ExitStatus
from fetcher.errors import FetcherError
from fetcher.lease.values import load_lease
from fetcher.logs import get_logger
from fetcher.plan import plan_lease
from fetcher.repository.install import Repository, default_staging_dir
from fetcher.sources.base import FetchOptions, ModelPlan
from fetcher.termination import write_termination_message
from fetcher.watch.reconcile import Reconciler, SyncResult
from fetcher.watch.status import STATUS_NAME, WatchStatus, now_text, read_status, write_status
from fetcher.watch.triton_client import TritonAuth, TritonClient
from fetcher.watch.values_watcher import ValuesWatcher

# Consecutive failed syncs are retried after retry_interval, then twice as long each time, up to this.
MAX_RETRY_SECONDS = 900.0


def status_path(args: argparse.Namespace) -> Path:
    if getattr(args, "status_file", None):
        return Path(args.status_file)
    if getattr(args, "dest", None) is None:
        raise FetcherError("give --status-file, or --dest (and --staging-dir if watch was given one)")
    return (args.staging_dir or default_staging_dir(args.dest)) / STATUS_NAME


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


def run_watch(args: argparse.Namespace, options: FetchOptions) -> int:
    log = get_logger()
    stop = _Stop()
    stop.install()
    status_file = status_path(args)
    status = WatchStatus(phase="initial-sync")
    write_status(status_file, status)  # a restarted sidecar must not look ready before its own sync

    watcher = ValuesWatcher(args.values)  # hashed before reading: a change during the sync is seen after it
    status.values_digest = watcher.digest
    repository = Repository(root=args.dest, staging=args.staging_dir or default_staging_dir(args.dest))

    def plans() -> list[ModelPlan]:
        return plan_lease(load_lease(args.values, args.model), options)

    try:
        auth = TritonAuth.read(args.triton_auth_header, args.triton_auth_file) if args.triton_auth_file else None
        triton = TritonClient(args.triton_url, connect_timeout=args.triton_connect_timeout,
                              load_timeout=args.triton_timeout, auth=auth)
        initial = plans()
        reconciler = Reconciler(repository, options, triton, concurrency=args.concurrency,
                                unload_timeout=args.triton_timeout)
    except FetcherError as exc:
        log.error("error=%s", exc)
        write_termination_message(args.termination_log, [str(exc)])
        status.phase, status.failures = "failed", {"values": str(exc)}
        write_status(status_file, status)
        return ExitStatus.BAD_INPUT

    # Normally Triton starts after this sidecar is ready and loads the repository itself
    # (--load-model=*). Already up means this sidecar restarted beside it: apply through Triton.
    triton_up = triton.live()
    result = reconciler.sync(initial, load=triton_up)
    _report(result, log)
    if result.failures and not triton_up:
        lines = [f"model {name!r}: {why}" for name, why in sorted(result.failures.items())]
        for line in lines:
            print(line, file=sys.stderr)
        write_termination_message(args.termination_log, lines)
        status.phase, status.failures = "failed", result.failures
        write_status(status_file, status)
        return ExitStatus.MODELS_FAILED
    status.ready, status.phase = True, "watching"
    _record(status, reconciler, result)
    write_status(status_file, status)
    log.info("event=ready models=%d status_file=%s", len(status.models), status_file)

    retry_at = time.monotonic() + args.retry_interval if result.failures else None
    failed_syncs = 1 if result.failures else 0
    while not stop.event.wait(args.poll_interval):
        changed = watcher.changed()
        due = retry_at is not None and time.monotonic() >= retry_at
        if not changed and not due:
            continue
        log.info("event=%s", "values-changed" if changed else "retry")
        status.values_digest = watcher.digest
        try:
            wanted = plans()
        except FetcherError as exc:
            # Broken values: keep serving what is there and wait for the next change.
            log.error("event=values-refused error=%s", exc)
            status.failures, status.last_sync, retry_at = {"values": str(exc)}, now_text(), None
            write_status(status_file, status)
            continue
        if not _wait_for_triton(triton, args.triton_timeout, stop.event):
            if stop.event.is_set():
                break
            result = SyncResult(failures={"triton": f"Triton at {triton.url} is not live; nothing was changed"})
            log.error("event=sync-postponed error=%s", result.failures["triton"])
        else:
            result = reconciler.sync(wanted, load=True)
            _report(result, log)
        _record(status, reconciler, result)
        write_status(status_file, status)
        if result.failures:
            failed_syncs += 1
            delay = min(args.retry_interval * 2 ** (failed_syncs - 1), max(args.retry_interval, MAX_RETRY_SECONDS))
            retry_at = time.monotonic() + delay
            log.warning("event=retry-scheduled seconds=%.0f failed=%s", delay, ",".join(sorted(result.failures)))
        else:
            failed_syncs, retry_at = 0, None
    status.phase = "stopped"
    write_status(status_file, status)
    log.info("event=stopped")
    return ExitStatus.SUCCESS


def _wait_for_triton(triton: TritonClient, timeout: float, stop: threading.Event) -> bool:
    deadline = time.monotonic() + timeout
    while not triton.live():
        if time.monotonic() >= deadline or stop.wait(1.0):
            return False
    return True


def _record(status: WatchStatus, reconciler: Reconciler, result: SyncResult) -> None:
    status.models = reconciler.installed()
    status.failures = dict(sorted(result.failures.items()))
    status.last_sync = now_text()


def _report(result: SyncResult, log) -> None:
    log.info("event=synced applied=%s removed=%s unchanged=%d failed=%s",
             ",".join(result.applied) or "-", ",".join(result.removed) or "-", len(result.unchanged),
             ",".join(sorted(result.failures)) or "-")


def run_status(args: argparse.Namespace, stdout: TextIO) -> int:
    """Exit 0 when the sidecar finished its initial sync (and, with --require-healthy, its last sync failed nothing)."""
    try:
        path = status_path(args)
        data = read_status(path)
    except FetcherError as exc:
        print(f"not ready: {exc}", file=stdout)
        return ExitStatus.USAGE
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        print(f"not ready: no readable status at {str(path)!r} ({reason})", file=stdout)
        return ExitStatus.MODELS_FAILED
    if args.json:
        print(json.dumps(data, indent=1, sort_keys=True), file=stdout)
    else:
        models = data.get("models") or []
        state = "ready" if data.get("ready") else "not ready"
        print(f"{state}: phase={data.get('phase')} models={len(models)} ({', '.join(models) or 'none'}) "
              f"last_sync={data.get('last_sync') or '-'}", file=stdout)
        for name, why in sorted((data.get("failures") or {}).items()):
            print(f"failed {name}: {why}", file=stdout)
    ready = bool(data.get("ready"))
    if args.require_healthy:
        ready = ready and not data.get("failures")
    return ExitStatus.SUCCESS if ready else ExitStatus.MODELS_FAILED
