"""Sidecar mode against the real Triton in explicit mode: lease changes reach a running server.

Each test runs ``model-fetcher watch`` as the pod's sidecar would (a subprocess reading a
ConfigMap-style folder), starts Triton once the watcher is ready, then changes the lease with a
``..data`` swap and waits, with deadlines, for Triton to show the change. Triton is never restarted.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

from devkit.https_server import serve_files
from devkit.models import model_files, zip_model
from devkit.ports import free_port
from devkit.wheel import FetcherInstall
from tests.support.lanes import every_lane
from watch_pod import MODEL_CONTROL_HEADER, WatchPod, new_pod

pytestmark = [pytest.mark.triton, pytest.mark.slow]

INITIAL = {"alpha": "alpha.zip", "beta": "beta.zip"}

CRASHING_MODEL_PY = '''\
class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("this model refuses to load")

    def execute(self, requests):
        return []
'''


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    zip_model(folder / "alpha.zip", model_files("alpha", addend=1.0))
    zip_model(folder / "alpha-v2.zip", model_files("alpha", addend=100.0), top_folder="alpha")
    zip_model(folder / "beta.zip", model_files("beta", addend=2.0))
    zip_model(folder / "gamma.zip", model_files("upstream_gamma", addend=3.0))
    crashing = {**model_files("crashing"), "1/model.py": CRASHING_MODEL_PY.encode()}
    zip_model(folder / "crashing.zip", crashing)
    with zipfile.ZipFile(folder / "no-model.zip", "w") as zf:
        zf.writestr("README.txt", "this archive holds no model")
    return folder


@pytest.fixture()
def pod(tmp_path: Path, site: Path, fetcher_install: FetcherInstall) -> Iterator[WatchPod]:
    with serve_files(site) as server:
        pod = new_pod(tmp_path, server, INITIAL, fetcher_install)
        try:
            pod.start_watch()
            pod.wait(lambda: pod.status().get("ready") is True, "the initial sync")
            assert sorted(p.name for p in pod.repository.iterdir()) == ["alpha", "beta"]
            triton = pod.start_triton()
            assert triton.model_ready("alpha") and triton.model_ready("beta"), triton.log()[-2000:]
            yield pod
        finally:
            pod.close()


@every_lane
def test_an_added_model_is_loaded_without_restarting_triton(pod: WatchPod) -> None:
    triton = pod.triton
    assert triton.infer("alpha", [1, 2, 3, 4]) == [2, 3, 4, 5]
    pod.lease({**INITIAL, "gamma": "gamma.zip"})
    pod.wait(lambda: triton.model_ready("gamma"), "gamma to be loaded")
    # The zip's config said "upstream_gamma": the installed copy was renamed, and Triton serves it.
    assert triton.infer("gamma", [1, 2, 3, 4]) == [4, 5, 6, 7]
    assert triton.model_ready("alpha") and triton.model_ready("beta")
    assert triton.process.poll() is None
    pod.wait_synced(["alpha", "beta", "gamma"], "the status to list gamma")
    assert pod.status()["failures"] == {}
    assert pod.status_command("--require-healthy")[0] == 0


def test_a_removed_model_is_unloaded_then_deleted(pod: WatchPod) -> None:
    triton = pod.triton
    pod.lease({"alpha": "alpha.zip"})
    pod.wait(lambda: not triton.model_ready("beta"), "beta to be unloaded")
    pod.wait(lambda: not (pod.repository / "beta").exists(), "beta's folder to be deleted")
    pod.wait_synced(["alpha"], "the status to drop beta")
    assert sorted(p.name for p in pod.repository.iterdir()) == ["alpha"]
    assert triton.infer("alpha", [0, 0, 0, 0]) == [1, 1, 1, 1]
    assert "model=beta event=removed unloaded=true" in pod.log()


def test_the_metrics_endpoint_counts_models_added_removed_and_failed(pod: WatchPod, site: Path) -> None:
    def downloaded(model: str) -> float:
        return metrics.get(f'model_fetcher_downloaded_bytes_total{{model="{model}",source="https"}}', 0.0)

    metrics = pod.metrics()
    assert metrics['model_fetcher_models_installed_total{source="https"}'] == 2
    assert downloaded("alpha") == (site / "alpha.zip").stat().st_size
    assert metrics["model_fetcher_models"] == 2 and metrics["model_fetcher_syncs_total"] == 1
    first_success = metrics["model_fetcher_last_successful_sync_timestamp_seconds"]
    assert first_success > 0

    # beta leaves the lease and gamma joins it.
    pod.lease({"alpha": "alpha.zip", "gamma": "gamma.zip"})
    pod.wait_synced(["alpha", "gamma"], "gamma in and beta out")
    metrics = pod.metrics()
    # (at least 3: a python model that Triton loaded holds a new __pycache__ here, and is fetched again)
    assert metrics['model_fetcher_models_installed_total{source="https"}'] >= 3
    assert metrics["model_fetcher_models_removed_total"] == 1
    assert downloaded("gamma") == (site / "gamma.zip").stat().st_size
    assert metrics["model_fetcher_models"] == 2 and metrics["model_fetcher_syncs_total"] >= 2
    assert metrics["model_fetcher_last_successful_sync_timestamp_seconds"] >= first_success
    assert (metrics['model_fetcher_fetch_duration_seconds_count{outcome="installed",source="https"}']
            == metrics['model_fetcher_models_installed_total{source="https"}'])

    # A zip without a model: a failure by reason, and a reconcile failure; from the change on, the
    # repository no longer holds the whole lease, so the last success stays before it.
    pod.lease({"alpha": "alpha.zip", "gamma": "gamma.zip", "broken": "no-model.zip"})
    changed_at = time.time()
    pod.wait(lambda: "broken" in pod.status().get("failures", {}), "the broken model to be reported")
    metrics = pod.metrics()
    assert metrics['model_fetcher_failures_total{reason="layout",source="https"}'] == 1
    assert metrics['model_fetcher_reconcile_failures_total{reason="models"}'] == 1
    assert metrics["model_fetcher_last_successful_sync_timestamp_seconds"] <= changed_at
    assert metrics["model_fetcher_models"] == 2


def test_a_changed_uri_serves_the_new_version(pod: WatchPod) -> None:
    triton = pod.triton
    assert triton.infer("alpha", [1, 1, 1, 1]) == [2, 2, 2, 2]
    pod.lease({**INITIAL, "alpha": "alpha-v2.zip"})
    pod.wait(lambda: triton.infer("alpha", [1, 1, 1, 1]) == [101, 101, 101, 101], "alpha's new version to serve")
    assert "+ 100.0" in (pod.repository / "alpha" / "1" / "model.py").read_text()
    assert triton.infer("beta", [1, 1, 1, 1]) == [3, 3, 3, 3]
    # Nothing is left behind in the staging folder but the manifest.
    staging = pod.repository.parent / ".repository.staging"
    pod.wait(lambda: sorted(p.name for p in staging.iterdir()) == ["manifest.json"], "the work folders to go")


def test_content_changed_at_the_same_uri_is_reloaded_at_a_poll(pod: WatchPod, site: Path) -> None:
    triton = pod.triton
    assert triton.infer("beta", [1, 1, 1, 1]) == [3, 3, 3, 3]
    zip_model(site / "beta.zip", model_files("beta", addend=50.0))  # the same URL, new content
    pod.server.state.etag = '"v2"'
    pod.wait(lambda: triton.infer("beta", [1, 1, 1, 1]) == [51, 51, 51, 51], "beta's new content to serve")
    assert "event=source-changed" in pod.log() and "model=beta event=loaded" in pod.log()
    assert triton.infer("alpha", [1, 1, 1, 1]) == [2, 2, 2, 2]
    assert triton.process.poll() is None


def test_broken_models_leave_the_serving_set_alone_and_are_reported(pod: WatchPod) -> None:
    triton = pod.triton
    alpha_code = (pod.repository / "alpha" / "1" / "model.py").read_text()
    pod.lease({
        "alpha": "no-model.zip",  # the fetch fails: nothing is touched
        "beta": "crashing.zip",  # fetched, swapped in, refused by Triton: swapped back
        "delta": "crashing.zip",  # a new model Triton refuses: removed again
    })
    pod.wait(lambda: set(pod.status().get("failures", {})) == {"alpha", "beta", "delta"}, "the failures to be reported")
    failures = pod.status()["failures"]
    assert "holds no Triton model" in failures["alpha"]
    assert "load of model 'beta'" in failures["beta"] and "refuses to load" in failures["beta"]
    assert "load of model 'delta'" in failures["delta"]
    assert pod.status()["models"] == ["alpha", "beta"]

    assert triton.infer("alpha", [1, 1, 1, 1]) == [2, 2, 2, 2]
    assert triton.infer("beta", [1, 1, 1, 1]) == [3, 3, 3, 3]
    assert not triton.model_ready("delta")
    # The refused models leave Triton ready: the pod stays in the Service.
    status, index = triton.post("/v2/repository/index")
    assert triton.get("/v2/health/ready")[0] == 200, index
    assert sorted(p.name for p in pod.repository.iterdir()) == ["alpha", "beta"]
    assert (pod.repository / "alpha" / "1" / "model.py").read_text() == alpha_code
    assert "refuses to load" not in (pod.repository / "beta" / "1" / "model.py").read_text()
    assert triton.process.poll() is None

    log = pod.log()
    assert "model=alpha event=failed" in log and "model=beta event=rolled-back" in log
    assert "model=delta event=failed" in log
    code, text = pod.status_command()
    assert code == 0 and "failed alpha:" in text  # still ready (the startup probe stays green) ...
    assert pod.status_command("--require-healthy")[0] == 1  # ... but not healthy

    # Fixing the lease heals it.
    pod.lease({**INITIAL, "alpha": "alpha-v2.zip"})
    pod.wait(lambda: pod.status().get("failures") == {} and pod.status().get("models") == ["alpha", "beta"],
             "a clean sync")
    assert triton.infer("alpha", [0, 0, 0, 0]) == [100, 100, 100, 100]


@every_lane
def test_sigterm_stops_the_watcher_and_a_restarted_one_catches_up(pod: WatchPod) -> None:
    triton = pod.triton
    assert pod.stop_watch() == 0
    assert pod.status()["phase"] == "stopped"
    code, text = pod.status_command()
    assert code == 0 and text.startswith("ready: phase=stopped models=2 (alpha, beta)"), text
    assert "event=stopped" in pod.log()
    # While the sidecar is down the lease changes; when it comes back beside the running Triton
    # its initial sync applies the change through Triton.
    pod.lease({"alpha": "alpha-v2.zip", "gamma": "gamma.zip"})
    pod.start_watch()
    pod.wait(lambda: triton.model_ready("gamma") and not triton.model_ready("beta"), "the restarted sidecar's sync")
    pod.wait(lambda: pod.status().get("ready") is True, "the restarted sidecar to be ready")
    assert triton.infer("alpha", [0, 0, 0, 0]) == [100, 100, 100, 100]
    assert sorted(p.name for p in pod.repository.iterdir()) == ["alpha", "gamma"]
    assert pod.stop_watch() == 0


@every_lane
def test_the_repository_api_refuses_requests_without_the_key_while_the_sidecar_still_steers(pod: WatchPod) -> None:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    triton = pod.triton
    for headers in ({}, {MODEL_CONTROL_HEADER: "not-the-key"}, {"other-header": pod.model_control_key}):
        status, reply = triton.post("/v2/repository/models/alpha/unload", headers=headers)
        assert status == 403 and b"restricted" in reply, (headers, reply)
        assert triton.post("/v2/repository/models/gamma/load", headers=headers)[0] == 403
        assert triton.post("/v2/repository/index", headers=headers)[0] == 403
    client = grpcclient.InferenceServerClient(triton.grpc_address)
    try:
        with pytest.raises(InferenceServerException):
            client.unload_model("alpha")
        with pytest.raises(InferenceServerException):
            client.unload_model("alpha", headers={MODEL_CONTROL_HEADER: "not-the-key"})
    finally:
        client.close()
    assert triton.model_ready("alpha")  # nothing of the refused requests happened
    # Inference, health and readiness stay open (the kubelet's probes carry no key).
    assert triton.infer("alpha", [0, 0, 0, 0]) == [1, 1, 1, 1]
    assert triton.get("/v2/health/ready")[0] == 200
    assert triton.post("/v2/repository/index", headers={MODEL_CONTROL_HEADER: pod.model_control_key})[0] == 200

    # The sidecar carries the key: it still loads and unloads.
    pod.lease({"alpha": "alpha.zip", "gamma": "gamma.zip"})
    pod.wait(lambda: triton.model_ready("gamma") and not triton.model_ready("beta"), "gamma loaded and beta unloaded")
    pod.wait_synced(["alpha", "gamma"], "the status to show the change")
    assert pod.status()["failures"] == {}
    assert pod.model_control_key not in pod.log() + pod.status_file.read_text() + triton.log()


def test_a_sidecar_with_the_wrong_key_is_refused_and_says_why(pod: WatchPod, tmp_path: Path) -> None:
    triton = pod.triton
    assert pod.stop_watch() == 0
    wrong = tmp_path / "wrong-key"
    wrong.write_text("wrong-VALUE-1234")
    pod.start_watch("--triton-auth-file", str(wrong))
    pod.lease({"alpha": "alpha.zip"})
    pod.wait(lambda: "beta" in pod.status().get("failures", {}), "the refused unload to be reported")
    failure = pod.status()["failures"]["beta"]
    assert "refused its model repository API" in failure and f"header {MODEL_CONTROL_HEADER!r}" in failure
    assert triton.model_ready("beta")
    assert "wrong-VALUE" not in pod.log() + pod.status_file.read_text()


def test_a_key_file_with_a_trailing_newline_is_refused_at_start(pod: WatchPod, tmp_path: Path) -> None:
    assert pod.stop_watch() == 0
    with_newline = tmp_path / "key-with-newline"
    with_newline.write_text(pod.model_control_key + "\n")
    pod.start_watch("--triton-auth-file", str(with_newline))
    assert pod.process is not None and pod.process.wait(timeout=60) == 3
    assert "line break" in pod.log() and "--from-literal" in pod.log()
    assert pod.model_control_key not in pod.log()


def test_a_model_dropped_while_the_pod_was_down_is_gone_when_it_restarts(pod: WatchPod) -> None:
    # The pod goes away (sidecar and Triton); its repository volume stays, as an existingClaim does.
    assert pod.stop_watch() == 0
    pod.stack.close()
    pod.lease({"alpha": "alpha.zip"})
    pod.triton_port = free_port()
    pod.start_watch()
    pod.wait(lambda: pod.status().get("phase") == "watching", "the new sidecar's initial sync")  # not "stopped"
    assert sorted(p.name for p in pod.repository.iterdir()) == ["alpha"]
    assert "model=beta event=removed" in pod.log()
    triton = pod.start_triton()  # loads the whole repository (--load-model=*), as in the pod
    assert triton.model_ready("alpha")
    assert not triton.model_ready("beta")
