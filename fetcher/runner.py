"""Fetching a lease's models concurrently and installing each one atomically."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from fetcher.errors import DownloadError, FetcherError, IntegrityError, TooLargeError, WriteError
from fetcher.logs import get_logger, human_rate
from fetcher.plan import source_for
from fetcher.repository.digests import check_file_digests
from fetcher.repository.install import Repository, resume_name
from fetcher.repository.manifest import MANIFEST_NAME, Manifest, plan_fingerprint
from fetcher.sources.base import FetchedModel, FetchOptions, ModelPlan


@dataclass(frozen=True)
class ModelResult:
    name: str
    ok: bool
    bytes_transferred: int = 0
    seconds: float = 0.0
    error: str | None = None
    reason: str | None = None  # a short label of the failure (fetcher.progress.failure_reason)


def fetch_one(plan: ModelPlan, repository: Repository, options: FetchOptions, manifest: Manifest) -> ModelResult:
    """Fetch and install one model, unless the manifest shows it installed and intact already and
    its source still says the same about it."""
    name = plan.spec.name
    if is_installed(plan, repository, options, manifest) and not changed_at_source(plan, options, manifest):
        get_logger().info("model=%s event=unchanged detail=already installed and verified, not fetched again", name)
        options.observer.kept(name, manifest.installed_bytes(name))
        return ModelResult(name=name, ok=True)
    return install_model(plan, repository, options, manifest)


def fetch_model(plan: ModelPlan, options: FetchOptions, workdir: Path) -> FetchedModel:
    """The model from its source, or through the node's cache when one is set (HTTP(S) and S3 models:
    volume models are on a claim of the cluster already)."""
    source = source_for(plan, options)
    if options.cache is None or plan.source == "volume":
        return source.fetch(plan, workdir)
    return options.cache.provide(plan, options, workdir, lambda folder: source.fetch(plan, folder))


def is_installed(plan: ModelPlan, repository: Repository, options: FetchOptions, manifest: Manifest) -> bool:
    name = plan.spec.name
    return manifest.is_current(name, plan_fingerprint(plan, options.volume_mode), repository.root / name)


def changed_at_source(plan: ModelPlan, options: FetchOptions, manifest: Manifest) -> bool:
    """The change check: do the source's validators (ETag, Last-Modified, S3 ETags and sizes) differ
    from those recorded at install? Off with --no-change-check; a check that fails keeps the model."""
    name = plan.spec.name
    recorded = manifest.validators(name)
    if not options.change_check or recorded is None:
        return False
    log = get_logger()
    try:
        current = source_for(plan, options).validators(plan)
    except FetcherError as exc:
        log.warning("model=%s event=change-check-failed detail=the installed model is kept error=%s", name, exc)
        return False
    if current is None or current == recorded:
        return False
    log.info("model=%s event=source-changed detail=the content at the same URI changed; fetching it again", name)
    return True


def clear_stale_resumes(plans: list[ModelPlan], repository: Repository, options: FetchOptions) -> None:
    """Resumable work folders of models no longer in the lease, or of plans that changed, are cleared."""
    wanted = {resume_name(plan.spec.name, plan_fingerprint(plan, options.volume_mode)) for plan in plans}
    for folder in repository.clear_stale_resumes(wanted):
        get_logger().info("event=resume-cleared folder=%s detail=its model left the lease or its plan changed", folder)


def _resumable(exc: BaseException) -> bool:
    """A transfer that broke off keeps its work folder for the next try; anything else (content
    refused, a checksum, a size limit, a full volume, a fault) clears it."""
    return isinstance(exc, DownloadError) and not isinstance(exc, (TooLargeError, IntegrityError, WriteError))


def install_model(plan: ModelPlan, repository: Repository, options: FetchOptions, manifest: Manifest, *,
                  on_installed: Callable[[Path], None] | None = None, done_event: str = "installed",
                  start_detail: str = "") -> ModelResult:
    """Fetch into a work folder, swap into the root, record in the manifest; one failure is one result.

    ``on_installed(workdir)`` runs after the swap and before the model is recorded (the sidecar
    loads it into Triton there); a FetcherError it raises fails the model like a fetch error.
    """
    log = get_logger()
    name = plan.spec.name
    start = time.monotonic()
    log.info("model=%s event=start%s source=%s location=%s secret=%s", name, start_detail, plan.source,
             plan.location, plan.secret or "none")
    workdir = None
    keep_workdir = False
    fingerprint = plan_fingerprint(plan, options.volume_mode)
    observer = options.observer
    observer.start(name, plan.source)
    try:
        workdir = repository.resume_dir(name, fingerprint)
        try:
            fetched = fetch_model(plan, options, workdir)
        except Exception as exc:
            keep_workdir = _resumable(exc)
            raise
        if plan.spec.files is not None:
            check_file_digests(fetched.model_dir, plan.spec.files, where=plan.location)
        manifest.forget(name)
        renamed = repository.install(name, fetched, workdir)
        if renamed is not None:
            log.info("model=%s event=renamed config_name=%s", name, renamed)
        if on_installed is not None:
            on_installed(workdir)
        manifest.record(name, fingerprint, repository.root / name, fetched.validators)
    except FetcherError as exc:
        seconds = time.monotonic() - start
        reason = observer.finish(name, plan.source, seconds=seconds, error=exc)
        log.error("model=%s event=failed seconds=%.2f error=%s", name, seconds, exc)
        return ModelResult(name=name, ok=False, seconds=seconds, error=str(exc), reason=reason)
    except Exception as exc:  # an unexpected fault in one model must not take the others down
        seconds = time.monotonic() - start
        reason = observer.finish(name, plan.source, seconds=seconds, error=exc)
        log.error("model=%s event=failed seconds=%.2f error=internal %s", name, seconds, type(exc).__name__)
        log.debug("model=%s event=internal-error", name, exc_info=True)  # the stack, with --debug
        return ModelResult(name=name, ok=False, seconds=seconds, error=f"internal error ({type(exc).__name__})",
                           reason=reason)
    finally:
        if workdir is not None and not keep_workdir:
            repository.discard(workdir)
    seconds = time.monotonic() - start
    observer.finish(name, plan.source, seconds=seconds)
    log.info(
        "model=%s event=%s %s bytes=%d seconds=%.2f rate=%s",
        name,
        done_event,
        "linked" if fetched.link else "path=" + str(repository.root / name),
        fetched.bytes_transferred,
        seconds,
        human_rate(fetched.bytes_transferred, seconds),
    )
    return ModelResult(name=name, ok=True, bytes_transferred=fetched.bytes_transferred, seconds=seconds)


def stale_models(repository: Repository, manifest: Manifest, wanted: set[str]) -> list[str]:
    """The models in the root that the lease no longer names; other stray entries are logged, not touched."""
    models, others = repository.stale(wanted, manifest.names())
    for name in others:
        get_logger().warning("entry=%s event=left-in-place detail=not a model the fetcher installed, and not "
                             "named by the lease; Triton will try to load it as a model", name)
    return models


def remove_model(repository: Repository, manifest: Manifest, name: str) -> None:
    repository.remove(name)
    manifest.forget(name)


def fetch_all(plans: list[ModelPlan], repository: Repository, options: FetchOptions, concurrency: int) -> list[ModelResult]:
    """Remove the models the lease dropped, then fetch the rest: the root ends up holding exactly the lease."""
    repository.prepare()
    clear_stale_resumes(plans, repository, options)
    manifest = Manifest(repository.staging / MANIFEST_NAME)
    for name in stale_models(repository, manifest, {plan.spec.name for plan in plans}):
        remove_model(repository, manifest, name)  # an InstallError here stops the fetch: the root is wrong
        get_logger().info("model=%s event=removed detail=no longer in the lease", name)
    results: list[ModelResult] = []
    if plans:
        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(plans))), thread_name_prefix="model") as pool:
            results = list(pool.map(lambda plan: fetch_one(plan, repository, options, manifest), plans))
        if options.observer.metrics is not None:
            options.observer.metrics.synced(len(manifest.names()), None if all(r.ok for r in results) else "models")
    if options.cache is not None:
        options.cache.keep_only(repository.root)
    return results
