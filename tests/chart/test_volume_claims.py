"""A lease mounts only the claims its models use: a missing claim blocks only the leases that use it."""

from __future__ import annotations

import pytest

from conftest import VOLUMES_DIR

SHARED = {"server": {"modelRepositories": {"volumes": [
    {"repositoryName": "team-a", "volumeClaimName": "claim-a"},
    {"repositoryName": "team-b", "volumeClaimName": "claim-b"},
]}}}


def claims(rendered) -> set[str]:
    return {v["persistentVolumeClaim"]["claimName"] for v in rendered.pod["volumes"]
            if "persistentVolumeClaim" in v and v["name"] != "model-repository"}


@pytest.mark.parametrize("mode", ["init", "sidecar"])
def test_only_the_claims_of_the_leased_models_are_mounted(render, mode):
    rendered = render({**SHARED, "fetcher": {"mode": mode},
                       "lease": {"models": ["name=m,uri=model://team-a/m", "name=z,uri=https://h/z.zip"]}})
    assert claims(rendered) == {"claim-a"}
    for container in (rendered.fetcher, rendered.triton):
        mounted = {p for p in rendered.mounts(container) if p.startswith(VOLUMES_DIR)}
        assert mounted == {f"{VOLUMES_DIR}/team-a"}


def test_no_claim_without_a_volume_model(render):
    assert claims(render({**SHARED, "lease": {"models": ["name=z,uri=https://h/z.zip"]}})) == set()


def test_each_used_claim_once(render):
    rendered = render({**SHARED, "lease": {"models": [
        "name=a1,uri=model://team-a/one", {"name": "a2", "uri": "model://team-a/two"}, "name=b,uri=model://team-b/b"]}})
    assert claims(rendered) == {"claim-a", "claim-b"}
    assert len([v for v in rendered.pod["volumes"] if "persistentVolumeClaim" in v]) == 2


def test_the_fetcher_still_reads_every_repository(render):
    rendered = render({**SHARED, "lease": {"models": ["name=m,uri=model://team-a/m"]}})
    names = [v["repositoryName"] for v in rendered.fetcher_values["server"]["modelRepositories"]["volumes"]]
    assert names == ["team-a", "team-b"]
