"""modelRepository.type existingClaim: one pod uses the claim at a time, or the render is refused."""

from __future__ import annotations

import pytest

CLAIM = {"modelRepository": {"type": "existingClaim", "existingClaim": {"claimName": "lease-models"}}}


def test_one_replica_recreates_so_two_pods_never_share_the_claim(render):
    deployment = render({**CLAIM, "triton": {"gpus": 1}}).deployment
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_several_replicas_are_refused_naming_the_values(render_error):
    message = render_error({**CLAIM, "replicaCount": 2})
    assert "replicaCount=2" in message and "modelRepository.type=existingClaim" in message
    assert '"lease-models"' in message and "modelRepository.type=ephemeral" in message


@pytest.mark.parametrize("strategy, surge", [
    ({"type": "RollingUpdate"}, "25%"),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}, "1"),
    ({"rollingUpdate": {"maxSurge": "10%"}}, "10%"),
])
def test_a_strategy_that_surges_is_refused(render_error, strategy, surge):
    message = render_error({**CLAIM, "strategy": strategy})
    assert f"strategy surges (maxSurge {surge})" in message and '"lease-models"' in message


@pytest.mark.parametrize("strategy", [
    {"type": "Recreate"},
    {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
])
def test_a_strategy_without_surge_is_accepted(render, strategy):
    assert render({**CLAIM, "strategy": strategy}).deployment["spec"]["strategy"] == strategy


def test_several_replicas_with_a_claim_per_pod_are_fine(render):
    rendered = render({"replicaCount": 3, "modelRepository": {"type": "ephemeral"}})
    assert rendered.deployment["spec"]["replicas"] == 3
    assert "ephemeral" in rendered.volume("model-repository")
