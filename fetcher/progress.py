"""What a fetch reports while it runs: bytes per model, progress lines, and the metrics they feed.

The transfers (HTTP streams, the part scheduler, volume copies) report bytes to the
``ModelProgress`` of their model; the runner reports each model's start and end to the
``FetchObserver``, which the command line creates with the run's metrics (if any) and which a
reporter thread reads to log one ``event=progress`` line per model in flight at each interval.
Nothing here is global: the observer travels in ``FetchOptions``.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

from fetcher.errors import (ArchiveError, DownloadError, FetcherError, InstallError, ModelLayoutError,
                            ModelSpecError, ResolutionError, SecretError)
from fetcher.logs import get_logger

if TYPE_CHECKING:
    from fetcher.metrics import FetchMetrics

MiB = 1024 * 1024
PROGRESS_INTERVAL = 10.0  # seconds between progress lines, unless --progress-interval says otherwise

# Failure reasons (a metric label and the order of the termination message): the first are the
# ones a user can fix from the message alone.
REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (SecretError, "secret"),
    (ResolutionError, "resolution"),
    (ModelSpecError, "spec"),
    (ModelLayoutError, "layout"),
    (ArchiveError, "archive"),
    (DownloadError, "download"),
    (InstallError, "install"),
)
REASON_ORDER = tuple(reason for _, reason in REASONS) + ("triton", "error", "internal")


def failure_reason(exc: BaseException) -> str:
    """A short, bounded label for why a model failed (an error class may name its own: ``failure_reason``)."""
    own = getattr(exc, "failure_reason", None)
    if isinstance(own, str):
        return own
    for kind, reason in REASONS:
        if isinstance(exc, kind):
            return reason
    return "error" if isinstance(exc, FetcherError) else "internal"


@dataclass(frozen=True)
class ProgressSnapshot:
    name: str
    source: str
    phase: str
    done: int
    total: int | None
    elapsed: float


class ModelProgress:
    """One model's bytes, reported by its transfers from any thread."""

    def __init__(self, name: str, source: str, metrics: "FetchMetrics | None", clock: Callable[[], float]) -> None:
        self.name = name
        self.source = source
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._done = 0
        self._total: int | None = None
        self._phase = "download"
        # The model's bytes counter, looked up once: add() runs for every chunk read.
        self._count_bytes = metrics.downloaded_counter(source, name) if metrics is not None else None

    def expect(self, total: int | None) -> None:
        """The model's size in bytes, once a listing or a response tells it."""
        with self._lock:
            self._total = total

    def add(self, count: int) -> None:
        """``count`` bytes received (and written)."""
        with self._lock:
            self._done += count
        if self._count_bytes is not None:
            self._count_bytes(count)

    def discard(self, count: int) -> None:
        """``count`` bytes received earlier were thrown away (the transfer starts again from zero)."""
        with self._lock:
            self._done = max(0, self._done - count)

    def reused(self, kind: str, count: int) -> None:
        """``count`` bytes not downloaded again: ``resume`` (a broken transfer continued), ``restart``
        (a model already installed by an earlier run) or ``cache``."""
        if count > 0 and self._metrics is not None:
            self._metrics.reused(kind, count)

    def phase(self, name: str) -> None:
        """What the model is busy with: ``download``, then ``unpack`` for a zip."""
        with self._lock:
            self._phase = name

    def snapshot(self) -> ProgressSnapshot:
        with self._lock:
            return ProgressSnapshot(self.name, self.source, self._phase, self._done, self._total,
                                    self._clock() - self._started)


@dataclass
class _Window:
    """Where a model was at the previous progress line: its rate is measured since then."""

    at: float
    done: int


class FetchObserver:
    """The run's models in flight, their progress lines, and the metrics (when the run has some)."""

    def __init__(self, metrics: "FetchMetrics | None" = None, *, interval: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = metrics
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._models: dict[str, ModelProgress] = {}
        self._windows: dict[str, _Window] = {}

    # -- what the runner and the sources call -------------------------------------------------

    def start(self, name: str, source: str) -> ModelProgress:
        progress = ModelProgress(name, source, self.metrics, self._clock)
        with self._lock:
            self._models[name] = progress
            self._windows[name] = _Window(self._clock(), 0)
        return progress

    def model(self, name: str, source: str = "") -> ModelProgress:
        """The progress of a model in flight (a detached one when the runner did not start it)."""
        with self._lock:
            progress = self._models.get(name)
        return progress if progress is not None else ModelProgress(name, source, self.metrics, self._clock)

    def finish(self, name: str, source: str, *, seconds: float, error: BaseException | None = None) -> str | None:
        """The model is done (installed, or failed with ``error``); returns the failure reason, if any."""
        with self._lock:
            self._models.pop(name, None)
            self._windows.pop(name, None)
        reason = None if error is None else failure_reason(error)
        if self.metrics is not None:
            self.metrics.fetched(source, seconds, reason)
        return reason

    def kept(self, name: str, reused_bytes: int) -> None:
        """A model an earlier run installed is intact and kept as it is."""
        self.model(name).reused("restart", reused_bytes)

    # -- progress lines ---------------------------------------------------------------------------

    @contextmanager
    def reporting(self) -> Iterator[None]:
        """Log progress lines every ``interval`` seconds while the block runs (none with 0)."""
        if self.interval <= 0:
            yield
            return
        stop = threading.Event()
        thread = threading.Thread(target=self._report_until, args=(stop,), name="progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5.0)

    def _report_until(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            self.report()

    def report(self) -> None:
        """One ``event=progress`` line per model in flight: bytes done and total, rate, ETA."""
        log = get_logger()
        now = self._clock()
        with self._lock:
            models = list(self._models.values())
        for progress in models:
            snap = progress.snapshot()
            with self._lock:
                window = self._windows.get(snap.name)
                if window is None:  # finished meanwhile
                    continue
                seconds = max(now - window.at, 1e-9)
                rate = max(snap.done - window.done, 0) / seconds
                window.at, window.done = now, snap.done
            log.info("model=%s event=progress source=%s phase=%s %s", snap.name, snap.source, snap.phase,
                     progress_fields(snap.done, snap.total, rate, snap.elapsed))


def progress_fields(done: int, total: int | None, rate: float, elapsed: float) -> str:
    """``bytes total percent rate bytes_per_second eta_seconds elapsed_seconds`` of a progress line."""
    percent = "-" if not total else f"{100.0 * done / total:.1f}"
    if total is None or rate <= 0:
        eta = "-"
    else:
        eta = str(round(max(total - done, 0) / rate))
    return (f"bytes={done} total={'-' if total is None else total} percent={percent} "
            f"rate={rate / MiB:.2f}MiB/s bytes_per_second={round(rate)} eta_seconds={eta} "
            f"elapsed_seconds={elapsed:.1f}")
