"""Rollouts finish on GPU clusters: the strategy needs no spare GPU, the deadline covers the budgets."""

from __future__ import annotations

import math

import pytest


def peak_pods(deployment: dict) -> int:
    """Most pods a rollout runs at once (Kubernetes rounds a percentage of maxSurge up)."""
    replicas = deployment["spec"]["replicas"]
    strategy = deployment["spec"]["strategy"]
    if strategy["type"] == "Recreate":
        return replicas
    surge = strategy["rollingUpdate"]["maxSurge"]
    if isinstance(surge, str):
        surge = math.ceil(replicas * int(surge.rstrip("%")) / 100)
    return replicas + surge


def gpus_per_pod(rendered) -> int:
    return int(rendered.triton["resources"]["limits"].get("nvidia.com/gpu", 0))


@pytest.mark.parametrize("replicas", [1, 3])
@pytest.mark.parametrize("gpus", [1, 4])
def test_gpu_rollout_needs_no_spare_gpu(render, replicas, gpus):
    rendered = render({"replicaCount": replicas, "triton": {"gpus": gpus},
                       "lease": {"models": ["name=a,uri=https://h/a.zip"]}})
    deployment = rendered.deployment
    # The pool holds exactly the GPUs of the running replicas: the rollout never needs more.
    assert peak_pods(deployment) * gpus_per_pod(rendered) == replicas * gpus
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}


def test_kubernetes_default_strategy_would_need_a_spare_gpu(render):
    # What the chart rendered before: no strategy, i.e. Kubernetes' 25% surge (one pod more).
    rendered = render({"triton": {"gpus": 1}, "strategy": {"type": "RollingUpdate",
                                                           "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}})
    assert peak_pods(rendered.deployment) * gpus_per_pod(rendered) == 2


def test_cpu_rollout_surges_without_downtime(render):
    strategy = render({"triton": {"gpus": 0}}).deployment["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def test_strategy_value_wins(render):
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "50%", "maxUnavailable": 0}}
    assert render({"strategy": strategy}).deployment["spec"]["strategy"] == strategy
    assert render({"strategy": {"type": "Recreate"}}).deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_strategy_is_checked_by_the_schema(render_error):
    assert "strategy" in render_error({"strategy": {"type": "BlueGreen"}})


def test_recreate_with_rolling_update_settings_is_refused(render_error):
    message = render_error({"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 0}}})
    assert "strategy.rollingUpdate must be empty when strategy.type is Recreate" in message


def test_default_deadline_covers_fetch_startup_and_scheduling(render):
    deployment = render({}).deployment
    # fetcher.fetchBudgetSeconds 3600 + Triton's startup probe 10 x 60 + 600 for scheduling and pulls.
    assert deployment["spec"]["progressDeadlineSeconds"] == 3600 + 600 + 600
    assert deployment["spec"]["progressDeadlineSeconds"] > 600  # Kubernetes' default, shorter than a fetch


def test_deadline_follows_the_budgets(render):
    values = {"fetcher": {"fetchBudgetSeconds": 7200},
              "triton": {"startupProbe": {"initialDelaySeconds": 30, "periodSeconds": 20, "failureThreshold": 90}}}
    assert render(values).deployment["spec"]["progressDeadlineSeconds"] == 7200 + 30 + 20 * 90 + 600


def test_sidecar_deadline_uses_the_sidecar_startup_probe(render):
    values = {"fetcher": {"mode": "sidecar", "fetchBudgetSeconds": 10,
                          "sidecar": {"startupProbe": {"periodSeconds": 10, "failureThreshold": 500}}}}
    assert render(values).deployment["spec"]["progressDeadlineSeconds"] == 5000 + 600 + 600


def test_deadline_value_wins_when_it_covers_the_budgets(render):
    assert render({"progressDeadlineSeconds": 4300}).deployment["spec"]["progressDeadlineSeconds"] == 4300


def test_deadline_shorter_than_the_budgets_is_refused(render_error):
    message = render_error({"progressDeadlineSeconds": 600})
    assert "progressDeadlineSeconds=600" in message
    assert "4200 s" in message and "fetcher.fetchBudgetSeconds" in message and "triton.startupProbe" in message
