"""The optional PodDisruptionBudget of the Triton pods."""

from __future__ import annotations


def test_no_budget_by_default(render):
    assert render({}).kind("PodDisruptionBudget") == []


def test_budget_selects_the_triton_pods(render):
    rendered = render({"replicaCount": 3, "podDisruptionBudget": {"enabled": True}})
    budget = rendered.one("PodDisruptionBudget")
    assert budget["apiVersion"] == "policy/v1"
    assert budget["spec"]["maxUnavailable"] == 1 and "minAvailable" not in budget["spec"]
    selector = budget["spec"]["selector"]["matchLabels"]
    assert selector.items() <= rendered.deployment["spec"]["template"]["metadata"]["labels"].items()
    assert rendered.deployment["spec"]["selector"]["matchLabels"].items() <= selector.items()


def test_min_available_wins(render):
    budget = render({"podDisruptionBudget": {"enabled": True, "minAvailable": "50%"}}).one("PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == "50%" and "maxUnavailable" not in budget["spec"]


def test_a_budget_needs_one_of_its_bounds(render_error):
    message = render_error({"podDisruptionBudget": {"enabled": True, "minAvailable": "", "maxUnavailable": ""}})
    assert "podDisruptionBudget.minAvailable or podDisruptionBudget.maxUnavailable" in message


def test_a_bad_bound_is_refused_by_the_schema(render_error):
    assert "maxUnavailable" in render_error({"podDisruptionBudget": {"enabled": True, "maxUnavailable": "half"}})
