"""What a cache entry is keyed on: where the model is, and what its source says the content is now.

The source is asked with the asking pod's own credentials (a one-byte ranged GET with its
Authorization secret, an S3 listing with its keys or role). That request is also the tenant rule:
a pod that cannot reach the model gets an error from its source, never a key into the cache, and
a pod that can reach it gets the entry of exactly the content its source names (same ETag,
Last-Modified or object ETags and sizes), which it could have downloaded itself.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fetcher.sources.base import FetchOptions, ModelPlan


def source_validators(plan: ModelPlan[Any], options: FetchOptions) -> dict[str, Any] | None:
    """The source's validators of the model, asked now with the pod's credentials; None when it gives none.

    The same request as the change check of an installed model (``Source.validators``).
    """
    from fetcher.plan import source_for

    return source_for(plan, options).validators(plan)


def cache_key(plan: ModelPlan[Any], validators: dict[str, Any] | None) -> str | None:
    """The entry's name: a digest of the model's location and its validators (or the lease's sha256).

    None when the source says nothing that identifies the content: such a model is not cached.
    The full URL (query included) goes into the digest and never into the cache in clear.
    """
    if validators is None and plan.spec.sha256 is None:
        return None
    if plan.source == "https":
        where: Any = plan.target.url
    elif plan.source == "s3":
        bucket = plan.target.bucket
        where = [bucket.endpoint, bucket.aws_region, bucket.bucket_name, plan.target.prefix]
    else:
        return None
    described = {"source": plan.source, "where": where, "validators": validators, "sha256": plan.spec.sha256}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:40]


def announced_size(validators: dict[str, Any] | None) -> int:
    """The bytes the source says the model has (an archive's size, the objects' sizes); 0 when unknown."""
    if not validators:
        return 0
    if "objects" in validators:
        return sum(int(size or 0) for _etag, size in validators["objects"].values())
    return int(validators.get("size") or 0)
