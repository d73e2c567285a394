"""Running the fetcher in-process on a values mapping, for the volume and S3 tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fetcher.credentials.secrets import SecretStore
from fetcher.lease.values import LeaseValues, build_lease_values
from fetcher.plan import plan_lease
from fetcher.repository.install import Repository, default_staging_dir
from fetcher.runner import ModelResult, fetch_all
from fetcher.sources.base import FetchOptions, ModelPlan


def s3_values(*repositories: dict[str, Any], key: str = "s3", role: str | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {"server": {"modelRepositories": {key: list(repositories)}}}
    if role:
        values["server"]["security"] = {"aws": {"role": role}}
    return values


def volume_values(*names: str) -> dict[str, Any]:
    return {"server": {"modelRepositories": {"volumes": [
        {"repositoryName": name, "volumeClaimName": f"{name}-claim"} for name in names
    ]}}}


def lease(values: dict[str, Any], *models: str) -> LeaseValues:
    return build_lease_values(values, models, origin="test values")


@dataclass
class Run:
    dest: Path
    plans: list[ModelPlan]
    results: list[ModelResult] = field(default_factory=list)

    def result(self, name: str) -> ModelResult:
        return next(r for r in self.results if r.name == name)


def options_for(tmp_path: Path, **overrides: Any) -> FetchOptions:
    settings: dict[str, Any] = {
        "secrets": SecretStore(tmp_path / "secrets"),
        "volumes_dir": tmp_path / "volumes",
    }
    settings.update(overrides)
    return FetchOptions(**settings)


def run_fetch(values: dict[str, Any], models: list[str], tmp_path: Path, **overrides: Any) -> Run:
    options = options_for(tmp_path, **overrides)
    dest = tmp_path / "repository"
    plans = plan_lease(lease(values, *models), options)
    repository = Repository(root=dest, staging=default_staging_dir(dest))
    return Run(dest=dest, plans=plans, results=fetch_all(plans, repository, options, concurrency=4))


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (links followed) as relative path -> content."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_secret(secrets_dir: Path, name: str, value: str) -> None:
    """A secret as Kubernetes mounts it: ``<secrets_dir>/<name>/<name>``, with the newline kubectl keeps."""
    folder = secrets_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(value + "\n")
