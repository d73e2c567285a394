"""Resolving each model of a lease to a plan, through the one table of sources.

A model URL goes to the https source; a ``model://<repository>/<path>`` URI to the source of the
volume or s3 repository of that name. Each source module plans its models into its own typed
target and fetches them; it is imported only when a lease uses it (boto3 only for S3 models).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from fetcher.credentials.target_uri import validate_target_uris
from fetcher.errors import ResolutionError
from fetcher.lease.model_spec import ModelSpec
from fetcher.lease.values import LeaseValues, S3Repository, VolumeRepository
from fetcher.sources.base import FetchOptions, ModelPlan, Source


@dataclass(frozen=True)
class SourceKind:
    """One row of the table: where a kind of source lives and which values entries it serves."""

    module: str  # defines plan(spec, repository config or None, lease, options) -> ModelPlan and Source(options)
    repositories: Callable[[LeaseValues], tuple[VolumeRepository | S3Repository, ...]]  # the values entries it serves

    def load(self) -> Any:
        return importlib.import_module(self.module)


SOURCES: dict[str, SourceKind] = {
    "https": SourceKind("fetcher.sources.https", lambda lease: ()),  # model URLs, not named repositories
    "volume": SourceKind("fetcher.sources.volume", lambda lease: lease.volumes),
    "s3": SourceKind("fetcher.sources.s3", lambda lease: lease.s3),
}


def plan_model(spec: ModelSpec, lease: LeaseValues, options: FetchOptions) -> ModelPlan[Any]:
    if spec.uri.is_http:
        return SOURCES["https"].load().plan(spec, None, lease, options)
    repository = spec.uri.repository
    configured: list[str] = []
    for kind in SOURCES.values():
        for config in kind.repositories(lease):
            if config.repository_name == repository:
                return kind.load().plan(spec, config, lease, options)
            configured.append(config.repository_name)
    raise ResolutionError(
        f"model {spec.name!r}: repository {repository!r} of {spec.uri.text!r} is not configured",
        hint=(
            "configured repositories: " + ", ".join(configured)
            if configured
            else "no volumes or s3 repositories are configured in server.modelRepositories"
        ),
    )


def plan_lease(lease: LeaseValues, options: FetchOptions) -> list[ModelPlan[Any]]:
    validate_target_uris(lease.https)
    return [plan_model(spec, lease, options) for spec in lease.models]


def source_for(plan: ModelPlan[Any], options: FetchOptions) -> Source[Any]:
    """The source that fetches ``plan``: the one that planned it."""
    return SOURCES[plan.source].load().Source(options)
