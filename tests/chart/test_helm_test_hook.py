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

    def do_GET(self):  # noqa: N802
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


def run_hook(rendered, url):
    (container,) = rendered.one("Pod", hook=True)["spec"]["containers"]
    return subprocess.run(
        container["command"], env={**os.environ, "TRITON_URL": url}, capture_output=True, text=True, timeout=60
    )


@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
def test_hook_script_passes_when_every_model_is_ready(render, fake_triton, monkeypatch):
    monkeypatch.setattr(FakeTriton, "ready", {"/v2/health/ready", "/v2/models/alpha/ready", "/v2/models/beta/ready"})
    rendered = render({"lease": {"models": ["name=alpha,uri=https://h/a.zip", {"name": "beta", "uri": "https://h/b.zip"}]}})
    result = run_hook(rendered, fake_triton)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ready: model alpha" in result.stdout and "ready: model beta" in result.stdout


@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
def test_hook_script_fails_naming_the_model_that_is_not_ready(render, fake_triton, monkeypatch):
    monkeypatch.setattr(FakeTriton, "ready", {"/v2/health/ready", "/v2/models/alpha/ready"})
    rendered = render({"lease": {"models": ["name=alpha,uri=https://h/a.zip", "name=beta,uri=https://h/b.zip"]}})
    result = run_hook(rendered, fake_triton)
    assert result.returncode != 0
    assert "ready: model alpha" in result.stdout
    assert "NOT READY: model beta" in result.stdout
