"""The `helm test` pod asks Triton whether every leased model is ready; its script runs here."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading

import pytest

from conftest import FULLNAME, NAMESPACE


def test_hook_is_a_test_pod_listing_every_model(render):
    rendered = render({"lease": {"models": ["name=alpha,uri=https://h/a.zip", {"name": "beta", "uri": "https://h/b.zip"}]}})
    pod = rendered.one("Pod", hook=True)
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    (container,) = pod["spec"]["containers"]
    assert container["command"][-2:] == ["alpha", "beta"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["TRITON_URL"] == f"http://{FULLNAME}.{NAMESPACE}.svc:8000"


class FakeTriton(http.server.BaseHTTPRequestHandler):
    ready = {"/v2/health/ready"}
    # path -> requests answered "not ready" (400, as Triton does for a model still loading) before "ready"
    loading: dict[str, int] = {}

    def do_GET(self):  # noqa: N802
        if self.loading.get(self.path, 0) > 0:
            self.loading[self.path] -= 1
            self.send_response(400)
        else:
            self.send_response(200 if self.path in self.ready else 400)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_triton():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeTriton)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run_hook(rendered, url, *, wait_seconds=None):
    """The hook's script with the pod's env; the wait shortened and polled fast when asked."""
    (container,) = rendered.one("Pod", hook=True)["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    env["TRITON_URL"] = url
    if wait_seconds is not None:
        env["WAIT_SECONDS"], env["POLL_SECONDS"] = str(wait_seconds), "0.1"
    return subprocess.run(container["command"], env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def test_hook_waits_for_the_fetch_and_startup_budgets(render):
    rendered = render({"fetcher": {"fetchBudgetSeconds": 1800}, "triton": {"startupProbe": {"failureThreshold": 90}}})
    pod = rendered.one("Pod", hook=True)
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["WAIT_SECONDS"] == str(1800 + 10 * 90)
    assert pod["spec"]["activeDeadlineSeconds"] == 1800 + 10 * 90 + 120


@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
def test_hook_script_passes_when_every_model_is_ready(render, fake_triton, monkeypatch):
    monkeypatch.setattr(FakeTriton, "ready", {"/v2/health/ready", "/v2/models/alpha/ready", "/v2/models/beta/ready"})
    rendered = render({"lease": {"models": ["name=alpha,uri=https://h/a.zip", {"name": "beta", "uri": "https://h/b.zip"}]}})
    result = run_hook(rendered, fake_triton, wait_seconds=1)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ready: model alpha" in result.stdout and "ready: model beta" in result.stdout


@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
def test_hook_script_fails_naming_the_model_that_is_not_ready(render, fake_triton, monkeypatch):
    monkeypatch.setattr(FakeTriton, "ready", {"/v2/health/ready", "/v2/models/alpha/ready"})
    rendered = render({"lease": {"models": ["name=alpha,uri=https://h/a.zip", "name=beta,uri=https://h/b.zip"]}})
    result = run_hook(rendered, fake_triton, wait_seconds=1)
    assert result.returncode != 0
    assert "ready: model alpha" in result.stdout
    assert "NOT READY: model beta" in result.stdout


@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
def test_hook_script_waits_for_a_model_still_loading(render, fake_triton, monkeypatch):
    monkeypatch.setattr(FakeTriton, "ready", {"/v2/health/ready", "/v2/models/alpha/ready"})
    monkeypatch.setattr(FakeTriton, "loading", {"/v2/health/ready": 3, "/v2/models/alpha/ready": 5})
    rendered = render({"lease": {"models": ["name=alpha,uri=https://h/a.zip"]}})
    result = run_hook(rendered, fake_triton, wait_seconds=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ready: model alpha" in result.stdout
    assert FakeTriton.loading == {"/v2/health/ready": 0, "/v2/models/alpha/ready": 0}


@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
def test_hook_script_gives_up_at_its_deadline(render, fake_triton, monkeypatch):
    monkeypatch.setattr(FakeTriton, "ready", {"/v2/health/ready"})
    rendered = render({"lease": {"models": ["name=alpha,uri=https://h/a.zip"]}})
    result = run_hook(rendered, fake_triton, wait_seconds=1)
    assert result.returncode != 0
    assert "NOT READY: model alpha" in result.stdout and "after 1s" in result.stdout
