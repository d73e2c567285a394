"""One sync: make the repository root (and the running Triton) hold exactly the lease's models.

- a model that left the lease (or a model folder no lease named, found in the root): Triton
  unloads it, then its folder is deleted and forgotten;
- a new model, or one whose plan changed (URI, sha256, source, secret): fetched into a work folder
  in the staging area, swapped in with renames, then loaded (Triton reloads a loaded model in place).
  If Triton refuses it, the swap is undone: the folder that was serving comes back, Triton keeps
  serving the model it had (a failed reload leaves the loaded model in place) and the failure is
  reported. A failed fetch never touches the repository root;
- an unchanged model (same plan, files all there, the same validators at the source) is left
  alone; a model whose content changed at the same URI (another ETag, Last-Modified or S3
  listing) is fetched again and reloaded like a changed plan.

The manifest beside the root records what is installed; in sidecar mode that is also what Triton
has loaded once it runs.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fetcher.errors import FetcherError, InstallError
from fetcher.logs import get_logger
from fetcher.repository.install import Repository
from fetcher.repository.manifest import MANIFEST_NAME, Manifest, plan_fingerprint
from fetcher.runner import (changed_at_source, clear_stale_resumes, install_model, is_installed, remove_model,
                            stale_models)
from fetcher.sources.base import FetchOptions, ModelPlan
from fetcher.watch.triton_client import TritonClient


@dataclass
class SyncResult:
    applied: list[str] = field(default_factory=list)  # fetched (and loaded) by this sync
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # model -> reason


class Reconciler:
    def __init__(self, repository: Repository, options: FetchOptions, triton: TritonClient, *,
                 concurrency: int, unload_timeout: float) -> None:
        self.repository = repository
        self.options = options
        self.triton = triton
        self.concurrency = concurrency
        self.unload_timeout = unload_timeout
        self.log = get_logger()
        repository.prepare()
        self.manifest = Manifest(repository.staging / MANIFEST_NAME)

    def installed(self) -> list[str]:
        return sorted(self.manifest.names())

    def installed_bytes(self, name: str) -> int:
        return self.manifest.installed_bytes(name)

    def sync(self, plans: list[ModelPlan], *, load: bool) -> SyncResult:
        """Apply the lease; with ``load`` False (Triton not started yet) only the files change."""
        result = SyncResult()
        wanted = {plan.spec.name for plan in plans}
        for name in stale_models(self.repository, self.manifest, wanted):
            try:
                self._remove(name, load)
                result.removed.append(name)
            except FetcherError as exc:
                self.log.error("model=%s event=failed action=remove error=%s", name, exc)
                result.failures[name] = str(exc)

        clear_stale_resumes(plans, self.repository, self.options)
        pending: list[ModelPlan] = []
        for plan in plans:
            name = plan.spec.name
            if (is_installed(plan, self.repository, self.options, self.manifest)
                    and not changed_at_source(plan, self.options, self.manifest)):
                result.unchanged.append(name)
            else:
                pending.append(plan)
        if pending:
            workers = max(1, min(self.concurrency, len(pending)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="model") as pool:
                errors = list(pool.map(lambda plan: self._apply(plan, load), pending))
            for plan, error in zip(pending, errors):
                if error is None:
                    result.applied.append(plan.spec.name)
                else:
                    result.failures[plan.spec.name] = error
        if self.options.cache is not None:
            self.options.cache.keep_only(self.repository.root)
        return result

    def changed_at_source(self, plans: list[ModelPlan]) -> list[str]:
        """The installed models whose source says their content changed (the poll's change check)."""
        return [plan.spec.name for plan in plans
                if self.manifest.fingerprint(plan.spec.name) == plan_fingerprint(plan, self.options.volume_mode)
                and changed_at_source(plan, self.options, self.manifest)]

    def _remove(self, name: str, load: bool) -> None:
        if load:
            self.triton.unload(name)
            self.triton.wait_unloaded(name, self.unload_timeout)
        remove_model(self.repository, self.manifest, name)
        if self.options.observer.metrics is not None:
            self.options.observer.metrics.model_removed()
        self.log.info("model=%s event=removed%s", name, " unloaded=true" if load else "")

    def _apply(self, plan: ModelPlan, load: bool) -> str | None:
        """Fetch, swap in and load one model; the reason when it failed (the serving model is kept)."""
        name = plan.spec.name
        previous = self.manifest.fingerprint(name)
        previous_validators = self.manifest.validators(name)

        def load_into_triton(workdir: Path) -> None:
            try:
                self.triton.load(name)
            except FetcherError:
                if not self._roll_back(name, workdir, previous, previous_validators):
                    self._forget_in_triton(name)
                raise

        result = install_model(plan, self.repository, self.options, self.manifest,
                               on_installed=load_into_triton if load else None,
                               done_event="loaded" if load else "installed",
                               start_detail=" action=" + ("replace" if previous else "add"))
        return result.error

    def _forget_in_triton(self, name: str) -> None:
        """A new model Triton refused stays listed as UNAVAILABLE, which makes Triton's (strict)
        readiness fail and takes the pod out of its Service: unload it so Triton forgets it."""
        try:
            self.triton.unload(name)
        except FetcherError as exc:
            self.log.warning("model=%s event=unload-after-failure-failed error=%s", name, exc)

    def _roll_back(self, name: str, workdir: Path, previous: str | None,
                   previous_validators: dict[str, Any] | None = None) -> bool:
        """Triton refused the new model: put back the folder that was there, if any (True then)."""
        try:
            restored = self.repository.restore(name, workdir)
        except InstallError as exc:
            self.log.error("model=%s event=rollback-failed error=%s", name, exc)
            return False
        if restored and previous is not None:
            try:
                self.manifest.record(name, previous, self.repository.root / name, previous_validators)
            except OSError as exc:
                self.log.error("model=%s event=rollback-failed error=%s", name, exc.strerror)
                return True
        self.log.warning("model=%s event=rolled-back detail=%s", name,
                         "the previous version stays installed and serving" if restored else "the new model was removed")
        return restored
