"""Two rendered pods with fetcher.cache on, run here on one cache folder: the second starts from the cache.

The chart's wiring is what is tested: the cache mounted at the same path in the fetcher and
(read-only) in Triton, the links of the repository resolving there, POD_UID from the downward API,
and Triton started through flock, holding its pod's lease while it serves.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

import pytest

from devkit.chart import merge_values, render_chart
from devkit.demo import NAMESPACE, RELEASE, DemoSources, demo_sources, run_pod
from devkit.pod import LocalPod
from tests.support.locks import is_locked

pytestmark = pytest.mark.triton

CACHE_CLAIM = "model-cache"


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoSources]:
    with demo_sources(tmp_path_factory.mktemp("cache-pod-sources")) as running:
        yield running


def test_a_second_pod_starts_from_the_cache(sources: DemoSources, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    with_cache = dataclasses.replace(sources, claims={**sources.claims, CACHE_CLAIM: cache})
    values = merge_values(sources.values(), {"fetcher": {"cache": {
        "enabled": True, "existingClaim": {"claimName": CACHE_CLAIM}, "maxSize": "64Mi"}}})
    rendered = render_chart(values, name=RELEASE, namespace=NAMESPACE)
    lease_locked: list[bool] = []
    uids: list[str] = []

    def lease_is_held(pod: LocalPod) -> None:
        uids.append(pod.uid)
        lease_locked.append(is_locked(cache / "pods" / f"{pod.uid}.lock"))

    first = run_pod(rendered, with_cache, tmp_path / "pod-a")
    assert first.init.returncode == 0, first.init.output
    second = run_pod(rendered, with_cache, tmp_path / "pod-b", while_serving=lease_is_held)
    assert second.init.returncode == 0, second.init.output

    for run in (first, second):
        assert sorted(run.installed) == ["https_model", "s3_model", "volume_model"]
        for model in sources.models:
            assert run.served[model.name] == (True, model.expected()), model.name
    for name in ("https_model", "s3_model"):
        assert f"model={name} event=cache-miss" in first.init.output
        assert f"model={name} event=cache-hit" in second.init.output
    assert "event=cache" not in "\n".join(line for line in second.init.output.splitlines() if "volume_model" in line)
    assert lease_locked == [True]  # Triton held the pod's lease while it served
    assert not is_locked(cache / "pods" / f"{uids[0]}.lock")  # and it stopped with the pod, lock and all
    entries = sorted(p.name for p in (cache / "entries").iterdir())
    assert len(entries) == 2
    assert len(list((cache / "pods").glob("*.json"))) == 2
