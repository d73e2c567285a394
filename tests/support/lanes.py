"""The ways the end-to-end tests get ``model-fetcher``: the checkout, the wheel a user installs, the image."""

from __future__ import annotations

import pytest

# Runs the test with the checkout's fetcher, the built wheel's (in a virtual environment of its own)
# and the image's (built from Dockerfile.fetcher with podman; skipped where podman cannot run).
# See the ``fetcher_install`` fixture in tests/conftest.py.
every_lane = pytest.mark.parametrize("fetcher_install", ["checkout", "wheel", "image"], indirect=True)
