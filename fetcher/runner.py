"""Fetching a lease's models concurrently and installing each one atomically."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fetcher.errors import FetcherError
from fetcher.logs import get_logger, human_rate
from fetcher.plan import source_for
from fetcher.repository.install import Repository
from fetcher.repository.manifest import MANIFEST_NAME, Manifest, plan_fingerprint
from fetcher.sources.base import FetchOptions, ModelPlan


@dataclass(frozen=True)
class ModelResult:
    name: str
    ok: bool
    bytes_transferred: int = 0
    seconds: float = 0.0
    error: str | None = None


def fetch_one(plan: ModelPlan, repository: Repository, options: FetchOptions, manifest: Manifest) -> ModelResult:
    log = get_logger()
    name = plan.spec.name
    start = time.monotonic()
    fingerprint = plan_fingerprint(plan, options.volume_mode)
    if manifest.is_current(name, fingerprint, repository.root / name):
        log.info("model=%s event=unchanged detail=already installed and verified, not fetched again", name)
        return ModelResult(name=name, ok=True)
    log.info("model=%s event=start source=%s location=%s secret=%s", name, plan.source, plan.location, plan.secret or "none")
    workdir = None
    try:
        workdir = repository.workdir(name)
        fetched = source_for(plan, options).fetch(plan, workdir)
        manifest.forget(name)
        renamed = repository.install(name, fetched, workdir)
        manifest.record(name, fingerprint, repository.root / name)
        if renamed is not None:
            log.info("model=%s event=renamed config_name=%s", name, renamed)
    except FetcherError as exc:
        seconds = time.monotonic() - start
        log.error("model=%s event=failed seconds=%.2f error=%s", name, seconds, exc)
        return ModelResult(name=name, ok=False, seconds=seconds, error=str(exc))
    except Exception as exc:  # an unexpected fault in one model must not take the others down
        seconds = time.monotonic() - start
        log.error("model=%s event=failed seconds=%.2f error=internal %s", name, seconds, type(exc).__name__)
        return ModelResult(name=name, ok=False, seconds=seconds, error=f"internal error ({type(exc).__name__})")
    finally:
        if workdir is not None:
            repository.discard(workdir)
    seconds = time.monotonic() - start
    log.info(
        "model=%s event=installed %s bytes=%d seconds=%.2f rate=%s",
        name,
        "linked" if fetched.link else "path=" + str(repository.root / name),
        fetched.bytes_transferred,
        seconds,
        human_rate(fetched.bytes_transferred, seconds),
    )
    return ModelResult(name=name, ok=True, bytes_transferred=fetched.bytes_transferred, seconds=seconds)


def fetch_all(plans: list[ModelPlan], repository: Repository, options: FetchOptions, concurrency: int) -> list[ModelResult]:
    repository.prepare()
    if not plans:
        return []
    manifest = Manifest(repository.staging / MANIFEST_NAME)
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(plans))), thread_name_prefix="model") as pool:
        return list(pool.map(lambda plan: fetch_one(plan, repository, options, manifest), plans))
