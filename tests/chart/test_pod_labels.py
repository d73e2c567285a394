"""podLabels add to the pod's labels but cannot touch the keys the Deployment and Services select by."""

from __future__ import annotations

import pytest


def test_pod_labels_are_added(render):
    rendered = render({"podLabels": {"team": "ml", "app.kubernetes.io/version": "custom"}})
    labels = rendered.deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["team"] == "ml"
    assert labels["app.kubernetes.io/version"] == "custom"  # an informational label may be replaced
    assert rendered.deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert rendered.one("Service")["spec"]["selector"].items() <= labels.items()


@pytest.mark.parametrize("key", ["app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"])
def test_a_selector_key_is_refused(render_error, key):
    message = render_error({"podLabels": {key: "other"}})
    assert f'podLabels: "{key}" is a selector label' in message
