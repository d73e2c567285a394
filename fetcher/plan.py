"""Resolving each model of a lease to a plan: its source, repository, location and secret."""

from __future__ import annotations

from fetcher.credentials.target_uri import validate_target_uris
from fetcher.errors import ResolutionError
from fetcher.lease.model_spec import ModelSpec
from fetcher.lease.values import LeaseValues
from fetcher.sources.base import FetchOptions, ModelPlan, Source


def plan_model(spec: ModelSpec, lease: LeaseValues, options: FetchOptions) -> ModelPlan:
    if spec.uri.is_http:
        from fetcher.sources.https import plan_https

        return plan_https(spec, lease)
    repository = spec.uri.repository
    for volume in lease.volumes:
        if volume.repository_name == repository:
            from fetcher.sources.volume import plan_volume

            return plan_volume(spec, volume, options)
    for bucket in lease.s3:
        if bucket.repository_name == repository:
            from fetcher.sources.s3 import plan_s3

            return plan_s3(spec, bucket, lease, options)
    configured = [v.repository_name for v in lease.volumes] + [s.repository_name for s in lease.s3]
    raise ResolutionError(
        f"model {spec.name!r}: repository {repository!r} of {spec.uri.text!r} is not configured",
        hint=(
            "configured repositories: " + ", ".join(configured)
            if configured
            else "no volumes or s3 repositories are configured in server.modelRepositories"
        ),
    )


def plan_lease(lease: LeaseValues, options: FetchOptions) -> list[ModelPlan]:
    validate_target_uris(lease.https)
    return [plan_model(spec, lease, options) for spec in lease.models]


def source_for(plan: ModelPlan, options: FetchOptions) -> Source:
    """The source that fetches ``plan``; imported on demand so a lease loads only what it uses."""
    if plan.source == "https":
        from fetcher.sources.https import HttpsSource

        return HttpsSource(options)
    if plan.source == "volume":
        from fetcher.sources.volume import VolumeSource

        return VolumeSource(options)
    from fetcher.sources.s3 import S3Source

    return S3Source(options)
